//! Quantized products as generated kernels: MLX's affine `gather_qmm` with `transpose=True`
//! (each pair `p` multiplies row block `x[lhs[p]]` by the dequantized weights of expert
//! `rhs[p]`) or dense `quantized_matmul` (every row of x by one weight matrix), alone, as
//! a gate/up pair that shares x (and the indices) with SwiGLU fused: `silu(x Wg^T) * (x Wu^T)`
//! in one pass over both packed weights, or (gathered) with a token's top-k pairs summed
//! times their weights (an MoE layer's down projection and combine).
//!
//! A warp (simdgroup) computes `NC` output columns of `R` rows: its lanes walk the packed
//! rows of the weights in chunks of 8 values (`bits` bytes: MLX packs every width as a
//! little-endian bit stream), dequantize in registers as `scale * q + bias` per group, and
//! accumulate in float32 as `scale * sum(q x) + bias * sum(x)`. Each x value a lane loads
//! serves the `NC` columns; each dequantized weight serves the rows that share its matrix:
//! a dense product's rows, or a gathered product's rows of one expert (taken in runs). At
//! decode shapes each weight is then read about once; there the packed weights are the floor.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// [`Quantized::rows_per_warp`] where rows may share matrices.
pub const SHARED_ROWS: u32 = 8;

/// Gathered rows per expert (on average) from which the launcher groups rows by default:
/// runs of one expert (mlx-lm's `SwitchGLU` sorts its pairs by expert from 64 on) then
/// share the weights; below, a warp would walk its rows' experts one after another. (On an
/// H200, 8 rows a warp were up to 1.6x faster than 1 at 256 rows of 128 experts, and up to
/// 1.15x slower at 64.)
pub const GROUPED_ROWS_PER_EXPERT: u32 = 2;

/// The most bytes of x a block stages ([`Quantized::stages`]): Metal's threadgroup memory
/// (CUDA's static shared memory allows 48 KiB).
pub const STAGE_BYTES: i64 = 32 * 1024;

/// How one launch covers the output: warps per block, rows and columns per warp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layout {
    pub warps: u32,
    pub rows: u32,
    pub cols: u32,
}

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
    /// largest that divides the rows), sharing each dequantized weight where they use one
    /// matrix: 8, but 1 for the combine (a token's pairs go to different experts).
    pub fn rows_per_warp(&self) -> u32 {
        if self.epilogue == Epilogue::Combine {
            1
        } else {
            SHARED_ROWS
        }
    }

    /// The launcher's columns per warp (`NC`): each x value a lane loads serves `NC`
    /// columns. 4 for one product, 2 for a gate/up pair, whose twice as many accumulators
    /// and weights would otherwise crowd the registers (on an H200, 4 was up to 1.4x
    /// slower there, and up to 2x faster than 1 for one product at 8 and 32 rows).
    pub fn cols_default(&self) -> u32 {
        4 / self.epilogue.products() as u32
    }

    /// What tuning times at `rows` rows: 4 warps, every power of two of rows a warp up to the
    /// most the launcher would take (the largest up to [`Quantized::rows_per_warp`] dividing
    /// `rows`), every column count [`Quantized::layouts`] allows with them; and 8 warps at the
    /// default columns, 1 row or the most. The launcher's default layout is among them. (On an
    /// H100, 256 pairs sorted by expert: 4 rows a warp were fastest for the gate/up pair and
    /// the down projection, 1.41x and 1.15x the default's 8.)
    pub fn tuning_space(&self, rows: i64) -> Vec<Layout> {
        let mut most = self.rows_per_warp();
        while most > 1 && rows % most as i64 != 0 {
            most /= 2;
        }
        let mut out: Vec<Layout> = self.layouts(4).into_iter().filter(|l| l.rows <= most).collect();
        out.extend([1, most].map(|rows| Layout { warps: 8, rows, cols: self.cols_default() }));
        out.dedup();
        out
    }

    /// Every layout the launcher may pick for this kernel: warps per block as given, rows
    /// per warp up to [`Quantized::rows_per_warp`], and 1, 2 or 4 columns per warp; for a
    /// gate/up pair at most 2 from 4 rows on (beyond, its accumulators and dequantized
    /// weights spill).
    pub fn layouts(&self, warps: u32) -> Vec<Layout> {
        let rows = (0..=self.rows_per_warp().trailing_zeros()).map(|b| 1 << b);
        let fits = |l: &Layout| self.epilogue.products() == 1 || l.rows < 4 || l.cols <= 2;
        rows.flat_map(|rows| [1, 2, 4].map(|cols| Layout { warps, rows, cols })).filter(fits).collect()
    }

    /// Whether a block of `rows` rows a warp stages its rows of x in threadgroup memory
    /// (`STAGE`): where [`Quantized::may_stage`] and they fit [`STAGE_BYTES`].
    pub fn stages(&self, rows: u32) -> bool {
        self.may_stage() && rows as i64 * self.k * self.dtype.size_bytes() as i64 <= STAGE_BYTES
    }

    /// Gathered 16-bit products other than the combine (whose warps read one row per pair).
    /// On an H100 at Qwen3-30B-A3B's expert dims, bfloat16, 200 calls queued: staging made
    /// the gate/up pair 1.04-1.11x faster at 1, 8 and 32 tokens and the down projection 1.12x
    /// at 8 and 32 (0.90x at one); float32 and dense products were up to 1.6x slower (twice
    /// the rows' bytes, fewer blocks a multiprocessor), so those read x where it is.
    pub fn may_stage(&self) -> bool {
        self.epilogue != Epilogue::Combine && self.gathered && self.dtype.size_bytes() == 2
    }

    /// Whether the weights are dequantized as `1 + q / 2^BITS` ([`Lang::dequant`]): for
    /// 16-bit x and outputs, whose rounding is far above the float32 sums' (about four times
    /// less exact that way, a few 1e-7 of a chunk's magnitude).
    pub fn fast(&self) -> bool {
        self.dtype.size_bytes() == 2
    }

    /// Packed bytes of one output column's weights.
    pub fn row_bytes(&self) -> i64 {
        self.k * self.bits as i64 / 8
    }
}

/// What the CUDA and Metal sources of a [`Quantized`] kernel spell differently.
#[derive(Clone, Copy, PartialEq)]
enum Lang {
    Cuda,
    Metal,
}

impl Lang {
    fn spell(self, cuda: &'static str, metal: &'static str) -> &'static str {
        match self {
            Lang::Cuda => cuda,
            Lang::Metal => metal,
        }
    }

    /// A global pointer's address space.
    fn space(self) -> &'static str {
        self.spell("", "device ")
    }

    fn unroll(self) -> &'static str {
        self.spell("#pragma unroll\n", "")
    }

    /// `lane`, the first of the warp's `NC` columns `n0`, and the block's index along x.
    fn indices(self) -> &'static str {
        self.spell(
            "  const int lane = threadIdx.x & 31;\n  \
             const int n0 = (blockIdx.y * WARPS + (threadIdx.x >> 5)) * NC;  // columns n0 .. n0 + NC - 1\n  \
             const size_t block = blockIdx.x;\n",
            "  const uint lane = thread_index_in_simdgroup;\n  \
             const int n0 = (threadgroup_position_in_grid.y * WARPS + simdgroup_index_in_threadgroup) * NC;\n  \
             const size_t block = threadgroup_position_in_grid.x;\n",
        )
    }

    /// `V` chunks of column `j`'s packed row of product `p` from chunk `c0` on, into `v{p}[j]`.
    fn load_chunks(self, p: usize) -> String {
        match self {
            Lang::Cuda => format!("so_chunks<BITS, V>(w{p}r[j], c0, v{p}[j]);"),
            Lang::Metal => format!(
                "for (int t = 0; t < V; ++t) {{ ulong v = 0; for (int b = 0; b < BITS; ++b) \
                 v |= ulong(w{p}r[j][BITS * (c0 + t) + b]) << (8 * b); v{p}[j][t] = v; }}"
            ),
        }
    }

    /// The block's `R` rows of x (row `r` at `row`) copied to `xs` in threadgroup memory
    /// when `STAGE`: the block's warps share its rows, and each reads them `NC` columns at a
    /// time; from there a read is a short wait, with no index to load first.
    fn stage(self, row: &str) -> String {
        let (decl, thread, copy, barrier) = match self {
            Lang::Cuda => (
                "__shared__ __align__(sizeof(SoPack<T, 8>)) T",
                "threadIdx.x",
                format!(
                    "*reinterpret_cast<SoPack<T, 8>*>(xs + r * K + c * 8) = \
                     *reinterpret_cast<const SoPack<T, 8>*>({row} + c * 8);"
                ),
                "__syncthreads();",
            ),
            Lang::Metal => (
                "threadgroup T",
                "int(thread_position_in_threadgroup.x)",
                format!("for (int v = 0; v < 8; ++v) xs[r * K + c * 8 + v] = ({row})[c * 8 + v];"),
                "threadgroup_barrier(mem_flags::mem_threadgroup);",
            ),
        };
        format!(
            "  {decl} xs[STAGE ? R * K : 8];  // the block's rows of x (STAGE)\n  if (STAGE) {{\n    \
             for (int i = {thread}; i < R * CHUNKS; i += 32 * WARPS) {{\n      \
             const int r = i / CHUNKS, c = i % CHUNKS;\n      {copy}\n    }}\n    {barrier}\n  }}\n"
        )
    }

    /// `xf[8]` and their sum `sx`: the 8 values of chunk `c` of the x row at `row`, or (where
    /// `staged` and `STAGE`) of row `r` of `xs`.
    fn x_chunk(self, row: &str, pad: &str, staged: bool) -> String {
        let (load, value) = match (self, staged) {
            (Lang::Cuda, false) => (
                format!("{pad}const SoPack<T, 8> xp = *reinterpret_cast<const SoPack<T, 8>*>({row} + c * 8);\n"),
                "so_to_float(xp.v[i])".to_string(),
            ),
            (Lang::Cuda, true) => (
                format!(
                    "{pad}const SoPack<T, 8> xp = STAGE ? *reinterpret_cast<const SoPack<T, 8>*>(xs + r * K + c * 8)\n\
                     {pad}                            : *reinterpret_cast<const SoPack<T, 8>*>({row} + c * 8);\n"
                ),
                "so_to_float(xp.v[i])".to_string(),
            ),
            (Lang::Metal, false) => (format!("{pad}const device T* xr = {row};\n"), "float(xr[c * 8 + i])".to_string()),
            (Lang::Metal, true) => (
                format!("{pad}const device T* xr = {row};\n"),
                "(STAGE ? float(xs[r * K + c * 8 + i]) : float(xr[c * 8 + i]))".to_string(),
            ),
        };
        format!(
            "{load}{pad}float xf[8], sx = 0.0f;\n{}{pad}for (int i = 0; i < 8; ++i) {{\n{pad}  xf[i] = {value};\n\
             {pad}  sx += xf[i];\n{pad}}}\n",
            self.unroll()
        )
    }

    fn to_float(self, v: &str) -> String {
        match self {
            Lang::Cuda => format!("so_to_float({v})"),
            Lang::Metal => format!("float({v})"),
        }
    }

    /// `v` summed over the warp's lanes, in place.
    fn warp_sum(self, v: &str) -> String {
        match self {
            Lang::Cuda => format!("for (int o = 16; o > 0; o >>= 1) {v} += __shfl_xor_sync(0xffffffffu, {v}, o);"),
            Lang::Metal => format!("{v} = simd_sum({v});"),
        }
    }

    /// `qv`: value `i` of chunk `v` as a float, from the 32-bit word holding it (64-bit
    /// shifts cost two to three instructions). Exact: its bits under a float's of 2^23,
    /// less 2^23 (an int-to-float conversion runs at an eighth of a float add's rate, compute
    /// capability 9.0). [`Quantized::fast`]: `1 + q / 2^BITS`, the value as the top bits of
    /// 1.0's mantissa, a shift and a masked or with no add; [`Lang::scale_bias`] then makes
    /// `scale * q + bias` of it.
    fn dequant(self, v: &str, fast: bool, pad: &str) -> String {
        let (ui, bits) = (self.spell("unsigned", "uint"), self.spell("__uint_as_float", "as_type<float>"));
        let value = if fast {
            let or = match self {
                // one LOP3 with 1.0's bits in a register (ptxas splits `(a & m) | c` in two)
                Lang::Cuda => format!(
                    "{pad}unsigned qb;\n{pad}asm(\"lop3.b32 %0, %1, %2, %3, 0xEA;\" : \"=r\"(qb) : \"r\"(moved), \
                     \"n\"(unsigned(MASK) << (23 - BITS)), \"r\"(0x3F800000u));\n"
                ),
                Lang::Metal => format!("{pad}const uint qb = (moved & (uint(MASK) << (23 - BITS))) | 0x3F800000u;\n"),
            };
            format!(
                "{pad}const int up = 23 - BITS - sh;\n{pad}const {ui} moved = up >= 0 ? w << up : w >> -up;\n\
                 {or}{pad}const float qv = {bits}(qb);\n"
            )
        } else {
            format!("{pad}const float qv = {bits}(((w >> sh) & {ui}(MASK)) | 0x4B000000u) - 8388608.0f;\n")
        };
        format!(
            "{pad}const int at = BITS * i;  // the value's first bit in the chunk\n\
             {pad}const {ui} w = at + BITS <= 32 ? {ui}({v}) : at >= 32 ? {ui}({v} >> 32) : {ui}({v} >> at);\n\
             {pad}const int sh = at + BITS <= 32 ? at : at >= 32 ? at - 32 : 0;  // its first bit in w\n{value}"
        )
    }

    /// `sc` and `bi`, group `g`'s scale and bias of column `j`'s row `r` of product (`s`, `b`)
    /// as [`Lang::dequant`]'s values want them: `fast`, `2^BITS scale` and `bias - 2^BITS
    /// scale` (so that `sc * (1 + q / 2^BITS) + bi` is `scale * q + bias`).
    fn scale_bias(self, s: &str, b: &str, fast: bool) -> (String, String) {
        let (s, b) = (self.to_float(&format!("{s}[j][g]")), self.to_float(&format!("{b}[j][g]")));
        if fast {
            (format!("({s} * float(1 << BITS))"), format!("({b} - {s} * float(1 << BITS))"))
        } else {
            (s, b)
        }
    }

    /// `v` rounded to the output's dtype and back: where the original program rounds.
    fn round(self, v: &str) -> String {
        self.to_float(&self.store(v))
    }

    fn store(self, v: &str) -> String {
        match self {
            Lang::Cuda => format!("so_from_float<O>({v})"),
            Lang::Metal => format!("O({v})"),
        }
    }

    /// The lowest clear bit of `done`.
    fn first_clear(self) -> &'static str {
        self.spell("__ffs(~done) - 1", "int(ctz(~done))")
    }

    fn byte(self) -> &'static str {
        self.spell("unsigned char", "uchar")
    }

    /// 1 as a 64-bit literal.
    fn one(self) -> &'static str {
        self.spell("ull", "ul")
    }

    fn u64(self) -> &'static str {
        self.spell("unsigned long long", "ulong")
    }
}

/// The body for `mx.fast.cuda_kernel`, with [`crate::cuda::HEADER`] and the template
/// constants `T` (x), `S` (scales), `O` (out), `K`, `N`, `M` (rows per pair), `WARPS`,
/// `R` (rows per warp, dividing the rows), `NC` (columns per warp), (combine) `TOPK` and
/// (the others) `STAGE` ([`Quantized::stages`]).
pub fn cuda_source(q: &Quantized) -> String {
    source(q, Lang::Cuda)
}

/// The body for `mx.fast.metal_kernel`, with [`crate::metal::HEADER`]: the same walk,
/// one simdgroup per `NC` output columns of `R` rows.
pub fn metal_source(q: &Quantized) -> String {
    source(q, Lang::Metal)
}

fn source(q: &Quantized, l: Lang) -> String {
    let what = match q.epilogue {
        Epilogue::Product => "",
        Epilogue::SwiGlu => ", silu(gate) * up",
        Epilogue::Combine => ", TOPK pairs combined",
    };
    let mut s = format!(
        "  // {}: {} bits, groups of {}, K = {}, N = {}{what}\n  \
         constexpr int BITS = {};\n  constexpr int GROUP = {};\n  constexpr int V = {};\n  \
         constexpr int CHUNKS = K / 8;  // 8 values in BITS bytes\n  constexpr {} MASK = (1{} << BITS) - 1;\n",
        q.name,
        q.bits,
        q.group_size,
        q.k,
        q.n,
        q.bits,
        q.group_size,
        q.vec,
        l.u64(),
        l.one()
    );
    s.push_str(l.indices());
    if q.epilogue == Epilogue::Combine {
        s.push_str("  if (n0 >= N) return;\n");
        s.push_str(&combine_walk(q, l));
    } else {
        s.push_str(&rows_walk(q, l));
    }
    s
}

/// Product and SwiGLU: `R` rows times `NC` columns per warp. Gathered rows go in runs of
/// one expert (a warp's rows whose `rhs` is the first pending row's), so rows of one
/// expert (sorted indices) share each weight's load and dequantization as dense rows do.
fn rows_walk(q: &Quantized, l: Lang) -> String {
    let u = l.unroll();
    let products = q.epilogue.products();
    let mut s = String::from("  const size_t row0 = block * R;  // rows pair * M + m\n");
    s.push_str(&l.stage(x_row(q)));
    s.push_str("  if (n0 >= N) return;\n");
    for p in 0..products {
        s.push_str(&format!(
            "  float acc{p}[R][NC];\n{u}  for (int r = 0; r < R; ++r)\n{u}    \
             for (int j = 0; j < NC; ++j) acc{p}[r][j] = 0.0f;\n"
        ));
    }
    if q.gathered {
        s.push_str(&format!(
            "  unsigned done = 0;\n  while (done != (1u << R) - 1) {{  // a run: the pending rows of one expert\n    \
             const auto e = rhs[(row0 + {}) / M];\n    unsigned mine = 0;\n{u}    \
             for (int r = 0; r < R; ++r)\n      \
             if (!((done >> r) & 1) && rhs[(row0 + r) / M] == e) mine |= 1u << r;\n    \
             done |= mine;\n    const size_t base = size_t(e) * N;\n",
            l.first_clear()
        ));
    } else {
        s.push_str("  {\n    const unsigned mine = (1u << R) - 1;\n    const size_t base = 0;\n");
    }
    s.push_str(&columns(q, l, "    ", "base"));
    s.push_str("    for (int c0 = lane * V; c0 < CHUNKS; c0 += 32 * V) {\n");
    for p in 0..products {
        s.push_str(&format!(
            "      {} v{p}[NC][V];\n{u}      for (int j = 0; j < NC; ++j) {}\n",
            l.u64(),
            l.load_chunks(p)
        ));
    }
    s.push_str(&format!("{u}      for (int t = 0; t < V; ++t) {{\n        const int c = c0 + t;\n"));
    s.push_str("        const int g = (c * 8) / GROUP;\n");
    for p in 0..products {
        let (sc, bi) = l.scale_bias(&format!("s{p}r"), &format!("b{p}r"), q.fast());
        s.push_str(&format!(
            "        float q{p}[NC][8], sc{p}[NC], bi{p}[NC];\n\
             {u}        for (int j = 0; j < NC; ++j) {{\n{u}          \
             for (int i = 0; i < 8; ++i) {{\n{}            q{p}[j][i] = qv;\n          }}\n          \
             sc{p}[j] = {sc};\n          bi{p}[j] = {bi};\n        }}\n",
            l.dequant(&format!("v{p}[j][t]"), q.fast(), "            "),
        ));
    }
    s.push_str(&format!("{u}        for (int r = 0; r < R; ++r) {{\n          if (!((mine >> r) & 1)) continue;\n"));
    s.push_str(&l.x_chunk(x_row(q), "          ", true));
    s.push_str(&format!("{u}          for (int j = 0; j < NC; ++j) {{\n"));
    for p in 0..products {
        s.push_str(&format!(
            "            float qx{p} = 0.0f;\n{u}            for (int i = 0; i < 8; ++i) qx{p} += q{p}[j][i] * xf[i];\n\
             \x20           acc{p}[r][j] += sc{p}[j] * qx{p} + bi{p}[j] * sx;\n"
        ));
    }
    s.push_str("          }\n        }\n      }\n    }\n  }\n");
    s.push_str(&format!("{u}  for (int r = 0; r < R; ++r) {{\n{u}    for (int j = 0; j < NC; ++j) {{\n"));
    for p in 0..products {
        s.push_str(&format!("      {}\n", l.warp_sum(&format!("acc{p}[r][j]"))));
    }
    let value = if products == 2 {
        // As the original rounds: each product, the sigmoid and silu in the output's dtype.
        let (g, up) = (l.round("acc0[r][j]"), l.round("acc1[r][j]"));
        let silu = l.round(&format!("g * {}", l.round("so_sigmoid(g)")));
        s.push_str(&format!("      const float g = {g}, up = {up}, silu = {silu};\n"));
        "silu * up"
    } else {
        "acc0[r][j]"
    };
    s.push_str(&format!(
        "      if (lane == 0 && n0 + j < N) out[(row0 + r) * N + n0 + j] = {};\n    }}\n  }}\n",
        l.store(value)
    ));
    s
}

/// Combine: a warp walks its `NC` columns of each of a token's `TOPK` pairs' experts in
/// turn (one row of x per pair) and adds the pair's products times its weight.
fn combine_walk(q: &Quantized, l: Lang) -> String {
    let u = l.unroll();
    let mut s = format!(
        "  const size_t token = block;  // TOPK consecutive pairs\n  float acc0[NC];\n{u}  \
         for (int j = 0; j < NC; ++j) acc0[j] = 0.0f;\n  for (int t0 = 0; t0 < TOPK; ++t0) {{\n    \
         const size_t pair = token * TOPK + t0;\n    const size_t base = size_t(rhs[pair]) * N;\n    \
         const {}T* xp0 = x + size_t(lhs[pair]) * M * K;  // M is 1: one row per pair\n",
        l.space()
    );
    s.push_str(&columns(q, l, "    ", "base"));
    s.push_str(&format!("    float part[NC];\n{u}    for (int j = 0; j < NC; ++j) part[j] = 0.0f;\n"));
    s.push_str(&format!(
        "    for (int c0 = lane * V; c0 < CHUNKS; c0 += 32 * V) {{\n      {} v0[NC][V];\n{u}      \
         for (int j = 0; j < NC; ++j) {}\n{u}      for (int t = 0; t < V; ++t) {{\n        \
         const int c = c0 + t;\n        \
         const int g = (c * 8) / GROUP;\n",
        l.u64(),
        l.load_chunks(0)
    ));
    s.push_str(&l.x_chunk("xp0", "        ", false));
    let (sc, bi) = l.scale_bias("s0r", "b0r", q.fast());
    s.push_str(&format!(
        "{u}        for (int j = 0; j < NC; ++j) {{\n          float qx = 0.0f;\n{u}          \
         for (int i = 0; i < 8; ++i) {{\n{}            qx += qv * xf[i];\n          }}\n          \
         part[j] += {sc} * qx + {bi} * sx;\n        }}\n      }}\n    }}\n    const float weight = {};\n{u}    \
         for (int j = 0; j < NC; ++j) {{\n      {}\n      acc0[j] += {};\n    }}\n  }}\n",
        l.dequant("v0[j][t]", q.fast(), "            "),
        l.to_float("wt[pair]"),
        l.warp_sum("part[j]"),
        l.round(&format!("weight * {}", l.round("part[j]")))
    ));
    s.push_str(&format!(
        "{u}  for (int j = 0; j < NC; ++j) {{\n    \
         if (lane == 0 && n0 + j < N) out[token * N + n0 + j] = {};\n  }}\n",
        l.store("acc0[j]")
    ));
    s
}

/// Each product's packed rows, scales and biases of the warp's `NC` columns from `base`
/// (a column past `N` reads the last one, and is not stored).
fn columns(q: &Quantized, l: Lang, pad: &str, base: &str) -> String {
    let (u, sp) = (l.unroll(), l.space());
    let mut s = String::new();
    for p in 0..q.epilogue.products() {
        s.push_str(&format!(
            "{pad}const {sp}{byte}* w{p}r[NC];\n{pad}const {sp}S* s{p}r[NC];\n{pad}const {sp}S* b{p}r[NC];\n",
            byte = l.byte()
        ));
    }
    s.push_str(&format!("{u}{pad}for (int j = 0; j < NC; ++j) {{\n"));
    s.push_str(&format!("{pad}  const size_t col = {base} + min(n0 + j, N - 1);\n"));
    for p in 0..q.epilogue.products() {
        s.push_str(&format!(
            "{pad}  w{p}r[j] = (const {sp}{byte}*)(w{p}) + col * (K * BITS / 8);\n\
             {pad}  s{p}r[j] = s{p} + col * (K / GROUP);\n{pad}  b{p}r[j] = b{p} + col * (K / GROUP);\n",
            byte = l.byte()
        ));
    }
    s.push_str(&format!("{pad}}}\n"));
    s
}

/// Row `row0 + r`'s x: by its pair's lhs index, or (dense) the row itself.
fn x_row(q: &Quantized) -> &'static str {
    if q.gathered {
        "x + (size_t(lhs[(row0 + r) / M]) * M + (row0 + r) % M) * K"
    } else {
        "x + (row0 + r) * K"
    }
}

/// What MLX's CUDA backend wraps around [`cuda_source`] for `m` rows per pair and `layout`
/// (warps per block, rows and columns per warp) and (combine) 8 pairs per output row, for
/// compiling it without MLX (see [`crate::cuda::mlx_module`]).
pub fn mlx_function(name: &str, q: &Quantized, m: i64, layout: Layout) -> String {
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
        format!("constexpr int WARPS = {};", layout.warps),
        format!("constexpr int R = {};", layout.rows),
        format!("constexpr int NC = {};", layout.cols),
        format!("constexpr int STAGE = {};", i32::from(q.stages(layout.rows))),
        "constexpr int TOPK = 8;".to_string(),
    ];
    format!(
        "__global__ void {name}(\n    {}) {{\n  {}\n{}\n}}\n",
        params.join(",\n    "),
        consts.join("\n  "),
        cuda_source(q)
    )
}

/// Python defining `_k{index}(x, lhs, rhs, w0, s0, b0, ..., warps=None, rows_per_warp=None,
/// cols=None, stage=None)` for `target`: x of shape `[..., M, K]` (its batch flattened), the indices of
/// one shape `P`, the output `P + [M, N]` (combine: `P[:-1] + [1, N]`, M being 1). One block
/// of `warps` warps per `warps * cols` output columns of `r` rows (by default
/// [`Quantized::rows_per_warp`], but for gathered rows only from [`GROUPED_ROWS_PER_EXPERT`]
/// rows per expert on; halved until it divides the rows; columns [`Quantized::cols_default`]);
/// row blocks along x
/// (CUDA allows 65535 blocks along y); x staged where [`Quantized::stages`] says, or as `stage` says.
/// Needs the module's `_KERNEL_HEADER` ([`crate::launch::preamble`]).
pub fn launcher(q: &Quantized, index: usize, target: crate::Target, tuned: &BTreeMap<i64, Layout>) -> String {
    let (make, source) = match target {
        crate::Target::Cuda => ("mx.fast.cuda_kernel", cuda_source(q)),
        crate::Target::Metal => ("mx.fast.metal_kernel", metal_source(q)),
        crate::Target::Mlx => return mlx_launcher(q, index),
    };
    let ins = q.inputs();
    let quoted: Vec<String> = ins.iter().map(|n| format!("{n:?}")).collect();
    let combine = q.epilogue == Epilogue::Combine;
    let most = q.rows_per_warp();
    let rows_choice = match (q.epilogue, q.gathered) {
        (Epilogue::Combine, _) => "1".to_string(), // the kernel reads no R: one row a warp
        (_, false) => format!("rows_per_warp or tuned[1] or ({most})"),
        (_, true) => {
            format!("rows_per_warp or tuned[1] or ({most} if rows >= {GROUPED_ROWS_PER_EXPERT} * w0.shape[0] else 1)")
        }
    };
    let table: Vec<String> =
        tuned.iter().map(|(rows, l)| format!("{rows}: ({}, {}, {})", l.warps, l.rows, l.cols)).collect();
    format!(
        r#"_K{index}_SOURCE = r"""
{source}"""
_K{index} = None  # made at the first call: only a GPU backend can
_K{index}_TUNED = {{{table}}}  # rows: (warps, rows and columns per warp) picked on the device


def _k{index}({args}, warps=None, rows_per_warp=None, cols=None, stage=None):
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
    if _LAUNCHES is not None:  # with the arrays: tuning needs real indices and packed weights
        _LAUNCHES.append(({index}, (rows, {n}), [(a.shape, a.dtype) for a in ({args},)], [{args}]))
    tuned = _K{index}_TUNED.get(rows, (None, None, None))
    warps = warps or tuned[0] or 4
    r = {rows_choice}
    while rows % r:
        r //= 2
    cols = cols or tuned[2] or ({cols_default})
{stage}    threads = 32 * warps
    blocks = -(-{n} // (warps * cols))
    (out,) = _K{index}(
        inputs=[{operands}, {weights}],
        template=[("T", x.dtype), ("S", s0.dtype), ("O", x.dtype), ("K", k), ("N", {n}), ("M", m), ("WARPS", warps),
                  ("R", r), ("NC", cols){templates}],
        grid=(rows // r * threads, blocks, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[{out_shape}],
        output_dtypes=[x.dtype],
    )
    return out


"#,
        table = table.join(", "),
        args = ins.join(", "),
        name = q.name,
        what = describe(q),
        digest = digest(&source),
        quoted = quoted.join(", "),
        n = q.n,
        cols_default = q.cols_default(),
        weights = ins[if q.gathered { 3 } else { 1 }..].join(", "),
        templates = if combine { ", (\"TOPK\", lhs.shape[-1])" } else { ", (\"STAGE\", stage)" },
        stage = if combine {
            String::new()
        } else {
            let may = if q.may_stage() { "True" } else { "False" };
            format!(
                "    stage = int({may} and r * k * x.dtype.size <= {STAGE_BYTES} if stage is None else stage)\
                 \x20 # Quantized::stages\n"
            )
        },
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
pub fn digest(source: &str) -> String {
    use sha2::{Digest, Sha256};
    let text = format!("{}{source}", crate::cuda::HEADER);
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The kernel's meaning in plain MLX, rounded where the GPU code rounds (as the original
/// does): `mx.gather_qmm` per product, then SwiGLU or the combine in x's dtype (a sum
/// accumulates in float32). A function `_k{index}(x, lhs, rhs, w0, s0, b0, ...)`.
pub fn mlx_launcher(q: &Quantized, index: usize) -> String {
    let args = q.inputs().join(", ");
    let indices = if q.gathered { "lhs_indices=lhs, rhs_indices=rhs, " } else { "" };
    let f = if q.gathered { "gather_qmm" } else { "quantized_matmul" };
    let product = |p: usize| {
        format!("mx.{f}(x, w{p}, s{p}, b{p}, {indices}transpose=True, group_size={}, bits={})", q.group_size, q.bits)
    };
    let value = match q.epilogue {
        Epilogue::Product => format!("    out = {}\n", product(0)),
        Epilogue::SwiGlu => {
            format!("    gate = {}\n    up = {}\n    out = gate * mx.sigmoid(gate) * up\n", product(0), product(1))
        }
        Epilogue::Combine => {
            format!("    y = {}\n    out = mx.sum(y * wt[..., None, None], axis=-3)\n", product(0))
        }
    };
    let doc = format!("    \"\"\"{}: its meaning in plain MLX.\"\"\"", q.name);
    let signature = format!("def _k{index}({args}, warps=None, rows_per_warp=None, cols=None, stage=None):");
    format!("{signature}\n{doc}\n{value}    return out\n\n\n")
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
            assert!(src.contains("silu * up"), "{src}");
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
    fn fast_dequantization_scales_and_biases_are_whole_terms() {
        for l in [Lang::Cuda, Lang::Metal] {
            let (sc, bi) = l.scale_bias("s0r", "b0r", true);
            // pasted into `sc * qx + bi * sx` (the combine does), each must bind as one term
            for term in [&sc, &bi] {
                assert!(term.starts_with('(') && term.ends_with(')'), "{term}");
            }
            assert!(bi.contains(" - "), "bias less 2^BITS scale: {bi}");
            assert_eq!(l.scale_bias("s0r", "b0r", false), (l.to_float("s0r[j][g]"), l.to_float("b0r[j][g]")));
        }
        let combine = Quantized { epilogue: Epilogue::Combine, ..moe(4) };
        assert!(cuda_source(&combine).contains("* qx + (so_to_float(b0r[j][g]) - "), "{}", cuda_source(&combine));
        let f32 = Quantized { dtype: Dtype::Float32, scales: Dtype::Float32, ..combine.clone() };
        assert!(!f32.fast() && combine.fast());
        assert!(cuda_source(&f32).contains("- 8388608.0f;"), "float32 dequantizes exactly");
    }

    #[test]
    fn the_rows_of_a_dense_product_share_each_dequantized_weight() {
        let dtypes = (Dtype::Bfloat16, Dtype::Bfloat16);
        let dense = Quantized::new("mlp", (4, 64), (4096, 14336), (Epilogue::SwiGlu, false), dtypes).unwrap();
        let combine = Quantized { epilogue: Epilogue::Combine, ..moe(4) };
        assert_eq!(
            (dense.rows_per_warp(), moe(4).rows_per_warp(), combine.rows_per_warp()),
            (SHARED_ROWS, SHARED_ROWS, 1),
            "a token's pairs have different experts"
        );
        for src in [cuda_source(&dense), metal_source(&dense), cuda_source(&moe(4)), metal_source(&moe(4))] {
            // Dequantized once per chunk, outside the loop over the R rows that use it.
            assert_eq!(src.matches("q0[j][i] = qv;").count(), 1, "{src}");
            assert!(src.find("q0[j][i] = qv;") < src.find("for (int r = 0; r < R; ++r) {\n"), "{src}");
        }
        let py = launcher(&dense, 0, crate::Target::Cuda, &BTreeMap::new());
        assert!(py.contains("r = rows_per_warp or tuned[1] or (8)\n    while rows % r:\n        r //= 2"), "{py}");
        assert!(py.contains("grid=(rows // r * threads, blocks, 1)"), "{py}");
        let gathered = launcher(&moe(4), 0, crate::Target::Cuda, &BTreeMap::new());
        assert!(gathered.contains("r = rows_per_warp or tuned[1] or (8 if rows >= 2 * w0.shape[0] else 1)\n"));
        let combined = launcher(&combine, 0, crate::Target::Cuda, &BTreeMap::new());
        assert!(combined.contains("    r = 1\n"), "a combine's kernel reads no R: {combined}");
    }

    #[test]
    fn a_tuned_layout_is_taken_by_rows_unless_the_call_names_one() {
        let picked =
            BTreeMap::from([(64, Layout { warps: 8, rows: 1, cols: 4 }), (256, Layout { warps: 4, rows: 8, cols: 2 })]);
        let py = launcher(&moe(4), 0, crate::Target::Cuda, &picked);
        assert!(py.contains("_K0_TUNED = {64: (8, 1, 4), 256: (4, 8, 2)}"), "{py}");
        assert!(py.contains("tuned = _K0_TUNED.get(rows, (None, None, None))\n    warps = warps or tuned[0] or 4\n"));
        assert!(py.contains("cols = cols or tuned[2] or (2)\n"), "{py}");
        // Launches are recorded with their arrays, which tuning calls again.
        assert!(py.contains("_LAUNCHES.append((0, (rows, 768), [(a.shape, a.dtype) for a in (x, lhs, rhs, w0,"));
        assert!(launcher(&moe(4), 0, crate::Target::Cuda, &BTreeMap::new()).contains("_K0_TUNED = {}"));
    }

    #[test]
    fn gathered_rows_go_in_runs_of_one_expert() {
        let dense = Quantized { gathered: false, ..moe(4) };
        for (gathered, other) in
            [(cuda_source(&moe(4)), cuda_source(&dense)), (metal_source(&moe(4)), metal_source(&dense))]
        {
            // A run takes the pending rows whose expert is the first pending row's; every row is taken once.
            assert!(gathered.contains("while (done != (1u << R) - 1)"), "{gathered}");
            assert!(gathered.contains("if (!((done >> r) & 1) && rhs[(row0 + r) / M] == e) mine |= 1u << r;"));
            assert!(gathered.contains("const size_t base = size_t(e) * N;"));
            assert!(!other.contains("done") && other.contains("const unsigned mine = (1u << R) - 1;"), "{other}");
        }
    }

    #[test]
    fn a_warp_computes_nc_columns_and_stores_only_those_below_n() {
        for q in [moe(4), Quantized { epilogue: Epilogue::Combine, ..moe(4) }] {
            for src in [cuda_source(&q), metal_source(&q)] {
                assert!(src.contains("const size_t col = base + min(n0 + j, N - 1);"), "{src}");
                assert!(src.contains("if (lane == 0 && n0 + j < N) out["), "{src}");
                // One x chunk, loaded once, serves the NC columns.
                assert_eq!(src.matches("xf[i] = ").count(), 1, "{src}");
                assert!(src.find("xf[i] = ") < src.rfind("for (int j = 0; j < NC; ++j) {\n"), "{src}");
            }
        }
        assert_eq!(moe(4).layouts(4).len(), 10);
        // Tuning: every row count up to 8 (where 8 divide them), their columns, and 8 warps.
        let space = moe(4).tuning_space(64);
        assert_eq!(space.len(), 3 + 3 + 2 + 2 + 2, "rows 1, 2, 4 and 8 at 4 warps; 8 warps: {space:?}");
        assert!(space.contains(&Layout { warps: 8, rows: 8, cols: 2 }));
        assert!(space.contains(&Layout { warps: 4, rows: 4, cols: 2 }), "the fastest at 256 sorted pairs");
        let four = moe(4).tuning_space(4);
        assert!(four.iter().all(|l| l.rows <= 4), "the launcher halves 8 to divide 4: {four:?}");
        assert!(four.contains(&Layout { warps: 4, rows: 4, cols: 2 }), "its default is timed too");
        assert_eq!(Quantized { epilogue: Epilogue::Product, ..moe(4) }.layouts(4).len(), 12);
        assert_eq!((moe(4).cols_default(), Quantized { epilogue: Epilogue::Product, ..moe(4) }.cols_default()), (2, 4));
        assert_eq!(Quantized { epilogue: Epilogue::Combine, ..moe(4) }.layouts(2).len(), 3);
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
        // The decision path (a router's 8-bit product) stays MLX's: see decision_path.
        let mut taken: BTreeSet<usize> = crate::lower::decision_path(p);
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
                Body::Scan(s) => crate::scan::describe(&s),
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
