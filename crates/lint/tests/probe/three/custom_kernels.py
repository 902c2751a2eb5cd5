"""Hand-rolled Metal / CUDA row kernels (rows contiguous, n_cols % 4 == 0)."""
import mlx.core as mx


def _per_row(kernel, x, threads, out_dtype=mx.float32, out_shape=None):
    rows, cols = x.shape
    return kernel(inputs=[x], template=[("n_cols", cols)], grid=(rows * threads, 1, 1),
                  threadgroup=(threads, 1, 1), output_shapes=[out_shape or (rows,)],
                  output_dtypes=[out_dtype])[0]


# --------------------------------------------------------------- row sum v1
ROWSUM_TREE_SRC = """
    uint row = threadgroup_position_in_grid.x;
    uint tid = thread_position_in_threadgroup.x;
    uint tg = threads_per_threadgroup.x;
    threadgroup float buf[1024];
    float acc = 0.0f;
    const device float4* xr = (const device float4*)(inp + row * n_cols);
    for (uint i = tid; i < n_cols / 4; i += tg) {
        float4 v = xr[i];
        acc += v.x + v.y + v.z + v.w;
    }
    buf[tid] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = tg / 2; s > 0; s >>= 1) {
        if (tid < s) buf[tid] += buf[tid + s];
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (tid == 0) out[row] = buf[0];
"""
_rowsum_tree = mx.fast.metal_kernel(name="rowsum_tree", input_names=["inp"],
                                    output_names=["out"], source=ROWSUM_TREE_SRC)
rowsum_tree = lambda x: _per_row(_rowsum_tree, x, 1024)

# --------------------------------------------------- fp16 row sum, one simd
SUM_HALF_SRC = """
    uint row = threadgroup_position_in_grid.x;
    uint lane = thread_position_in_threadgroup.x;
    half acc = 0.0h;
    for (uint i = lane; i < n_cols; i += 32) {
        acc += inp[row * n_cols + i];
    }
    acc = simd_sum(acc);
    if (lane == 0) out[row] = acc;
"""
_sum_half = mx.fast.metal_kernel(name="sum_half", input_names=["inp"], output_names=["out"],
                                 source=SUM_HALF_SRC)
rowsum_half = lambda x: _per_row(_sum_half, x, 32, out_dtype=mx.float16)

# ---------------------------------------------------------- fused silu * up
SWIGLU_SRC = """
    uint gid = thread_position_in_grid.x;
    float g = gate[gid];
    out[gid] = (g / (1.0f + metal::exp(-g))) * up[gid];
"""
_swiglu = mx.fast.metal_kernel(name="swiglu", input_names=["gate", "up"], output_names=["out"],
                               source=SWIGLU_SRC)


def swiglu(gate, up):
    return _swiglu(inputs=[gate, up], grid=(gate.size, 1, 1), threadgroup=(2048, 1, 1),
                   output_shapes=[gate.shape], output_dtypes=[gate.dtype])[0]


# ------------------------------------------------------------- rms scale
RMS_SCALE_SRC = """
    uint row = threadgroup_position_in_grid.x;
    uint tid = thread_position_in_threadgroup.x;
    uint simd_lane = thread_index_in_simdgroup;
    uint simd_id = simdgroup_index_in_threadgroup;
    threadgroup float partial[32];
    const device float4* xr = (const device float4*)(inp + row * n_cols);
    float ss = 0.0f;
    for (uint i = tid; i < n_cols / 4; i += 256) {
        float4 v = xr[i];
        ss += dot(v, v);
    }
    ss = simd_sum(ss);
    if (simd_lane == 0) partial[simd_id] = ss;
    if (tid < 32) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
        ss = simd_sum(tid < 8 ? partial[tid] : 0.0f);
        if (tid == 0) partial[0] = ss;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float inv = metal::rsqrt(partial[0] / n_cols + 1e-6f);
    device float4* yr = (device float4*)(out + row * n_cols);
    for (uint i = tid; i < n_cols / 4; i += 256) yr[i] = xr[i] * inv;
"""
_rms_scale = mx.fast.metal_kernel(name="rms_scale", input_names=["inp"], output_names=["out"],
                                  source=RMS_SCALE_SRC)
rms_scale = lambda x: _per_row(_rms_scale, x, 256, out_dtype=x.dtype, out_shape=x.shape)

# ------------------------------------------------------ variance, per thread
ROWVAR_SRC = """
    uint row = thread_position_in_grid.x;
    double s = 0.0, s2 = 0.0;
    for (uint i = 0; i < n_cols; ++i) {
        float v = inp[row * n_cols + i];
        s += v;
        s2 += v * v;
    }
    out[row] = (float)(s2 / n_cols - (s / n_cols) * (s / n_cols));
"""
_rowvar = mx.fast.metal_kernel(name="rowvar", input_names=["inp"], output_names=["out"],
                               source=ROWVAR_SRC)


def rowvar(x):
    rows, cols = x.shape
    tg = min(1024, rows)
    return _rowvar(inputs=[x], template=[("n_cols", cols)], grid=(rows, 1, 1),
                   threadgroup=(tg, 1, 1), output_shapes=[(rows,)], output_dtypes=[mx.float32])[0]


# -------------------------------------------- good: simd reduction, float4
ROWSUM_SIMD_SRC = """
    uint row = threadgroup_position_in_grid.x;
    uint tid = thread_position_in_threadgroup.x;
    uint lane = thread_index_in_simdgroup;
    uint sg = simdgroup_index_in_threadgroup;
    threadgroup float partial[8];
    const device float4* xr = (const device float4*)(inp + row * n_cols);
    float acc = 0.0f;
    for (uint i = tid; i < n_cols / 4; i += 256) {
        float4 v = xr[i];
        acc += (v.x + v.y) + (v.z + v.w);
    }
    acc = simd_sum(acc);
    if (lane == 0) partial[sg] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    if (sg == 0) {
        float t = lane < 8 ? partial[lane] : 0.0f;
        t = simd_sum(t);
        if (lane == 0) out[row] = t;
    }
"""
DOT_HALF_SRC = """
    uint row = threadgroup_position_in_grid.x;
    uint lane = thread_index_in_simdgroup;
    const device half4* a4 = (const device half4*)(a + row * n_cols);
    const device half4* b4 = (const device half4*)(b + row * n_cols);
    float acc = 0.0f;
    for (uint i = lane; i < n_cols / 4; i += 32) {
        acc += dot(float4(a4[i]), float4(b4[i]));
    }
    acc = simd_sum(acc);
    if (lane == 0) out[row] = half(acc);
"""
_rowsum_simd = mx.fast.metal_kernel(name="rowsum_simd", input_names=["inp"],
                                    output_names=["out"], source=ROWSUM_SIMD_SRC)
_dot_half = mx.fast.metal_kernel(name="dot_half", input_names=["a", "b"], output_names=["out"],
                                 source=DOT_HALF_SRC)
rowsum_simd = lambda x: _per_row(_rowsum_simd, x, 256)

# ------------------------------------------------------------------- CUDA
CUDA_ROWMAX_SRC = """
    __shared__ float smem[256];
    int row = blockIdx.x;
    int tid = threadIdx.x;
    float m = -INFINITY;
    for (int i = tid; i < n_cols; i += blockDim.x) {
        m = fmaxf(m, inp[row * n_cols + i]);
    }
    smem[tid] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) smem[tid] = fmaxf(smem[tid], smem[tid + s]);
        __syncthreads();
    }
    if (tid == 0) out[row] = smem[0];
"""
CUDA_ROWSUM_SRC = """
    int row = blockIdx.x;
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    __shared__ float warp_sums[8];
    const float4* xr = reinterpret_cast<const float4*>(inp + row * n_cols);
    float acc = 0.f;
    for (int i = threadIdx.x; i < n_cols / 4; i += blockDim.x) {
        float4 v = xr[i];
        acc += v.x + v.y + v.z + v.w;
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffff, acc, o);
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < 8 ? warp_sums[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffff, acc, o);
        if (lane == 0) out[row] = acc;
    }
"""
if mx.cuda.is_available():
    _cu_rowmax = mx.fast.cuda_kernel(name="rowmax", input_names=["inp"], output_names=["out"],
                                     source=CUDA_ROWMAX_SRC)
    _cu_rowsum = mx.fast.cuda_kernel(name="rowsum", input_names=["inp"], output_names=["out"],
                                     source=CUDA_ROWSUM_SRC)
    cuda_rowmax = lambda x: _per_row(_cu_rowmax, x, 256)
    cuda_rowsum = lambda x: _per_row(_cu_rowsum, x, 256)
