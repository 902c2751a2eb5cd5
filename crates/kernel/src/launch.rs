//! The Python that launches a kernel: its `mx.fast.cuda_kernel` / `metal_kernel` object and
//! a function computing grid, threadgroup and template from the shapes at call time.

use crate::ir::{Form, Kernel, Layout};
use crate::params::Params;
use crate::{cuda, metal, Target};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The module-level helpers every launcher uses (once per module).
pub fn preamble(target: Target) -> String {
    let header = match target {
        Target::Cuda => cuda::HEADER,
        Target::Metal => metal::HEADER,
        Target::Mlx => {
            return "# Launches seen while superopt measures them; None otherwise.\n_LAUNCHES = None\n\n\n".into()
        }
    };
    format!(
        r#"_KERNEL_HEADER = r"""{header}"""

# Launches seen while superopt measures them; None otherwise.
_LAUNCHES = None


def _default_params(n):
    """For shapes superopt did not tune: scalar accesses, about 4 per thread."""
    return (1, min(1024, max(32, -(-n // 128) * 32)), 1, 1)


"#
    )
}

/// The header and body `target` compiles for `k`; None for the plain-MLX form.
fn target_source(k: &Kernel, target: Target) -> Option<(String, &'static str, &'static str)> {
    match target {
        Target::Cuda => Some((cuda::source(k), "mx.fast.cuda_kernel", cuda::HEADER)),
        Target::Metal => Some((metal::source(k), "mx.fast.metal_kernel", metal::HEADER)),
        Target::Mlx => None,
    }
}

/// A short digest of the source `target` compiles for `k` (of the plain-MLX form, of the
/// kernel IR). MLX caches a compiled kernel under its name and template arguments alone
/// (in the process and as PTX on disk), so the name carries it; so does the key of tuned
/// parameters, which an emitter change makes stale.
pub fn source_digest(k: &Kernel, target: Target) -> String {
    use sha2::{Digest, Sha256};
    let text = match target_source(k, target) {
        Some((source, _, header)) => format!("{header}{source}"),
        None => serde_json::to_string(k).expect("a kernel serialises"),
    };
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Definitions for kernel `k` as `_k{index}`: `_k{index}(shape, *inputs, params=None)`.
/// `tuned` maps `(rows, n)` to the parameters picked on the device.
pub fn launcher(k: &Kernel, index: usize, target: Target, tuned: &BTreeMap<(i64, i64), Params>) -> String {
    let Some((source, make, _)) = target_source(k, target) else {
        return crate::reference::launcher(k, index);
    };
    let ins: Vec<String> = k.inputs.iter().map(|o| o.name.clone()).collect();
    let outs: Vec<String> = k.outputs.iter().map(|o| format!("{:?}", o.name)).collect();
    let quoted: Vec<String> = ins.iter().map(|n| format!("{n:?}")).collect();
    let mut s = String::new();
    writeln!(s, "_K{index}_SOURCE = r\"\"\"\n{source}\"\"\"\n").unwrap();
    let make_call = format!(
        r#"{make}(
            name="superopt_{}_{}",
            input_names=[{}],
            output_names=[{}],
            source=_K{index}_SOURCE,
            header=_KERNEL_HEADER,
        )"#,
        k.name,
        source_digest(k, target),
        quoted.join(", "),
        outs.join(", ")
    );
    writeln!(s, "_K{index} = None  # made at the first call: only a GPU backend can").unwrap();
    let table: Vec<String> = tuned
        .iter()
        .map(|((r, n), p)| format!("({r}, {n}): ({}, {}, {}, {})", p.vec, p.threads, p.rows_per_block, p.unroll))
        .collect();
    writeln!(s, "# (rows, n) -> (vec, threads, rows per block, unroll), timed on the device.").unwrap();
    writeln!(s, "_K{index}_TUNED = {{{}}}\n\n", table.join(", ")).unwrap();
    writeln!(s, "def _k{index}(shape, {}, params=None):", ins.join(", ")).unwrap();
    writeln!(s, "    global _K{index}\n    if _K{index} is None:\n        _K{index} = {make_call}").unwrap();
    writeln!(s, "    n = shape[-1]\n    rows = 1\n    for d in shape[:-1]:\n        rows *= d").unwrap();
    writeln!(
        s,
        "    vec, threads, rows_per_block, unroll = params or _K{index}_TUNED.get((rows, n)) or _default_params(n)"
    )
    .unwrap();
    let mut template: Vec<String> = ins.iter().enumerate().map(|(i, n)| format!("(\"T{i}\", {n}.dtype)")).collect();
    template.extend(k.outputs.iter().enumerate().map(|(j, o)| format!("(\"O{j}\", mx.{})", o.dtype.name())));
    template.push("(\"N\", n)".into());
    template.push("(\"VEC\", vec)".into());
    match k.form {
        Form::Rows => {
            writeln!(s, "    items = -(-n // (threads * vec))").unwrap();
            template.extend(["(\"TPR\", threads)", "(\"ITEMS\", items)"].map(String::from));
            // CUDA allows 65535 blocks along y, so there row blocks go along x.
            let grid = match target {
                Target::Cuda => "(threads * -(-rows // rows_per_block), rows_per_block, 1)",
                _ => "(threads, -(-rows // rows_per_block) * rows_per_block, 1)",
            };
            writeln!(s, "    grid = {grid}").unwrap();
            writeln!(s, "    threadgroup = (threads, rows_per_block, 1)").unwrap();
        }
        Form::Elementwise => {
            writeln!(s, "    total = rows * n").unwrap();
            template.push("(\"UNROLL\", unroll)".into());
            writeln!(s, "    blocks = -(-total // (vec * threads * unroll))").unwrap();
            writeln!(s, "    grid = (blocks * threads, 1, 1)").unwrap();
            writeln!(s, "    threadgroup = (threads, 1, 1)").unwrap();
        }
    }
    let shapes: Vec<&str> = k
        .outputs
        .iter()
        .map(|o| if o.layout == Layout::Row { "tuple(shape[:-1]) + (1,)" } else { "tuple(shape)" })
        .collect();
    let dtypes: Vec<String> = k.outputs.iter().map(|o| format!("mx.{}", o.dtype.name())).collect();
    writeln!(s, "    if _LAUNCHES is not None:").unwrap();
    writeln!(
        s,
        "        _LAUNCHES.append(({index}, tuple(shape), [{}]))",
        ins.iter().map(|n| format!("({n}.shape, {n}.dtype)")).collect::<Vec<_>>().join(", ")
    )
    .unwrap();
    writeln!(s, "    outs = _K{index}(").unwrap();
    writeln!(s, "        inputs=[{}],", ins.join(", ")).unwrap();
    writeln!(s, "        template=[{}],", template.join(", ")).unwrap();
    writeln!(s, "        grid=grid,\n        threadgroup=threadgroup,").unwrap();
    writeln!(s, "        output_shapes=[{}],", shapes.join(", ")).unwrap();
    writeln!(s, "        output_dtypes=[{}],", dtypes.join(", ")).unwrap();
    writeln!(s, "    )").unwrap();
    writeln!(s, "    return outs[0] if len(outs) == 1 else tuple(outs)\n\n").unwrap();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use superopt_ir::Dtype;

    #[test]
    fn the_digest_follows_the_source_each_target_compiles() {
        let f32 = crate::library::softmax_kernel(Dtype::Float32).unwrap();
        let bf16 = crate::library::softmax_kernel(Dtype::Bfloat16).unwrap();
        assert_eq!(source_digest(&f32, Target::Cuda), source_digest(&f32.clone(), Target::Cuda));
        assert_ne!(source_digest(&f32, Target::Cuda), source_digest(&f32, Target::Metal));
        // Their CUDA bodies differ (exp2f for 16-bit outputs), so their tunings do too.
        assert_ne!(cuda::source(&f32), cuda::source(&bf16));
        assert_ne!(source_digest(&f32, Target::Cuda), source_digest(&bf16, Target::Cuda));
    }
}
