//! Quantized products as generated kernels: MLX's affine `gather_qmm` with `transpose=True`
//! (each pair `p` multiplies row block `x[lhs[p]]` by the dequantized weights of expert
//! `rhs[p]`) or dense `quantized_matmul` (every row of x by one weight matrix), alone, as
//! a gate/up pair that shares x (and the indices) with SwiGLU fused: `silu(x Wg^T) * (x Wu^T)`
//! in one pass over both packed weights, or (gathered) with a token's top-k pairs summed
//! times their weights (an MoE layer's down projection and combine).
//!
//! One warp (simdgroup) computes one output column of `R` consecutive rows: its lanes walk
//! the packed row of the weights in chunks of 8 values (`bits` bytes: MLX packs every width
//! as a little-endian bit stream), dequantize in registers as `scale * q + bias` per group,
//! and accumulate in float32 as `scale * sum(q x) + bias * sum(x)`. The rows of a dense
//! product share each weight's load and dequantization (`R` up to 8; a gathered product's
//! rows take one each), so decode shapes read each weight once; there the packed weights
//! are the floor.

use serde::{Deserialize, Serialize};
use superopt_ir::Dtype;

/// What follows the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Epilogue {
    /// One product, stored as it is.
    Product,
    /// Two products (gate, up) of the same x and indices: `silu(gate) * up`.
    SwiGlu,
    /// One gathered product (one row per pair) whose pairs along the indices' last axis
    /// (an MoE layer's top-k experts of a token) are summed, each times its weight: the
    /// down projection with the experts' outputs combined.
    Combine,
}

impl Epilogue {
    pub fn products(self) -> usize {
        match self {
            Epilogue::Product | Epilogue::Combine => 1,
            Epilogue::SwiGlu => 2,
        }
    }
}

/// A gathered quantized product kernel (see the module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantized {
    pub name: String,
    /// Bits per weight: 2, 3, 4, 5, 6 or 8.
    pub bits: u32,
    /// Weights per scale and bias: 32, 64 or 128.
    pub group_size: u32,
    /// The inner dimension (x's last axis) and the output's last axis.
    pub k: i64,
    pub n: i64,
    pub epilogue: Epilogue,
    /// `gather_qmm` (by lhs/rhs indices) or dense `quantized_matmul`.
    pub gathered: bool,
    /// The dtype of x and of the output (MLX's gather_qmm keeps x's).
    pub dtype: Dtype,
    /// The dtype of the scales and biases.
    pub scales: Dtype,
    /// Chunks of 8 values a lane loads at once: 16 bytes where the packing allows (2, 4
    /// and 8 bits, rows of whole 16-byte loads), else one chunk (CUDA; Metal loads bytes).
    pub vec: u32,
}

/// [`Quantized::rows_per_warp`] where rows share matrices.
pub const SHARED_ROWS: u32 = 8;

/// Why a product cannot be a [`Quantized`] kernel.
#[derive(Debug, PartialEq)]
pub struct Unsupported(pub String);

impl Quantized {
    pub const BITS: [u32; 6] = [2, 3, 4, 5, 6, 8];
    pub const GROUPS: [u32; 3] = [32, 64, 128];

    /// Checks what the emitters assume: a width and group MLX defines, whole groups per
    /// row, float dtypes.
    pub fn new(
        name: &str,
        (bits, group_size): (u32, u32),
        (k, n): (i64, i64),
        (epilogue, gathered): (Epilogue, bool),
        (dtype, scales): (Dtype, Dtype),
    ) -> Result<Quantized, Unsupported> {
        let no = |why: String| Err(Unsupported(why));
        if !Self::BITS.contains(&bits) || !Self::GROUPS.contains(&group_size) {
            return no(format!("{bits} bits in groups of {group_size}"));
        }
        if k <= 0 || n <= 0 || k % group_size as i64 != 0 {
            return no(format!("an inner dimension of {k} in groups of {group_size}"));
        }
        if n > 65535 * 4 {
            return no(format!("{n} output columns: past CUDA's 65535 blocks of 4 warps"));
        }
        if !crate::ir::computable(dtype) || !crate::ir::computable(scales) {
            return no(format!("{} inputs with {} scales", dtype.name(), scales.name()));
        }
        if epilogue == Epilogue::Combine && !gathered {
            return no("a combine of a dense product".into());
        }
        let wide = 16 / bits;
        let vec = if bits.is_power_of_two() && (k / 8) % wide as i64 == 0 { wide } else { 1 };
        Ok(Quantized { name: name.into(), bits, group_size, k, n, epilogue, gathered, dtype, scales, vec })
    }

    /// The kernel's input names, in launch order: x, (gathered) lhs and rhs, then weights,
    /// scales and biases of each product, then (combine) each pair's weight `wt`.
    pub fn inputs(&self) -> Vec<String> {
        let mut names: Vec<String> = vec!["x".into()];
        if self.gathered {
            names.extend(["lhs".into(), "rhs".into()]);
        }
        for p in 0..self.epilogue.products() {
            names.extend([format!("w{p}"), format!("s{p}"), format!("b{p}")]);
        }
        if self.epilogue == Epilogue::Combine {
            names.push("wt".into());
        }
        names
    }

    /// The most rows a warp computes together (`R`, a power of two; the launcher takes the
    /// largest that divides the rows), sharing each dequantized weight: 8 where every row
    /// uses the one matrix (dense), else 1.
    pub fn rows_per_warp(&self) -> u32 {
        if self.gathered {
            1
        } else {
            SHARED_ROWS
        }
    }

    /// Packed bytes of one output column's weights.
    pub fn row_bytes(&self) -> i64 {
        self.k * self.bits as i64 / 8
    }
}

/// The body for `mx.fast.cuda_kernel`, with [`crate::cuda::HEADER`] and the template
/// constants `T` (x), `S` (scales), `O` (out), `K`, `N`, `M` (rows per pair), `WARPS`,
/// `R` (rows per warp, dividing the rows; more than 1 only where they share the matrix),
/// and (combine, see [`combine_cuda_source`]) `TOPK`.
pub fn cuda_source(q: &Quantized) -> String {
    if q.epilogue == Epilogue::Combine {
        return combine_cuda_source(q);
    }
    let swiglu = q.epilogue == Epilogue::SwiGlu;
    let products = q.epilogue.products();
    let mut s = String::new();
    s.push_str(&format!(
        "  // {}: {} bits, groups of {}, K = {}, N = {}{}\n",
        q.name,
        q.bits,
        q.group_size,
        q.k,
        q.n,
        if swiglu { ", silu(gate) * up" } else { "" }
    ));
    let (bits, group, vec) = (q.bits, q.group_size, q.vec);
    s.push_str(&format!(
        "  constexpr int BITS = {bits};\n  constexpr int GROUP = {group};\n  constexpr int V = {vec};\n"
    ));
    s.push_str(
        r#"  constexpr int CHUNKS = K / 8;  // 8 values in BITS bytes
  constexpr unsigned long long MASK = (1ull << BITS) - 1;
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.y * WARPS + (threadIdx.x >> 5);
  const size_t row0 = size_t(blockIdx.x) * R;  // rows pair * M + m
  if (n >= N) return;
"#,
    );
    s.push_str(column(q));
    s.push_str(&weight_rows(q, "", "unsigned char"));
    s.push_str("  for (int c0 = lane * V; c0 < CHUNKS; c0 += 32 * V) {\n");
    for p in 0..products {
        s.push_str(&format!("    unsigned long long v{p}[V];\n    so_chunks<BITS, V>(w{p}r, c0, v{p});\n"));
    }
    s.push_str("#pragma unroll\n    for (int j = 0; j < V; ++j) {\n      const int c = c0 + j;\n");
    s.push_str("      const int g = (c * 8) / GROUP;\n");
    for p in 0..products {
        s.push_str(&format!(
            "      float q{p}[8];\n#pragma unroll\n      \
             for (int i = 0; i < 8; ++i) q{p}[i] = float((v{p}[j] >> (BITS * i)) & MASK);\n      \
             const float sc{p} = so_to_float(s{p}r[g]), bi{p} = so_to_float(b{p}r[g]);\n"
        ));
    }
    s.push_str(
        format!(
            "#pragma unroll\n      for (int r = 0; r < R; ++r) {{\n        \
                 const SoPack<T, 8> xp = *reinterpret_cast<const SoPack<T, 8>*>({} + c * 8);\n        \
                 float sx = 0.0f;\n",
            x_row(q)
        )
        .as_str(),
    );
    for p in 0..products {
        s.push_str(&format!("        float qx{p} = 0.0f;\n"));
    }
    s.push_str("#pragma unroll\n        for (int i = 0; i < 8; ++i) {\n");
    s.push_str("          const float xi = so_to_float(xp.v[i]);\n          sx += xi;\n");
    for p in 0..products {
        s.push_str(&format!("          qx{p} += q{p}[i] * xi;\n"));
    }
    s.push_str("        }\n");
    for p in 0..products {
        s.push_str(&format!("        acc{p}[r] += sc{p} * qx{p} + bi{p} * sx;\n"));
    }
    s.push_str("      }\n    }\n  }\n#pragma unroll\n  for (int r = 0; r < R; ++r) {\n");
    for p in 0..products {
        s.push_str(&format!(
            "    for (int o = 16; o > 0; o >>= 1) acc{p}[r] += __shfl_xor_sync(0xffffffffu, acc{p}[r], o);\n"
        ));
    }
    let value = if swiglu { "acc0[r] * so_sigmoid(acc0[r]) * acc1[r]" } else { "acc0[r]" };
    s.push_str(&format!("    if (lane == 0) out[(row0 + r) * N + n] = so_from_float<O>({value});\n  }}\n"));
    s
}

/// The line that finds the weights' column `col` (counted over every matrix) that the `R`
/// rows share: by the first row's pair, or (dense) the one matrix's.
fn column(q: &Quantized) -> &'static str {
    if q.gathered {
        "  const size_t col = size_t(rhs[row0 / M]) * N + n;\n"
    } else {
        "  const size_t col = n;\n"
    }
}

/// Row `row0 + r`'s x: by its pair's lhs index, or (dense) the row itself.
fn x_row(q: &Quantized) -> &'static str {
    if q.gathered {
        "x + (size_t(lhs[(row0 + r) / M]) * M + (row0 + r) % M) * K"
    } else {
        "x + (row0 + r) * K"
    }
}

/// Each product's packed row, scales and biases of column `col`, and its accumulators.
fn weight_rows(q: &Quantized, space: &str, byte: &str) -> String {
    let mut s = String::new();
    for p in 0..q.epilogue.products() {
        s.push_str(&format!("  const {space}{byte}* w{p}r = (const {space}{byte}*)(w{p}) + col * (K * BITS / 8);\n"));
        s.push_str(&format!("  const {space}S* s{p}r = s{p} + col * (K / GROUP);\n"));
        s.push_str(&format!("  const {space}S* b{p}r = b{p} + col * (K / GROUP);\n"));
        s.push_str(&format!("  float acc{p}[R];\n#pragma unroll\n  for (int r = 0; r < R; ++r) acc{p}[r] = 0.0f;\n"));
    }
    s
}

/// What MLX's CUDA backend wraps around [`cuda_source`] for `m` rows per pair, `warps`
/// warps per block, `r` rows per warp and (combine) 8 pairs per output row, for compiling
/// it without MLX (see [`crate::cuda::mlx_module`]).
pub fn mlx_function(name: &str, q: &Quantized, m: i64, warps: u32, r: u32) -> String {
    let c = |d: Dtype| crate::cuda::ctype(d);
    let mut params = vec![format!("const {}* x", c(q.dtype))];
    if q.gathered {
        params.extend(["const uint32_t* lhs".to_string(), "const uint32_t* rhs".to_string()]);
    }
    for p in 0..q.epilogue.products() {
        params.push(format!("const uint32_t* w{p}"));
        params.push(format!("const {}* s{p}", c(q.scales)));
        params.push(format!("const {}* b{p}", c(q.scales)));
    }
    if q.epilogue == Epilogue::Combine {
        params.push(format!("const {}* wt", c(q.dtype)));
    }
    params.push(format!("{}* out", c(q.dtype)));
    let consts = [
        format!("using T = {};", c(q.dtype)),
        format!("using S = {};", c(q.scales)),
        format!("using O = {};", c(q.dtype)),
        format!("constexpr int K = {};", q.k),
        format!("constexpr int N = {};", q.n),
        format!("constexpr int M = {m};"),
        format!("constexpr int WARPS = {warps};"),
        format!("constexpr int R = {r};"),
        "constexpr int TOPK = 8;".to_string(),
    ];
    format!(
        "__global__ void {name}(\n    {}) {{\n  {}\n{}\n}}\n",
        params.join(",\n    "),
        consts.join("\n  "),
        cuda_source(q)
    )
}

/// The body for `mx.fast.metal_kernel`, with [`crate::metal::HEADER`]: the same walk,
/// one simdgroup per output column of `R` rows.
pub fn metal_source(q: &Quantized) -> String {
    if q.epilogue == Epilogue::Combine {
        return combine_metal_source(q);
    }
    let swiglu = q.epilogue == Epilogue::SwiGlu;
    let products = q.epilogue.products();
    let mut s = String::new();
    s.push_str(&format!("  constexpr int BITS = {};\n  constexpr int GROUP = {};\n", q.bits, q.group_size));
    s.push_str(
        r#"  constexpr int CHUNKS = K / 8;
  constexpr ulong MASK = (1ul << BITS) - 1;
  const uint lane = thread_index_in_simdgroup;
  const int n = threadgroup_position_in_grid.y * WARPS + simdgroup_index_in_threadgroup;
  const size_t row0 = size_t(threadgroup_position_in_grid.x) * R;
  if (n >= N) return;
"#,
    );
    s.push_str(column(q));
    s.push_str(&weight_rows(q, "device ", "uchar"));
    s.push_str("  for (int c = lane; c < CHUNKS; c += 32) {\n    const int g = (c * 8) / GROUP;\n");
    for p in 0..products {
        s.push_str(&format!(
            "    ulong v{p} = 0;\n    \
             for (int b = 0; b < BITS; ++b) v{p} |= ulong(w{p}r[BITS * c + b]) << (8 * b);\n    \
             float q{p}[8];\n    for (int i = 0; i < 8; ++i) q{p}[i] = float((v{p} >> (BITS * i)) & MASK);\n    \
             const float sc{p} = float(s{p}r[g]), bi{p} = float(b{p}r[g]);\n"
        ));
    }
    s.push_str(&format!(
        "    for (int r = 0; r < R; ++r) {{\n      const device T* xr = {};\n      float sx = 0.0f;\n",
        x_row(q)
    ));
    for p in 0..products {
        s.push_str(&format!("      float qx{p} = 0.0f;\n"));
    }
    s.push_str(
        "      for (int i = 0; i < 8; ++i) {\n        const float xi = float(xr[c * 8 + i]);\n        sx += xi;\n",
    );
    for p in 0..products {
        s.push_str(&format!("        qx{p} += q{p}[i] * xi;\n"));
    }
    s.push_str("      }\n");
    for p in 0..products {
        s.push_str(&format!("      acc{p}[r] += sc{p} * qx{p} + bi{p} * sx;\n"));
    }
    s.push_str("    }\n  }\n  for (int r = 0; r < R; ++r) {\n");
    for p in 0..products {
        s.push_str(&format!("    acc{p}[r] = simd_sum(acc{p}[r]);\n"));
    }
    let value = if swiglu { "acc0[r] * so_sigmoid(acc0[r]) * acc1[r]" } else { "acc0[r]" };
    s.push_str(&format!("    if (lane == 0) out[(row0 + r) * N + n] = O({value});\n  }}\n"));
    s
}

/// [`cuda_source`] of an [`Epilogue::Combine`] kernel (template constant `TOPK`, the pairs
/// of one output row; one row of x per pair): a warp walks its column of each pair's
/// expert in turn and adds the pair's products times its weight.
fn combine_cuda_source(q: &Quantized) -> String {
    let mut s = format!(
        "  // {}: {} bits, groups of {}, K = {}, N = {}, TOPK pairs combined\n  \
         constexpr int BITS = {};\n  constexpr int GROUP = {};\n  constexpr int V = {};\n",
        q.name, q.bits, q.group_size, q.k, q.n, q.bits, q.group_size, q.vec
    );
    s.push_str(
        r#"  constexpr int CHUNKS = K / 8;  // 8 values in BITS bytes
  constexpr unsigned long long MASK = (1ull << BITS) - 1;
  const int lane = threadIdx.x & 31;
  const int n = blockIdx.y * WARPS + (threadIdx.x >> 5);
  const size_t token = blockIdx.x;  // TOPK consecutive pairs
  if (n >= N) return;
  float acc0 = 0.0f;
  for (int t = 0; t < TOPK; ++t) {
    const size_t pair = token * TOPK + t;
    const size_t col = size_t(rhs[pair]) * N + n;
    const T* xr = x + size_t(lhs[pair]) * M * K;  // M is 1: one row per pair
    const unsigned char* w0r = (const unsigned char*)(w0) + col * (K * BITS / 8);
    const S* s0r = s0 + col * (K / GROUP);
    const S* b0r = b0 + col * (K / GROUP);
    float part = 0.0f;
    for (int c0 = lane * V; c0 < CHUNKS; c0 += 32 * V) {
      unsigned long long v0[V];
      so_chunks<BITS, V>(w0r, c0, v0);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const int c = c0 + j;
        const int g = (c * 8) / GROUP;
        const SoPack<T, 8> xp = *reinterpret_cast<const SoPack<T, 8>*>(xr + c * 8);
        float sx = 0.0f, qx = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const float xi = so_to_float(xp.v[i]);
          sx += xi;
          qx += float((v0[j] >> (BITS * i)) & MASK) * xi;
        }
        part += so_to_float(s0r[g]) * qx + so_to_float(b0r[g]) * sx;
      }
    }
    acc0 += so_to_float(wt[pair]) * part;
  }
  for (int o = 16; o > 0; o >>= 1) acc0 += __shfl_xor_sync(0xffffffffu, acc0, o);
  if (lane == 0) out[token * N + n] = so_from_float<O>(acc0);
"#,
    );
    s
}

/// [`metal_source`] of an [`Epilogue::Combine`] kernel: the walk of [`combine_cuda_source`].
fn combine_metal_source(q: &Quantized) -> String {
    let mut s = format!("  constexpr int BITS = {};\n  constexpr int GROUP = {};\n", q.bits, q.group_size);
    s.push_str(
        r#"  constexpr int CHUNKS = K / 8;
  constexpr ulong MASK = (1ul << BITS) - 1;
  const uint lane = thread_index_in_simdgroup;
  const int n = threadgroup_position_in_grid.y * WARPS + simdgroup_index_in_threadgroup;
  const size_t token = threadgroup_position_in_grid.x;
  if (n >= N) return;
  float acc0 = 0.0f;
  for (int t = 0; t < TOPK; ++t) {
    const size_t pair = token * TOPK + t;
    const size_t col = size_t(rhs[pair]) * N + n;
    const device T* xr = x + size_t(lhs[pair]) * M * K;  // M is 1: one row per pair
    const device uchar* w0r = (const device uchar*)(w0) + col * (K * BITS / 8);
    const device S* s0r = s0 + col * (K / GROUP);
    const device S* b0r = b0 + col * (K / GROUP);
    float part = 0.0f;
    for (int c = lane; c < CHUNKS; c += 32) {
      ulong v = 0;
      for (int b = 0; b < BITS; ++b) v |= ulong(w0r[BITS * c + b]) << (8 * b);
      const int g = (c * 8) / GROUP;
      float sx = 0.0f, qx = 0.0f;
      for (int i = 0; i < 8; ++i) {
        const float xi = float(xr[c * 8 + i]);
        sx += xi;
        qx += float((v >> (BITS * i)) & MASK) * xi;
      }
      part += float(s0r[g]) * qx + float(b0r[g]) * sx;
    }
    acc0 += float(wt[pair]) * part;
  }
  acc0 = simd_sum(acc0);
  if (lane == 0) out[token * N + n] = O(acc0);
"#,
    );
    s
}

/// Python defining `_k{index}(x, lhs, rhs, w0, s0, b0, ..., warps=None)` for `target`:
/// x of shape `[..., M, K]` (its batch flattened), the indices of one shape `P`, the
/// output `P + [M, N]` (combine: `P[:-1] + [1, N]`, M being 1). One block of `warps` warps
/// per `warps` output columns of `r` rows (the largest power of two up to
/// [`Quantized::rows_per_warp`] that divides the rows);
/// row blocks along x (CUDA allows 65535 blocks along y).
/// Needs the module's `_KERNEL_HEADER` ([`crate::launch::preamble`]).
pub fn launcher(q: &Quantized, index: usize, target: crate::Target) -> String {
    let (make, source) = match target {
        crate::Target::Cuda => ("mx.fast.cuda_kernel", cuda_source(q)),
        crate::Target::Metal => ("mx.fast.metal_kernel", metal_source(q)),
        crate::Target::Mlx => return mlx_launcher(q, index),
    };
    let ins = q.inputs();
    let quoted: Vec<String> = ins.iter().map(|n| format!("{n:?}")).collect();
    let combine = q.epilogue == Epilogue::Combine;
    format!(
        r#"_K{index}_SOURCE = r"""
{source}"""
_K{index} = None  # made at the first call: only a GPU backend can


def _k{index}({args}, warps=None):
    """{name}: {what}."""
    global _K{index}
    if _K{index} is None:
        _K{index} = {make}(
            name="superopt_{name}_{digest}",
            input_names=[{quoted}],
            output_names=["out"],
            source=_K{index}_SOURCE,
            header=_KERNEL_HEADER,
        )
{shape}
    warps = warps or 4
    threads = 32 * warps
    blocks = -(-{n} // warps)
    r = {rows_per_warp}
    while rows % r:
        r //= 2
    (out,) = _K{index}(
        inputs=[{operands}, {weights}],
        template=[("T", x.dtype), ("S", s0.dtype), ("O", x.dtype), ("K", k), ("N", {n}), ("M", m), ("WARPS", warps),
                  ("R", r){topk}],
        grid=(rows // r * threads, blocks, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[{out_shape}],
        output_dtypes=[x.dtype],
    )
    return out


"#,
        args = ins.join(", "),
        name = q.name,
        what = describe(q),
        digest = digest(&source),
        quoted = quoted.join(", "),
        n = q.n,
        rows_per_warp = q.rows_per_warp(),
        weights = ins[if q.gathered { 3 } else { 1 }..].join(", "),
        topk = if combine { ", (\"TOPK\", lhs.shape[-1])" } else { "" },
        shape = if combine {
            "    m, k = x.shape[-2], x.shape[-1]\n    rows = lhs.size // lhs.shape[-1]  # one per TOPK pairs"
        } else if q.gathered {
            "    m, k = x.shape[-2], x.shape[-1]\n    rows = lhs.size * m"
        } else {
            "    m, k = 1, x.shape[-1]\n    rows = x.size // k"
        },
        operands = if q.gathered { "x.reshape(-1, m, k), lhs.flatten(), rhs.flatten()" } else { "x.reshape(-1, k)" },
        out_shape = if combine {
            format!("tuple(lhs.shape[:-1]) + (1, {})", q.n)
        } else if q.gathered {
            format!("tuple(lhs.shape) + (m, {})", q.n)
        } else {
            format!("tuple(x.shape[:-1]) + ({},)", q.n)
        },
    )
}

/// One line on what `q` computes.
pub fn describe(q: &Quantized) -> String {
    let f = if q.gathered { "gather_qmm" } else { "quantized_matmul" };
    let what = match q.epilogue {
        Epilogue::Product => f.to_string(),
        Epilogue::SwiGlu => format!("silu({f}(gate)) * {f}(up)"),
        Epilogue::Combine => format!("the top-k pairs of {f}, each times its weight, summed"),
    };
    format!("{what}, {} bits in groups of {}, K = {}, N = {}, {}", q.bits, q.group_size, q.k, q.n, q.dtype.name())
}

/// A short digest of a kernel's source: MLX caches compiled kernels by name.
pub(crate) fn digest(source: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{}{source}", crate::cuda::HEADER);
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The kernel's meaning in plain MLX: `mx.gather_qmm` per product (rounded to x's dtype,
/// which the GPU code does not), then SwiGLU or the combine in float32. A function
/// `_k{index}(x, lhs, rhs, w0, s0, b0, ...)`.
pub fn mlx_launcher(q: &Quantized, index: usize) -> String {
    let args = q.inputs().join(", ");
    let indices = if q.gathered { "lhs_indices=lhs, rhs_indices=rhs, " } else { "" };
    let f = if q.gathered { "gather_qmm" } else { "quantized_matmul" };
    let product = |p: usize| {
        format!(
            "mx.{f}(x, w{p}, s{p}, b{p}, {indices}transpose=True, group_size={}, bits={}).astype(mx.float32)",
            q.group_size, q.bits
        )
    };
    let value = match q.epilogue {
        Epilogue::Product => format!("    out = {}\n", product(0)),
        Epilogue::SwiGlu => {
            format!("    gate = {}\n    up = {}\n    out = gate * mx.sigmoid(gate) * up\n", product(0), product(1))
        }
        Epilogue::Combine => {
            format!("    y = {}\n    out = mx.sum(y * wt.astype(mx.float32)[..., None, None], axis=-3)\n", product(0))
        }
    };
    let doc = format!("    \"\"\"{}: its meaning in plain MLX.\"\"\"", q.name);
    format!("def _k{index}({args}, warps=None):\n{doc}\n{value}    return out.astype(x.dtype)\n\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moe(bits: u32) -> Quantized {
        let dtypes = (Dtype::Bfloat16, Dtype::Bfloat16);
        Quantized::new("gate_up", (bits, 64), (2048, 768), (Epilogue::SwiGlu, true), dtypes).unwrap()
    }

    #[test]
    fn only_widths_and_groups_mlx_defines_are_kernels() {
        assert!(Quantized::new("q", (7, 64), (128, 8), (Epilogue::Product, true), (Dtype::Float32, Dtype::Float32))
            .is_err());
        assert!(
            Quantized::new("q", (4, 48), (96, 8), (Epilogue::Product, true), (Dtype::Float32, Dtype::Float32)).is_err()
        );
        assert!(
            Quantized::new("q", (4, 64), (96, 8), (Epilogue::Product, true), (Dtype::Float32, Dtype::Float32)).is_err()
        );
        assert!(Quantized::new("q", (4, 64), (128, 8), (Epilogue::Product, true), (Dtype::Float64, Dtype::Float32))
            .is_err());
        assert!(
            Quantized::new("q", (3, 32), (96, 8), (Epilogue::Product, true), (Dtype::Float32, Dtype::Float16)).is_ok()
        );
    }

    #[test]
    fn a_gate_up_pair_reads_both_weights_in_one_pass() {
        let q = moe(4);
        assert_eq!(q.inputs(), ["x", "lhs", "rhs", "w0", "s0", "b0", "w1", "s1", "b1"]);
        assert_eq!(q.row_bytes(), 1024);
        for src in [cuda_source(&q), metal_source(&q)] {
            assert_eq!(src.matches("c < CHUNKS").count() + src.matches("c0 < CHUNKS").count(), 1, "{src}");
            assert!(src.contains("acc0[r] * so_sigmoid(acc0[r]) * acc1[r]"), "{src}");
        }
        let single = Quantized { epilogue: Epilogue::Product, ..q.clone() };
        assert!(!cuda_source(&single).contains("acc1"));
        assert!(mlx_launcher(&single, 0).contains("out = mx.gather_qmm(x, w0, s0, b0"));
        let dense = Quantized { gathered: false, ..q };
        assert_eq!(dense.inputs(), ["x", "w0", "s0", "b0", "w1", "s1", "b1"]);
        assert!(cuda_source(&dense).contains("x + (row0 + r) * K + c * 8"));
        assert!(mlx_launcher(&dense, 0).contains("gate = mx.quantized_matmul(x, w0, s0, b0, transpose=True"));
    }

    #[test]
    fn the_rows_of_a_dense_product_share_each_dequantized_weight() {
        let dtypes = (Dtype::Bfloat16, Dtype::Bfloat16);
        let dense = Quantized::new("mlp", (4, 64), (4096, 14336), (Epilogue::SwiGlu, false), dtypes).unwrap();
        assert_eq!(
            (dense.rows_per_warp(), moe(4).rows_per_warp()),
            (SHARED_ROWS, 1),
            "a gathered row has its own matrix"
        );
        for src in [cuda_source(&dense), metal_source(&dense)] {
            // Dequantized once per chunk, outside the loop over the R rows that use it.
            assert_eq!(src.matches("q0[i] = float(").count(), 1, "{src}");
            assert!(src.find("q0[i] = float(") < src.find("for (int r = 0; r < R; ++r) {\n"), "{src}");
        }
        let py = launcher(&dense, 0, crate::Target::Cuda);
        assert!(py.contains("r = 8\n    while rows % r:\n        r //= 2"), "{py}");
        assert!(py.contains("grid=(rows // r * threads, blocks, 1)"), "{py}");
        assert!(launcher(&moe(4), 0, crate::Target::Cuda).contains("r = 1\n"));
    }
}

/// Lowering: each gate/up pair of `GatherQMM`s or `QuantizedMatmul`s (affine,
/// `transpose=True`, the same x and indices, used only by `silu(gate) * up`) becomes one
/// [`Epilogue::SwiGlu`] kernel node; a `GatherQMM` whose pairs are summed times their
/// weights an [`Epilogue::Combine`] node; each other such product an [`Epilogue::Product`]
/// node. It may touch only those nodes, the `Sigmoid` and `Multiply` of the SwiGLU, and the
/// `Squeeze`, `ExpandDims`/`Reshape`, `Broadcast`, `Multiply` and `Reduce` of the combine;
/// identical index nodes are merged first (a trace builds the same `arange` once per
/// product). One line per kernel made.
pub mod lower {
    use super::{Epilogue, Quantized};
    use crate::{Body, Call, Target};
    use std::collections::{BTreeSet, HashMap};
    use superopt_ir::{Arg, Dtype, Node, Op, Program, ReduceKind, ValueId};

    pub fn lower(p: &mut Program, target: Target) -> Vec<String> {
        if !p.nodes.iter().any(|n| matches!(n.op, Op::GatherQMM | Op::QuantizedMatmul)) {
            return vec![];
        }
        superopt_ir::passes::common_subexpressions(p);
        let producers: Producers =
            p.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().map(move |o| (*o, i))).collect();
        let mut made: Vec<(Node, Vec<usize>)> = vec![];
        let mut taken: BTreeSet<usize> = BTreeSet::new();
        for i in 0..p.nodes.len() {
            let found =
                swiglu(p, &producers, i, target, made.len()).or_else(|| combine(p, &producers, i, target, made.len()));
            if let Some((node, members)) = found {
                if members.iter().all(|m| !taken.contains(m)) {
                    taken.extend(members.iter().copied());
                    made.push((node, members));
                }
            }
        }
        for i in 0..p.nodes.len() {
            if taken.contains(&i) {
                continue;
            }
            if let Some(q) = product(p, i).and_then(|s| s.kernel(&format!("q{}", made.len()), Epilogue::Product)) {
                let n = &p.nodes[i];
                let node = kernel_node(q, target, operands(n), &[n], n.outputs[0]);
                taken.insert(i);
                made.push((node, vec![i]));
            }
        }
        let lines = made
            .iter()
            .map(|(n, _)| format!("kernel (quantized, {target:?}): {}", describe(n)).to_lowercase())
            .collect();
        crate::lower::replace(p, made);
        lines
    }

    /// The node that makes each value.
    type Producers = HashMap<ValueId, usize>;

    fn describe(n: &Node) -> String {
        Call::of_node(n)
            .map(|c| match c.body {
                Body::Quantized(q) => super::describe(&q),
                Body::Rows(k) => k.name,
                Body::Solve(s) => crate::solve::describe(&s),
            })
            .unwrap_or_default()
    }

    /// A `GatherQMM` the kernel computes: its shape and packing.
    struct Spec {
        gathered: bool,
        bits: u32,
        group: u32,
        k: i64,
        n: i64,
        dtype: Dtype,
        scales: Dtype,
    }

    impl Spec {
        fn kernel(&self, name: &str, epilogue: Epilogue) -> Option<Quantized> {
            let (shape, kind, dtypes) = ((self.k, self.n), (epilogue, self.gathered), (self.dtype, self.scales));
            Quantized::new(name, (self.bits, self.group), shape, kind, dtypes).ok()
        }

        fn same(&self, o: &Spec) -> bool {
            let key = |s: &Spec| (s.gathered, s.bits, s.group, s.k, s.n, s.dtype, s.scales);
            key(self) == key(o)
        }
    }

    fn int(n: &Node, i: usize) -> Option<i64> {
        n.args.get(i)?.int()?.as_const()
    }

    fn flag(n: &Node, i: usize) -> Option<bool> {
        match n.args.get(i)? {
            Arg::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Node `i` as a kernel's product: `GatherQMM(x, w, scales, biases, lhs, rhs)` (uint32
    /// indices of one shape) or `QuantizedMatmul(x, w, scales, biases)` (one matrix),
    /// affine (mode 0), transposed, float x of the output's dtype.
    fn product(p: &Program, i: usize) -> Option<Spec> {
        let n = &p.nodes[i];
        let gathered = match (n.op, n.inputs.len()) {
            (Op::GatherQMM, 6) => true,
            (Op::QuantizedMatmul, 4) => false,
            _ => return None,
        };
        if n.outputs.len() != 1 {
            return None;
        }
        let (group, bits, mode) = (int(n, 0)?, int(n, 1)?, int(n, 2)?);
        if mode != 0 || !flag(n, 3)? {
            return None;
        }
        let v = |k: usize| p.value(n.inputs[k]);
        let (x, w, s, b, out) = (v(0), v(1), v(2), v(3), p.value(n.outputs[0]));
        let k = *x.shape.last()?;
        let rank = w.shape.len();
        let rank_ok = rank == if gathered { 3 } else { 2 };
        let packed_ok = rank_ok && w.dtype == Dtype::Uint32 && w.shape[rank - 1] * 32 == k * bits;
        let groups = [w.shape[..rank - 1].to_vec(), vec![k / group.max(1)]].concat();
        let index_ok = !gathered || {
            let (lhs, rhs) = (v(4), v(5));
            lhs.dtype == Dtype::Uint32 && rhs.dtype == Dtype::Uint32 && lhs.shape == rhs.shape
        };
        let ok =
            packed_ok && s.shape == groups && b.shape == groups && s.dtype == b.dtype && index_ok && x.shape.len() >= 2;
        if !ok || out.dtype != x.dtype {
            return None;
        }
        let spec = Spec {
            gathered,
            bits: bits as u32,
            group: group as u32,
            k,
            n: w.shape[rank - 2],
            dtype: x.dtype,
            scales: s.dtype,
        };
        spec.kernel("check", Epilogue::Product)?;
        Some(spec)
    }

    /// Node `i` as the last of `silu(gate) * up` (`Multiply(Multiply(g, Sigmoid(g)), u)`,
    /// either order at each product) over a gate/up pair: the kernel node and the nodes
    /// it replaces.
    fn swiglu(
        p: &Program,
        producers: &Producers,
        i: usize,
        target: Target,
        index: usize,
    ) -> Option<(Node, Vec<usize>)> {
        let last = &p.nodes[i];
        if last.op != Op::Multiply {
            return None;
        }
        let producer = |v: ValueId| producers.get(&v).copied();
        let [a, b] = [last.inputs[0], last.inputs[1]];
        for (silu, up) in [(a, b), (b, a)] {
            let (Some(s), Some(u)) = (producer(silu), producer(up)) else { continue };
            let Some((g, sig)) = silu_of(p, producers, s) else { continue };
            let (Some(gs), Some(us)) = (product(p, g), product(p, u)) else { continue };
            let (gn, un) = (&p.nodes[g], &p.nodes[u]);
            let shared = operands(gn) == operands(un) && gs.same(&us);
            let members = vec![g, sig, s, u, i];
            if !shared || g == u || !used_only_inside(p, &members, last.outputs[0]) {
                continue;
            }
            let q = gs.kernel(&format!("q{index}"), Epilogue::SwiGlu)?;
            return Some((kernel_node(q, target, operands(gn), &[gn, un], last.outputs[0]), members));
        }
        None
    }

    /// Node `i` as `Reduce(sum, Multiply(Squeeze(GatherQMM), weights), axis)`: a gathered
    /// product with one row per pair (its `M` axis squeezed), times a weight per pair
    /// (expanded and broadcast over the columns), summed over the indices' last axis:
    /// the kernel node (the weights its last input) and the nodes it replaces.
    fn combine(
        p: &Program,
        producers: &Producers,
        i: usize,
        target: Target,
        index: usize,
    ) -> Option<(Node, Vec<usize>)> {
        let last = &p.nodes[i];
        if last.op != Op::Reduce || last.reduce_kind() != Some(ReduceKind::Sum) {
            return None;
        }
        let producer = |v: ValueId| producers.get(&v).copied();
        let mul = producer(last.inputs[0])?;
        let m = &p.nodes[mul];
        if m.op != Op::Multiply {
            return None;
        }
        for (y, weighted) in [(m.inputs[0], m.inputs[1]), (m.inputs[1], m.inputs[0])] {
            let Some(sq) = producer(y).filter(|s| p.nodes[*s].op == Op::Squeeze) else { continue };
            let Some(g) = producer(p.nodes[sq].inputs[0]) else { continue };
            let Some(spec) = product(p, g).filter(|s| s.gathered) else { continue };
            let gn = &p.nodes[g];
            let pairs = p.value(gn.inputs[4]).shape.clone();
            let r = pairs.len() as i64;
            let one_row = p.value(gn.outputs[0]).shape.get(r as usize) == Some(&1);
            if !one_row || axes(&p.nodes[sq]) != Some(vec![r]) || axes_at(last, 1) != Some(vec![r - 1]) {
                continue;
            }
            let columns = [pairs.as_slice(), &[spec.n]].concat();
            let summed = [&pairs[..pairs.len() - 1], &[1, spec.n]].concat();
            let shape = |v: ValueId| &p.value(v).shape;
            if *shape(m.outputs[0]) != columns || *shape(y) != columns || *shape(last.outputs[0]) != summed {
                continue;
            }
            let Some((wt, chain)) = weights_of(p, producers, weighted, &pairs) else { continue };
            let dtypes_ok = p.value(wt).dtype == spec.dtype && p.value(last.outputs[0]).dtype == spec.dtype;
            let members = [vec![g, sq, mul, i], chain].concat();
            if !dtypes_ok || !used_only_inside(p, &members, last.outputs[0]) {
                continue;
            }
            let q = spec.kernel(&format!("q{index}"), Epilogue::Combine)?;
            let mut node = kernel_node(q, target, operands(gn), &[gn], last.outputs[0]);
            node.inputs.push(wt);
            return Some((node, members));
        }
        None
    }

    /// `v` as a value of shape `pairs` with a unit axis appended (`ExpandDims` or
    /// `Reshape`), then maybe broadcast: that value and the nodes between.
    fn weights_of(p: &Program, producers: &Producers, v: ValueId, pairs: &[i64]) -> Option<(ValueId, Vec<usize>)> {
        let mut at = producers.get(&v).copied()?;
        let mut chain = vec![];
        if p.nodes[at].op == Op::Broadcast {
            let over_columns = p.value(p.nodes[at].outputs[0]).shape.len() == pairs.len() + 1;
            if !over_columns {
                return None;
            }
            chain.push(at);
            at = producers.get(&p.nodes[at].inputs[0]).copied()?;
        }
        let n = &p.nodes[at];
        let expanded = [pairs, &[1]].concat();
        let appends = match n.op {
            Op::ExpandDims => axes(n) == Some(vec![pairs.len() as i64]),
            Op::Reshape => true,
            _ => false,
        };
        let root = n.inputs[0];
        let shapes_ok = p.value(n.outputs[0]).shape == expanded && p.value(root).shape == pairs;
        chain.push(at);
        (appends && shapes_ok).then_some((root, chain))
    }

    /// A node's first argument as a list of axes.
    fn axes(n: &Node) -> Option<Vec<i64>> {
        axes_at(n, 0)
    }

    fn axes_at(n: &Node, i: usize) -> Option<Vec<i64>> {
        n.args.get(i)?.list()?.iter().map(|a| a.int()?.as_const()).collect()
    }

    /// A product's x and (gathered) its lhs and rhs indices: what a gate/up pair shares.
    fn operands(n: &Node) -> Vec<ValueId> {
        let mut ins = vec![n.inputs[0]];
        ins.extend_from_slice(&n.inputs[4..]);
        ins
    }

    /// Node `s` as `g * sigmoid(g)` (either order): the nodes of g and of the sigmoid.
    fn silu_of(p: &Program, producers: &Producers, s: usize) -> Option<(usize, usize)> {
        let n = &p.nodes[s];
        if n.op != Op::Multiply {
            return None;
        }
        let producer = |v: ValueId| producers.get(&v).copied();
        let [a, b] = [n.inputs[0], n.inputs[1]];
        [(a, b), (b, a)].into_iter().find_map(|(g, sg)| {
            let sig = producer(sg)?;
            (p.nodes[sig].op == Op::Sigmoid && p.nodes[sig].inputs[0] == g).then_some((producer(g)?, sig))
        })
    }

    /// Whether every value the `members` make, but `out`, is used by members alone and is
    /// no program output.
    fn used_only_inside(p: &Program, members: &[usize], out: ValueId) -> bool {
        let made: BTreeSet<ValueId> = members.iter().flat_map(|m| p.nodes[*m].outputs.iter().copied()).collect();
        let inner = |v: &ValueId| made.contains(v) && *v != out;
        let outside_use = p.nodes.iter().enumerate().any(|(j, n)| !members.contains(&j) && n.inputs.iter().any(inner));
        !outside_use && !p.outputs.iter().any(inner)
    }

    /// The kernel node: inputs x, lhs, rhs, then each product's weights, scales, biases.
    fn kernel_node(q: Quantized, target: Target, mut inputs: Vec<ValueId>, products: &[&Node], out: ValueId) -> Node {
        for n in products {
            inputs.extend_from_slice(&n.inputs[1..4]);
        }
        let call = Call { body: Body::Quantized(q), target, tuned: vec![] };
        Node { op: Call::OP, args: vec![call.to_arg()], inputs, outputs: vec![out] }
    }
}
