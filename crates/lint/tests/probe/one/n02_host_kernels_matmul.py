"""Host-side preprocessing, well-formed custom kernels, and sane matmul orders."""
import numpy as np
import mlx.core as mx
import mlx.nn as nn


# ---------------------------------------------------------------- host side (numpy)
def load_calibration(path):
    raw = np.load(path).astype(np.float64)
    mean = raw.mean(axis=0, dtype=np.float64)
    std = raw.std(axis=0, dtype=np.float64)
    return mx.array(((raw - mean) / std).astype(np.float32))


def histogram(values):
    arr = np.asarray(values, dtype=np.float64)
    bins = np.zeros(10, dtype=np.int64)
    for i in range(arr.shape[0]):
        b = int(arr[i].item() * 10) % 10
        bins[b] += 1
    return bins


def cpu_solve(a: mx.array, b: mx.array) -> mx.array:
    # float64 only on the CPU stream, where MLX supports it
    x = mx.linalg.solve(a.astype(mx.float64), b.astype(mx.float64), stream=mx.cpu)
    return x.astype(mx.float32)


# ---------------------------------------------------------------- device loops
def train_epoch(model, opt, loss_and_grad, batches):
    losses = []
    for x, y in batches:
        loss, grads = loss_and_grad(model, x, y)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state, loss)
        losses.append(loss)
    mean_loss = mx.mean(mx.stack(losses))
    return mean_loss.item()


def run_layers(layers, x):
    for layer in layers:
        x = layer(x)
    return x


# ---------------------------------------------------------------- matmul orders
def cheap_chain():
    A = mx.random.normal((4096, 4096))
    B = mx.random.normal((4096, 4096))
    v = mx.random.normal((4096, 1))
    return A @ (B @ v)


def square_chain():
    A = mx.random.normal((1024, 1024))
    B = mx.random.normal((1024, 1024))
    C = mx.random.normal((1024, 1024))
    return (A @ B) @ C


def batch_first_chain():
    x = mx.random.normal((8, 4096))
    W1 = mx.random.normal((4096, 4096))
    W2 = mx.random.normal((4096, 4096))
    return x @ W1 @ W2


# ---------------------------------------------------------------- kernels
ROW_SUM_SOURCE = """
    uint tid = thread_position_in_threadgroup.x;
    uint row = threadgroup_position_in_grid.x;
    uint simd_lane = thread_index_in_simdgroup;
    uint simd_id = simdgroup_index_in_threadgroup;
    uint n4 = inp_shape[1] / 4;
    const device float4* src = reinterpret_cast<const device float4*>(inp) + row * n4;
    threadgroup float partial[32];

    float acc = 0.0f;
    for (uint i = tid; i < n4; i += threads_per_threadgroup.x) {
        float4 v = src[i];
        acc += v.x + v.y + v.z + v.w;
    }
    acc = simd_sum(acc);
    if (simd_lane == 0) {
        partial[simd_id] = acc;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (simd_id == 0) {
        float t = simd_lane < (threads_per_threadgroup.x / 32) ? partial[simd_lane] : 0.0f;
        t = simd_sum(t);
        if (simd_lane == 0) {
            out[row] = t;
        }
    }
"""

row_sum_kernel = mx.fast.metal_kernel(
    name="row_sum_simd",
    input_names=["inp"],
    output_names=["out"],
    source=ROW_SUM_SOURCE,
)


def row_sum(x):
    rows = x.shape[0]
    return row_sum_kernel(
        inputs=[x],
        grid=(rows * 256, 1, 1),
        threadgroup=(256, 1, 1),
        output_shapes=[(rows,)],
        output_dtypes=[mx.float32],
    )[0]


CUDA_DOT_SRC = """
    int tid = threadIdx.x;
    int lane = tid & 31;
    int warp = tid >> 5;
    __shared__ float warp_sums[8];
    const float4* a4 = reinterpret_cast<const float4*>(a);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    int n4 = a_shape[0] / 4;
    float acc = 0.0f;
    for (int i = blockIdx.x * blockDim.x + tid; i < n4; i += gridDim.x * blockDim.x) {
        float4 x = a4[i];
        float4 y = b4[i];
        acc += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
    }
    for (int off = 16; off > 0; off >>= 1) {
        acc += __shfl_down_sync(0xffffffff, acc, off);
    }
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        float t = lane < 8 ? warp_sums[lane] : 0.0f;
        for (int off = 4; off > 0; off >>= 1) {
            t += __shfl_down_sync(0xffffffff, t, off);
        }
        if (lane == 0) out[blockIdx.x] = t;
    }
"""


def dot(a, b, blocks=128):
    k = mx.fast.cuda_kernel(
        name="dot_warp", input_names=["a", "b"], output_names=["out"], source=CUDA_DOT_SRC
    )
    partial = k(
        inputs=[a, b],
        grid=(blocks * 256, 1, 1),
        threadgroup=(256, 1, 1),
        output_shapes=[(blocks,)],
        output_dtypes=[mx.float32],
    )[0]
    return partial.sum()


class Upsample2x(nn.Module):
    """Nearest-neighbour upsampling via mx.repeat (images, not K/V heads)."""

    def __call__(self, x):
        x = mx.repeat(x, 2, axis=1)
        return mx.repeat(x, 2, axis=2)
