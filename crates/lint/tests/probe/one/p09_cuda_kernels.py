"""CUDA-backend kernels (mlx built with CUDA) for a fused row softmax + norm."""
import mlx.core as mx

softmax_src = r"""
    int row = blockIdx.x;
    int tid = threadIdx.x;
    int n = x_shape[1];
    __shared__ float red[1024];

    float m = -INFINITY;
    for (int i = tid; i < n; i += blockDim.x) {
        m = fmaxf(m, x[row * n + i]);
    }
    red[tid] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
        __syncthreads();
    }
    m = red[0];
    __syncthreads();

    float acc = 0.f;
    for (int i = tid; i < n; i += blockDim.x) {
        acc += __expf(x[row * n + i] - m);
    }
    red[tid] = acc;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    float denom = red[0];
    for (int i = tid; i < n; i += blockDim.x) {
        y[row * n + i] = __expf(x[row * n + i] - m) / denom;
    }
"""

row_softmax = mx.fast.cuda_kernel(
    name="row_softmax",
    input_names=["x"],
    output_names=["y"],
    source=softmax_src,
)


def fused_softmax(x):
    rows, cols = x.shape
    return row_softmax(
        inputs=[x],
        grid=(rows * 1024, 1, 1),
        threadgroup=(1024, 1, 1),
        output_shapes=[x.shape],
        output_dtypes=[x.dtype],
    )[0]


SUMSQ_SRC = """
    int tid = threadIdx.x;
    int row = blockIdx.x;
    int n = x_shape[1];
    __half acc = __float2half(0.0f);
    for (int i = tid; i < n; i += blockDim.x) {
        __half v = x[row * n + i];
        acc += v * v;
    }
    __shared__ double sh[32];
    if (threadIdx.x < 32) {
        sh[tid] = (double)__half2float(acc);
        __syncthreads();
    }
    if (tid == 0) {
        double t = 0.0;
        for (int j = 0; j < 32; ++j) t += sh[j];
        out[row] = (float)t;
    }
"""


def row_sumsq(x):
    k = mx.fast.cuda_kernel(
        name="row_sumsq", input_names=["x"], output_names=["out"], source=SUMSQ_SRC
    )
    return k(
        inputs=[x],
        grid=(x.shape[0] * 32, 1, 1),
        threadgroup=(32, 1, 1),
        output_shapes=[(x.shape[0],)],
        output_dtypes=[mx.float32],
    )[0]
