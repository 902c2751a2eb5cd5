//! CUDA source for `mx.fast.cuda_kernel`: MLX writes the signature (`const T0* x, ...`)
//! and the `using T0 = ...; constexpr int N = ...;` lines from the launch's template.

use crate::c::{self, Dialect};
use crate::ir::{Form, Kernel, Reduce, Unary};
use crate::params::Params;
use superopt_ir::Dtype;

/// Helpers every kernel's body may call.
pub const HEADER: &str = r#"
// superopt: float conversions, NaN-propagating max/min (as MLX's), row reductions.
template <typename T, int V>
struct alignas(sizeof(T) * V) SoPack {
  T v[V];
};

template <typename T>
__device__ __forceinline__ float so_to_float(T v) { return static_cast<float>(v); }
template <>
__device__ __forceinline__ float so_to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ __forceinline__ float so_to_float<__half>(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T so_from_float(float v) { return static_cast<T>(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 so_from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half so_from_float<__half>(float v) { return __float2half(v); }

#if __CUDA_ARCH__ >= 800
__device__ __forceinline__ float so_max(float a, float b) {
  float r; asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r;
}
__device__ __forceinline__ float so_min(float a, float b) {
  float r; asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b)); return r;
}
#else
__device__ __forceinline__ float so_max(float a, float b) { return (a != a || a > b) ? a : b; }
__device__ __forceinline__ float so_min(float a, float b) { return (a != a || a < b) ? a : b; }
#endif
__device__ __forceinline__ float so_sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }

struct SoSum { __device__ float operator()(float a, float b) const { return a + b; } };
struct SoMax { __device__ float operator()(float a, float b) const { return so_max(a, b); } };
struct SoMin { __device__ float operator()(float a, float b) const { return so_min(a, b); } };

// Reduces v over the TPR threads of a row (threadIdx.x); every thread gets the result.
// Rows of 32 threads stay inside one warp; wider rows meet in `scratch`.
template <int TPR, typename F>
__device__ __forceinline__ float so_row_reduce(float v, float* scratch, F op, float identity) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (TPR > 32) {
    const int lane = threadIdx.x & 31;
    if (lane == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = lane < TPR / 32 ? scratch[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  }
  return v;
}

// superopt: 8 packed values (BITS bytes, little-endian) of a quantized row.
template <int BITS>
__device__ __forceinline__ unsigned long long so_chunk(const unsigned char* row, int c) {
  if (BITS == 2) return *reinterpret_cast<const unsigned short*>(row + 2 * c);
  if (BITS == 4) return *reinterpret_cast<const unsigned int*>(row + 4 * c);
  if (BITS == 8) return *reinterpret_cast<const unsigned long long*>(row + 8 * c);
  unsigned long long v = 0;
#pragma unroll
  for (int b = 0; b < BITS; ++b) v |= (unsigned long long)row[BITS * c + b] << (8 * b);
  return v;
}
// V chunks from chunk c on: one 16-byte load where BITS * V is 16 (c a multiple of V).
template <int BITS, int V>
__device__ __forceinline__ void so_chunks(const unsigned char* row, int c, unsigned long long* v) {
  if (BITS * V == 16 && (BITS == 2 || BITS == 4 || BITS == 8)) {
    const uint4 w = *reinterpret_cast<const uint4*>(row + BITS * c);
    const unsigned long long lo = (unsigned long long)w.y << 32 | w.x, hi = (unsigned long long)w.w << 32 | w.z;
    constexpr int W = 8 * BITS;  // bits of one chunk
    constexpr unsigned long long CHUNK_MASK = W == 64 ? ~0ull : (1ull << (W % 64)) - 1;
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = (j * W < 64 ? lo >> (j * W % 64) : hi >> (j * W % 64)) & CHUNK_MASK;
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = so_chunk<BITS>(row, c + j);
  }
}
"#;

/// `fast`: every output is 16-bit, so float32 intermediates may take the shorter
/// instruction sequences (exp as exp2 of a scaled argument, a few ulp) whose error
/// stays far below the outputs' rounding.
pub struct Cuda {
    pub fast: bool,
}

impl Dialect for Cuda {
    fn lane(&self) -> &'static str {
        "threadIdx.x"
    }
    fn row(&self) -> &'static str {
        "blockIdx.x * blockDim.y + threadIdx.y"
    }
    fn first_pack(&self) -> &'static str {
        "size_t(blockIdx.x) * blockDim.x * UNROLL + threadIdx.x"
    }
    fn block_threads(&self) -> &'static str {
        "blockDim.x"
    }
    fn load(&self, ty: &str, ptr: &str, at: &str, dst: &str, off: &str) -> String {
        let pack = format!("*reinterpret_cast<const SoPack<{ty}, VEC>*>({ptr} + {at})");
        let unpack = format!("for (int j = 0; j < VEC; ++j) {dst}[{off} + j] = so_to_float(p.v[j]);");
        format!("{{ const SoPack<{ty}, VEC> p = {pack}; {unpack} }}")
    }
    fn store(&self, ty: &str, ptr: &str, at: &str, src: &str, off: &str) -> String {
        let fill = format!("for (int j = 0; j < VEC; ++j) p.v[j] = so_from_float<{ty}>({src}[{off} + j]);");
        format!("{{ SoPack<{ty}, VEC> p; {fill} *reinterpret_cast<SoPack<{ty}, VEC>*>({ptr} + {at}) = p; }}")
    }
    fn unary(&self, u: Unary, a: &str) -> String {
        match u {
            Unary::Neg => format!("-{a}"),
            Unary::Square => format!("{a} * {a}"),
            Unary::Sigmoid => format!("so_sigmoid({a})"),
            Unary::Exp if self.fast => format!("exp2f(1.44269504f * ({a}))"),
            Unary::Exp => format!("expf({a})"),
            Unary::Log => format!("logf({a})"),
            Unary::Sqrt => format!("sqrtf({a})"),
            Unary::Rsqrt => format!("rsqrtf({a})"),
            Unary::Abs => format!("fabsf({a})"),
            Unary::Tanh => format!("tanhf({a})"),
            Unary::Erf => format!("erff({a})"),
            Unary::Sin => format!("sinf({a})"),
            Unary::Cos => format!("cosf({a})"),
        }
    }
    fn pow(&self, a: &str, b: &str) -> String {
        format!("powf({a}, {b})")
    }
    fn cast(&self, d: Dtype, a: &str) -> String {
        match d {
            Dtype::Bfloat16 => format!("__bfloat162float(__float2bfloat16({a}))"),
            Dtype::Float16 => format!("__half2float(__float2half({a}))"),
            _ => a.to_string(),
        }
    }
    fn scalar_load(&self, ptr: &str, at: &str) -> String {
        format!("so_to_float({ptr}[{at}])")
    }
    fn scalar_store(&self, ty: &str, ptr: &str, at: &str, v: &str) -> String {
        format!("{ptr}[{at}] = so_from_float<{ty}>({v});")
    }
    fn infinity(&self) -> &'static str {
        "__int_as_float(0x7f800000)"
    }
    fn nan(&self) -> &'static str {
        "__int_as_float(0x7fc00000)"
    }
    fn scratch(&self, name: &str) -> String {
        format!("__shared__ float {name}[32];")
    }
    fn reduce(&self, r: Reduce, acc: &str, scratch: &str) -> String {
        let (f, id) = match r {
            Reduce::Sum => ("SoSum", "0.0f".to_string()),
            Reduce::Max => ("SoMax", format!("(-{})", self.infinity())),
            Reduce::Min => ("SoMin", self.infinity().to_string()),
        };
        format!("so_row_reduce<TPR>({acc}, {scratch}, {f}(), {id})")
    }
}

/// The kernel's body for `mx.fast.cuda_kernel(source=...)`; pair it with [`HEADER`].
pub fn source(k: &Kernel) -> String {
    c::body(k, &Cuda { fast: k.outputs.iter().all(|o| o.dtype.size_bytes() == 2) })
}

// What MLX's CUDA backend makes of a body, for compiling it without MLX.

pub fn ctype(d: Dtype) -> &'static str {
    match d {
        Dtype::Float32 => "float",
        Dtype::Bfloat16 => "__nv_bfloat16",
        Dtype::Float16 => "__half",
        d => panic!("kernels read and write float32, float16 or bfloat16, not {}", d.name()),
    }
}

/// What MLX's `build_kernel` (mlx/backend/cuda/custom_kernel.cpp) writes around a body:
/// pointers, then `_shape`/`_strides`/`_ndim` of inputs whose names the body uses, outputs,
/// and the template arguments as constants.
pub fn mlx_function(name: &str, k: &Kernel, dtype: Dtype, n: i64, p: &Params) -> String {
    let body = source(k);
    let mut params = vec![];
    for o in &k.inputs {
        params.push(format!("const {}* {}", ctype(dtype), o.name));
        for (suffix, ty) in [("shape", "Shape"), ("strides", "Strides"), ("ndim", "int")] {
            if body.contains(&format!("{}_{suffix}", o.name)) {
                params.push(format!("const __grid_constant__ {ty} {}_{suffix}", o.name));
            }
        }
    }
    params.extend(k.outputs.iter().map(|o| format!("{}* {}", ctype(o.dtype), o.name)));
    let mut consts: Vec<String> = (0..k.inputs.len()).map(|i| format!("using T{i} = {};", ctype(dtype))).collect();
    consts.extend(k.outputs.iter().enumerate().map(|(j, o)| format!("using O{j} = {};", ctype(o.dtype))));
    consts.push(format!("constexpr int N = {n};"));
    consts.push(format!("constexpr int VEC = {};", p.vec));
    match k.form {
        Form::Rows => {
            let packs = (n + p.vec as i64 - 1) / p.vec as i64;
            consts.push(format!("constexpr int TPR = {};", p.threads));
            consts.push(format!("constexpr int ITEMS = {};", (packs + p.threads as i64 - 1) / p.threads as i64));
        }
        Form::Elementwise => consts.push(format!("constexpr int UNROLL = {};", p.unroll)),
    }
    format!("__global__ void {name}(\n    {}) {{\n  {}\n{body}\n}}\n", params.join(",\n    "), consts.join("\n  "))
}

/// MLX's device header and cooperative groups, reduced to what a body may use (the
/// bodies use no cooperative groups, whose headers need CUDA's C++ library).
const MLX_PRELUDE: &str = r#"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define MAX_NDIM 8
typedef unsigned int uint32_t;
struct Shape { int v[MAX_NDIM]; __device__ int operator[](int i) const { return v[i]; } };
struct Strides { long long v[MAX_NDIM]; __device__ long long operator[](int i) const { return v[i]; } };
"#;

/// Functions in MLX's namespace, after the prelude and superopt's header: a translation
/// unit NVRTC compiles as MLX would (crates/kernel/tests/nvrtc.rs, examples/ptx.rs).
pub fn mlx_module(functions: &str) -> String {
    format!("{MLX_PRELUDE}{}\nnamespace mlx::core::cu {{\n{functions}}}\n", HEADER)
}
