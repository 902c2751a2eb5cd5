"""Custom Metal kernels for row reductions (first attempt)."""
import mlx.core as mx

ROW_SUM_SOURCE = """
    uint tid = thread_position_in_threadgroup.x;
    uint row = threadgroup_position_in_grid.x;
    uint n = inp_shape[1];
    threadgroup float buf[2048];
    float acc = 0.0f;
    for (uint i = tid; i < n; i += threads_per_threadgroup.x) {
        acc += inp[row * n + i];
    }
    buf[tid] = acc;
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (uint s = threads_per_threadgroup.x / 2; s > 0; s >>= 1) {
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
    source=ROW_SUM_SOURCE,
)


def row_sum(x):
    rows = x.shape[0]
    return row_sum_kernel(
        inputs=[x],
        grid=(rows * 2048, 1, 1),
        threadgroup=(2048, 1, 1),
        output_shapes=[(rows,)],
        output_dtypes=[x.dtype],
    )[0]


dot_source = """
    uint gid = thread_position_in_grid.x;
    uint lid = thread_position_in_threadgroup.x;
    threadgroup half partial[256];
    half sum = 0.0h;
    for (uint i = gid; i < a_shape[0]; i += threads_per_grid.x) {
        sum += a[i] * b[i];
    }
    partial[lid] = sum;
    if (lid < 128) {
        threadgroup_barrier(mem_flags::mem_threadgroup);
        partial[lid] += partial[lid + 128];
    }
    if (lid == 0) {
        double total = 0.0;
        for (uint j = 0; j < 128; ++j) {
            total += partial[j];
        }
        out[threadgroup_position_in_grid.x] = total;
    }
"""


def half_dot(a, b, n_groups=64):
    kernel = mx.fast.metal_kernel(
        name="half_dot",
        input_names=["a", "b"],
        output_names=["out"],
        source=dot_source,
    )
    partials = kernel(
        inputs=[a, b],
        grid=(n_groups * 256, 1, 1),
        threadgroup=(256, 1, 1),
        output_shapes=[(n_groups,)],
        output_dtypes=[mx.float16],
    )[0]
    return partials.sum()


TILE_SRC = """
    uint2 pos = thread_position_in_grid.xy;
    uint z = thread_position_in_threadgroup.z;
    if (pos.x < x_shape[1] && pos.y < x_shape[0]) {
        out[(z * x_shape[0] + pos.y) * x_shape[1] + pos.x] = x[pos.y * x_shape[1] + pos.x];
    }
"""

_tile_kernel = mx.fast.metal_kernel(
    name="tile2", input_names=["x"], output_names=["out"], source=TILE_SRC
)


def tile2(x):
    H, W = x.shape
    return _tile_kernel(
        inputs=[x],
        grid=(W, H, 2),
        threadgroup=(32, 32, 2),
        output_shapes=[(2, H, W)],
        output_dtypes=[x.dtype],
    )[0]
