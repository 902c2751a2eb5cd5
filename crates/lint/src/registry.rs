//! Every rule, in one table: its code, its name, and what it finds, why that is slow, and the fix.
//! SO1xx rules read Python; SO2xx rules read the kernel sources given to `mx.fast.metal_kernel`
//! and `mx.fast.cuda_kernel`.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    RmsNorm,
    LayerNorm,
    Softmax,
    Silu,
    Gelu,
    Rope,
    Attention,
    RepeatKv,
    PerCallTable,
    LayoutRoundTrip,
    RowUpdateLoop,
    HostSyncInLoop,
    Float64,
    MatmulOrder,
    KernelThreadgroup,
    KernelTreeReduce,
    KernelHalfAccumulator,
    KernelScalarLoads,
    KernelDivergentBarrier,
    KernelDouble,
}

pub struct RuleDoc {
    pub rule: Rule,
    pub code: &'static str,
    pub name: &'static str,
    pub what: &'static str,
    pub why: &'static str,
    pub fix: &'static str,
}

/// The registry: one row per rule, in code order.
pub const RULES: &[RuleDoc] = &[
    RuleDoc {
        rule: Rule::RmsNorm,
        code: "SO101",
        name: "hand-rms-norm",
        what: "x * rsqrt(mean(x**2, axis=-1) + eps), however spelled (1 / sqrt, ** -0.5, a sum over n).",
        why: "Four or five kernels and passes over x where one fused kernel reads x once.",
        fix: "mx.fast.rms_norm(x, weight, eps) (or nn.RMSNorm).",
    },
    RuleDoc {
        rule: Rule::LayerNorm,
        code: "SO102",
        name: "hand-layer-norm",
        what: "(x - mean(x)) * rsqrt(var(x) + eps) over the last axis.",
        why: "Two reductions and several elementwise passes where one fused kernel reads x once.",
        fix: "mx.fast.layer_norm(x, weight, bias, eps) (or nn.LayerNorm).",
    },
    RuleDoc {
        rule: Rule::Softmax,
        code: "SO103",
        name: "hand-softmax",
        what: "exp(x - max(x)) / sum(exp(x - max(x))), with or without the max, or exp(x - logsumexp(x)).",
        why: "Three or four passes over the scores where mx.softmax makes one (and is safe without the max).",
        fix: "mx.softmax(x, axis=-1) (precise=True to accumulate half inputs in float32).",
    },
    RuleDoc {
        rule: Rule::Silu,
        code: "SO104",
        name: "hand-silu",
        what: "x * sigmoid(x), or x / (1 + exp(-x)), outside a function mx.compile wraps.",
        why: "Two or three elementwise kernels where nn.silu is one (compiled).",
        fix: "nn.silu(x).",
    },
    RuleDoc {
        rule: Rule::Gelu,
        code: "SO105",
        name: "hand-gelu",
        what: "0.5 * x * (1 + erf(x / sqrt(2))), its tanh approximation, or x * sigmoid(1.702 * x), \
               outside a function mx.compile wraps.",
        why: "Five or more elementwise kernels where nn.gelu is one compiled function.",
        fix: "nn.gelu(x), nn.gelu_approx(x) or nn.gelu_fast_approx(x).",
    },
    RuleDoc {
        rule: Rule::Rope,
        code: "SO106",
        name: "hand-rope",
        what: "x * cos + rotate_half(x) * sin, or the halves of x's last axis combined with cos and sin.",
        why: "Slices, a concatenation and four products where mx.fast.rope is one kernel that needs no tables.",
        fix: "mx.fast.rope(x, dims, traditional=False, base=base, scale=1.0, offset=offset) (or nn.RoPE); \
              traditional=True for even/odd pairs. It takes positions offset + arange: 2-D and 3-D (vision, \
              M-RoPE) positions stay hand-written or go through its freqs argument.",
    },
    RuleDoc {
        rule: Rule::Attention,
        code: "SO107",
        name: "hand-attention",
        what: "softmax(q @ k.T * scale + mask) @ v, by matmul or einsum.",
        why: "The scores matrix is written to memory and read back; the fused kernel never stores it.",
        fix: "mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask).",
    },
    RuleDoc {
        rule: Rule::RepeatKv,
        code: "SO108",
        name: "repeated-kv",
        what: "K or V copied per query head (mx.repeat, mx.tile, mx.broadcast_to) before a product.",
        why: "Grouped-query attention reads K/V n_rep times over; the copy itself moves them once more.",
        fix: "Pass the unrepeated K/V to mx.fast.scaled_dot_product_attention (it handles GQA), or \
              reshape the queries to (B, n_kv_heads, n_rep * L, D) and share one product per K/V head.",
    },
    RuleDoc {
        rule: Rule::PerCallTable,
        code: "SO109",
        name: "per-call-table",
        what: "A mask or table built from shapes alone (triu/tril of ones, arange comparisons, \
               inverse frequencies) inside a function that runs every call.",
        why: "The same constant is rebuilt, and its kernels launched, on every call.",
        fix: "Build it once: in __init__, at module level, or in a cached helper (functools.lru_cache \
              keyed by the shape); or use mask=\"causal\" in mx.fast.scaled_dot_product_attention.",
    },
    RuleDoc {
        rule: Rule::LayoutRoundTrip,
        code: "SO110",
        name: "layout-round-trip",
        what: "A transpose undone by another (elementwise work between), or mx.contiguous before an op \
               that takes any layout (matmul, reshape, SDPA, einsum).",
        why: "The work between runs over a strided view; the copy moves the whole array for nothing.",
        fix: "Drop both transposes (do the work in the original layout) and the contiguous copy.",
    },
    RuleDoc {
        rule: Rule::RowUpdateLoop,
        code: "SO111",
        name: "row-update-loop",
        what: "A Python loop that computes row i of an array by arithmetic on all the rows before it \
               (x[..., i, :i] = ... x[..., :, :i] ...: forward substitution) or after it (back substitution).",
        why: "n small launches in sequence, each waiting on the last: a triangular solve done a row at a time.",
        fix: "Solve the system at once: `superopt run` finds the solve and generates its kernel; in plain \
              MLX, (I + A)^-1 = (I - A)(I + A^2)(I + A^4)... for strictly lower A (log2 n products).",
    },
    RuleDoc {
        rule: Rule::HostSyncInLoop,
        code: "SO112",
        name: "host-sync-in-loop",
        what: ".item(), .tolist(), int(...) of an MLX result, or `if` on an array, in a loop that computes \
               on the device each step and does not evaluate it itself; or .item() of a value sliced anew \
               each step (x[i].item()).",
        why: "Each call waits for the GPU to finish all queued work: the loop runs at launch latency.",
        fix: "Keep values on the device (mx.where, masks) and read them once after the loop; for \
              indices or shapes, one .tolist() before the loop.",
    },
    RuleDoc {
        rule: Rule::Float64,
        code: "SO113",
        name: "float64",
        what: "mx.float64 given as a dtype (astype, dtype=) in code that runs on the GPU.",
        why: "Metal has no float64 (the op fails or falls back); on CUDA float64 is many times slower.",
        fix: "float32 (with float32 accumulation), or run that part on mx.cpu explicitly (stream=mx.cpu).",
    },
    RuleDoc {
        rule: Rule::MatmulOrder,
        code: "SO114",
        name: "matmul-order",
        what: "A chain of matmuls whose literal shapes make the other association much cheaper.",
        why: "(A @ B) @ v with v a vector costs n^3; A @ (B @ v) costs n^2.",
        fix: "Reassociate the chain as the message says.",
    },
    RuleDoc {
        rule: Rule::KernelThreadgroup,
        code: "SO201",
        name: "threadgroup-too-large",
        what: "A custom kernel launched with more than 1024 threads per threadgroup (block).",
        why: "Metal and CUDA allow at most 1024: the launch fails at run time.",
        fix: "At most 1024 threads; give each thread more elements, or launch more threadgroups.",
    },
    RuleDoc {
        rule: Rule::KernelTreeReduce,
        code: "SO202",
        name: "shared-memory-tree-reduce",
        what: "A reduction through threadgroup (shared) memory with a barrier per halving step, \
               and no SIMD-group (warp) reduction.",
        why: "log2(threads) barriers and shared-memory round trips where a SIMD reduce needs none within 32 lanes.",
        fix: "simd_sum / simd_max (Metal) or __shfl_xor_sync (CUDA) within a SIMD group, then one \
              shared-memory step across groups.",
    },
    RuleDoc {
        rule: Rule::KernelHalfAccumulator,
        code: "SO203",
        name: "half-accumulator",
        what: "A sum accumulated in half or bfloat16.",
        why: "Half has 11 bits of mantissa: long sums lose the small terms and drift from the float32 result.",
        fix: "Accumulate in float; convert once when writing the output.",
    },
    RuleDoc {
        rule: Rule::KernelScalarLoads,
        code: "SO204",
        name: "scalar-loads",
        what: "A strided loop that loads one element per thread per step, in a kernel with no vector loads.",
        why: "Memory-bound kernels reach the bandwidth floor only with wide (8 or 16 byte) loads.",
        fix: "Load 4 (float) or 8 (half) elements at a time: float4 / half4 / vec<T, 4> (Metal), \
              float4 / uint4 (CUDA), with a scalar tail.",
    },
    RuleDoc {
        rule: Rule::KernelDivergentBarrier,
        code: "SO205",
        name: "barrier-in-branch",
        what: "threadgroup_barrier / __syncthreads inside a branch on the thread index.",
        why: "Threads that skip the branch never reach the barrier: the kernel hangs or computes garbage.",
        fix: "Move the barrier out of the branch, so that every thread of the group reaches it.",
    },
    RuleDoc {
        rule: Rule::KernelDouble,
        code: "SO206",
        name: "double-in-kernel",
        what: "double in a kernel's source.",
        why: "Metal has no double; on CUDA GPUs double runs at 1/2 to 1/64 of float speed.",
        fix: "float, with float accumulation (a Kahan sum if precision matters).",
    },
];

impl Rule {
    pub fn doc(self) -> &'static RuleDoc {
        RULES.iter().find(|d| d.rule == self).expect("every rule has a row in RULES")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique_and_in_order() {
        for w in RULES.windows(2) {
            assert!(w[0].code < w[1].code, "{} before {}", w[0].code, w[1].code);
        }
        let mut names: Vec<_> = RULES.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }
}
