"""Hand-written kernels used by our inference server (first versions)."""
import mlx.core as mx

# ----------------------------------------------------------------- Metal

_row_sum_src = """
    uint row = threadgroup_position_in_grid.x;
    uint tid = thread_position_in_threadgroup.x;
    uint tg = threads_per_threadgroup.x;
    int n = inp_shape[1];
    threadgroup float buf[256];
    float acc = 0.0f;
    for (int i = tid; i < n; i += tg) {
        acc += inp[row * n + i];
    }
    buf[tid] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = tg / 2; s > 0; s >>= 1) {
        if (tid < s) {
            buf[tid] += buf[tid + s];
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) {
        out[row] = buf[0];
    }
"""

row_sum_kernel = mx.fast.metal_kernel(
    name="row_sum",
    input_names=["inp"],
    output_names=["out"],
    source=_row_sum_src,
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


_rms_half_src = """
    uint row = thread_position_in_grid.x;
    int d = x_shape[1];
    half ss = 0;
    for (int j = 0; j < d; j++) {
        half v = x[row * d + j];
        ss += v * v;
    }
    half r = rsqrt(ss / half(d) + half(1e-5));
    for (int j = 0; j < d; j++) {
        out[row * d + j] = x[row * d + j] * r * w[j];
    }
"""

rms_half_kernel = mx.fast.metal_kernel(
    name="rms_half", input_names=["x", "w"], output_names=["out"], source=_rms_half_src
)


def rms_norm_half(x, w):
    return rms_half_kernel(
        inputs=[x.astype(mx.float16), w.astype(mx.float16)],
        grid=(x.shape[0], 64, 1),
        threadgroup=(32, 64, 1),
        output_shapes=[x.shape],
        output_dtypes=[mx.float16],
    )[0]


_scan_src = """
    uint gid = thread_position_in_grid.x;
    uint lid = thread_position_in_threadgroup.x;
    threadgroup float tile[128];
    tile[lid] = inp[gid];
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (lid == 0) {
        for (uint i = 1; i < 128; i++) {
            tile[i] += tile[i - 1];
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    out[gid] = tile[lid];
"""

block_scan_kernel = mx.fast.metal_kernel(
    name="block_scan", input_names=["inp"], output_names=["out"], source=_scan_src
)


def block_scan(x):
    return block_scan_kernel(
        inputs=[x], grid=(x.size, 1, 1), threadgroup=(128, 1, 1),
        output_shapes=[x.shape], output_dtypes=[x.dtype],
    )[0]


_matvec_src = """
    uint row = threadgroup_position_in_grid.x;
    uint lane = thread_index_in_simdgroup;
    uint sg = simdgroup_index_in_threadgroup;
    int n4 = A_shape[1] / 4;
    const device float4* a4 = (const device float4*)(A + row * A_shape[1]);
    const device float4* x4 = (const device float4*)x;
    float acc = 0.0f;
    for (int i = sg * 32 + lane; i < n4; i += 2048) {
        acc += dot(a4[i], x4[i]);
    }
    acc = simd_sum(acc);
    threadgroup float partial[64];
    if (lane == 0) { partial[sg] = acc; }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg == 0) {
        float t = simd_sum(lane < 64 ? partial[lane] : 0.0f);
        if (lane == 0) { y[row] = t; }
    }
"""

matvec_kernel = mx.fast.metal_kernel(
    name="matvec_wide", input_names=["A", "x"], output_names=["y"], source=_matvec_src
)


def matvec(A, x):
    return matvec_kernel(
        inputs=[A, x],
        grid=(A.shape[0] * 2048, 1, 1),
        threadgroup=(2048, 1, 1),
        output_shapes=[(A.shape[0],)],
        output_dtypes=[mx.float32],
    )[0]


# ------------------------------------------------------------------ CUDA

_cuda_rowsum_src = """
    int row = blockIdx.x;
    int tid = threadIdx.x;
    int n = inp_shape[1];
    __shared__ double sdata[1024];
    double acc = 0.0;
    for (int i = tid; i < n; i += blockDim.x) {
        acc += (double)inp[row * n + i];
    }
    sdata[tid] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) sdata[tid] += sdata[tid + s];
        __syncthreads();
    }
    if (tid == 0) out[row] = (float)sdata[0];
"""

cuda_rowsum = mx.fast.cuda_kernel(
    name="rowsum_f64acc", input_names=["inp"], output_names=["out"], source=_cuda_rowsum_src
)


def row_sum_cuda(x):
    rows = x.shape[0]
    return cuda_rowsum(
        inputs=[x],
        grid=(rows * 1024, 1, 1),
        threadgroup=(1024, 1, 1),
        output_shapes=[(rows,)],
        output_dtypes=[mx.float32],
    )[0]


_exp_src = """
    uint elem = thread_position_in_grid.x;
    out[elem] = metal::exp(inp[elem]);
"""

exp_kernel = mx.fast.metal_kernel(name="myexp", input_names=["inp"], output_names=["out"], source=_exp_src)


def fast_exp(a):
    return exp_kernel(
        inputs=[a], grid=(a.size, 1, 1), threadgroup=(256, 1, 1),
        output_shapes=[a.shape], output_dtypes=[a.dtype],
    )[0]
