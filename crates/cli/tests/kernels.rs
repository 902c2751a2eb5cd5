//! Generated kernels on the CPU: `superopt kernels` shows what lowers (and what must not),
//! and the kernels' meaning (`--target mlx`: the same kernel IR as plain MLX operations)
//! passes superopt's verification, while a kernel changed by one constant does not.

mod common;
use common::*;
use std::process::Command;

fn kernels(rel: &str, target: &str) -> String {
    let h = harness(rel);
    let o = superopt(&["kernels", h.to_str().unwrap(), "--target", target]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{rel}: {stdout}\n{stderr}");
    stdout
}

#[test]
fn norms_and_softmax_lower_to_one_rows_kernel() {
    for rel in ["examples/rms_norm.py", "examples/layer_norm.py", "examples/softmax.py"] {
        let out = kernels(rel, "cuda");
        assert!(out.starts_with("// 1 kernels for Cuda"), "{rel}: {out}");
        assert!(out.contains("(rows, cuda)") && out.contains("so_row_reduce<TPR>"), "{rel}: {out}");
        assert!(out.contains("not verified on this device"), "{out}");
    }
}

#[test]
fn metal_source_comes_from_the_same_ir() {
    let out = kernels("examples/softmax.py", "metal");
    assert!(out.contains("(rows, metal): softmax"), "{out}");
    assert!(out.contains("so_row_reduce<TPR>(acc, red1, thread_position_in_threadgroup.x, SoMax()"), "{out}");
}

#[test]
fn a_reduction_over_another_axis_makes_no_rows_kernel() {
    let out = kernels("tests/harnesses/kernels/column_softmax.py", "cuda");
    assert!(!out.contains("(rows,"), "{out}");
}

#[test]
fn a_matmul_splits_the_program_into_two_kernels() {
    let out = kernels("tests/harnesses/kernels/norm_then_project.py", "cuda");
    assert!(out.starts_with("// 2 kernels"), "{out}");
    assert!(out.contains("(rows, cuda)") && out.contains("(elementwise, cuda)"), "{out}");
}

#[test]
fn gelu_gated_products_lower_to_one_elementwise_kernel() {
    let out = kernels("tests/harnesses/kernels/gelu_gated.py", "cuda");
    assert!(out.starts_with("// 1 kernels") && out.contains("(elementwise, cuda)"), "{out}");
    assert!(out.contains("erff("), "{out}");
}

fn run_with_mlx_kernels(rel: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let h = harness(rel);
    let o = Command::new(env!("CARGO_BIN_EXE_superopt"))
        .args(["run", h.to_str().unwrap(), "--json", json.to_str().unwrap(), "--time-budget", "60"])
        .env("SUPEROPT_KERNELS", "mlx")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn lowered_kernels_compute_what_fn_computes() {
    for rel in [
        "examples/layer_norm.py",
        "tests/harnesses/kernels/norm_then_project.py",
        "tests/harnesses/kernels/gelu_gated.py",
    ] {
        let c = run_with_mlx_kernels(rel);
        let k = c["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"].as_str().unwrap().ends_with("+kernels"))
            .expect("a kernel candidate");
        assert_eq!(k["verified"], true, "{rel}: {k}");
        assert!(k["metal"].as_str().unwrap().contains("thread_position_in_threadgroup"), "{k}");
    }
}

/// A change of a module's source.
type Change<'a> = dyn Fn(&str) -> String + 'a;

/// The kernels of `rel` as plain MLX (`--target mlx`), which must verify as written; then
/// each `(name, change)` of its source must not.
fn changed_kernels_are_rejected(rel: &str, changes: &[(&str, &Change<'_>)]) {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("k.py");
    let h = harness(rel);
    let o = superopt(&["kernels", h.to_str().unwrap(), "--target", "mlx", "-o", module.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let verify = |path: &std::path::Path| superopt(&["verify", h.to_str().unwrap(), path.to_str().unwrap()]);
    let o = verify(&module);
    assert_eq!(o.status.code(), Some(0), "the kernels as lowered: {:?}", text(&o));
    let source = std::fs::read_to_string(&module).unwrap();
    for (name, change) in changes {
        let changed = change(&source);
        assert_ne!(changed, source, "{name}: the change must apply");
        let wrong = dir.path().join(format!("{name}.py"));
        std::fs::write(&wrong, changed).unwrap();
        let o = verify(&wrong);
        let (stdout, _) = text(&o);
        assert_ne!(o.status.code(), Some(0), "{name} must be rejected: {stdout}");
        assert!(stdout.contains("FAILED"), "{name}: {stdout}");
    }
}

#[test]
fn a_kernel_with_a_wrong_constant_is_rejected() {
    // eps (1e-5 as float32) becomes ten times larger.
    let eps = |s: &str| s.replace("9.999999747378752e-6, dtype=mx.float32)", "9.999999747378752e-5, dtype=mx.float32)");
    changed_kernels_are_rejected("examples/rms_norm.py", &[("eps", &eps)]);
}

#[test]
fn quantized_experts_lower_to_a_swiglu_kernel_and_a_product() {
    let out = kernels("tests/harnesses/kernels/quantized_experts.py", "cuda");
    assert!(out.starts_with("// 2 kernels"), "{out}");
    assert!(
        out.contains("(quantized, cuda): silu(gather_qmm(gate)) * gather_qmm(up), 8 bits in groups of 32"),
        "{out}"
    );
    assert!(out.contains("(quantized, cuda): gather_qmm, 8 bits"), "{out}");
    assert!(out.contains("silu = so_to_float(so_from_float<O>(g * so_to_float(so_from_float<O>(so_sigmoid(g)))))"));
    let metal = kernels("tests/harnesses/kernels/quantized_experts.py", "metal");
    assert!(metal.contains("acc1[r][j] = simd_sum(acc1[r][j]);"), "{metal}");
}

/// The experts' outputs times their router weights, summed over the experts: the down
/// projection and the combine in one kernel (and gate/up with SwiGLU in another).
#[test]
fn a_weighted_sum_over_the_experts_fuses_into_the_down_projection() {
    let out = kernels("tests/harnesses/kernels/quantized_moe_combine.py", "cuda");
    let combine = "(quantized, cuda): the top-k pairs of gather_qmm, each times its weight, summed, 4 bits";
    assert!(out.contains(combine), "{out}");
    assert!(out.contains("silu(gather_qmm(gate)) * gather_qmm(up)"), "{out}");
    assert!(out.contains("const float weight = so_to_float(wt[pair]);"), "{out}");
    assert!(out.contains("acc0[j] += so_to_float(so_from_float<O>(weight * so_to_float(so_from_float<O>(part[j]))));"));
    let metal = kernels("tests/harnesses/kernels/quantized_moe_combine.py", "metal");
    assert!(metal.contains("const float weight = float(wt[pair]);"), "{metal}");
}

/// mlx-lm's Qwen3 MoE block (its CPU sizes): gate/up with SwiGLU, and the down projection
/// with the combine are two quantized kernels; the router
/// (its 8-bit product and softmax, which decide the experts) stays MLX's, so that the
/// candidate chooses the experts as fn does.
#[test]
fn mlx_lm_moe_block_lowers_its_experts_and_leaves_its_router() {
    let h = harness("suite/moe_block_decode.py");
    let o = Command::new(env!("CARGO_BIN_EXE_superopt"))
        .args(["kernels", h.to_str().unwrap(), "--target", "cuda"])
        .env("SUPEROPT_SIZES", "cpu")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    for kernel in [
        "(quantized, cuda): silu(gather_qmm(gate)) * gather_qmm(up), 4 bits in groups of 64",
        "(quantized, cuda): the top-k pairs of gather_qmm, each times its weight, summed, 4 bits in groups of 64",
        "(rows, cuda): reduce, divide",
    ] {
        assert!(out.contains(kernel), "{kernel}: {out}");
    }
    for router in ["(quantized, cuda): quantized_matmul, 8 bits", "(rows, cuda): softmax"] {
        assert!(!out.contains(router), "{router} decides the experts: {out}");
    }
}

/// The same weighted outputs summed over the hidden columns: no combine.
#[test]
fn a_weighted_sum_over_other_axes_is_not_a_combine() {
    let out = kernels("tests/harnesses/kernels/quantized_moe_combine_near_miss.py", "cuda");
    assert!(!out.contains("the top-k pairs"), "{out}");
    assert!(out.contains("(quantized, cuda): gather_qmm, 4 bits"), "{out}");
}

/// The combine's meaning verifies; with the weights of the pairs reversed, it is rejected.
#[test]
fn a_combine_verifies_and_one_with_reversed_weights_is_rejected() {
    let c = run_with_mlx_kernels("tests/harnesses/kernels/quantized_moe_combine.py");
    let candidates = c["candidates"].as_array().unwrap();
    let k = candidates.iter().find(|k| k["name"].as_str().unwrap().ends_with("+kernels")).expect("a kernel candidate");
    assert_eq!(k["verified"], true, "{k}");
    assert!(k["rules"].to_string().contains("the top-k pairs of gather_qmm"), "{k}");
    let reversed = |s: &str| s.replace("y * wt[..., None, None]", "y * wt[..., ::-1][..., None, None]");
    changed_kernels_are_rejected("tests/harnesses/kernels/quantized_moe_combine.py", &[("reversed", &reversed)]);
}

/// Up on other experts than gate, and a gate that is also returned: no fused SwiGLU.
#[test]
fn a_gate_up_pair_that_differs_is_not_fused() {
    let out = kernels("tests/harnesses/kernels/quantized_experts_near_miss.py", "cuda");
    assert!(!out.contains("silu(gather_qmm(gate))"), "{out}");
    assert!(out.contains("(quantized, cuda): gather_qmm, 4 bits"), "{out}");
}

#[test]
fn quantized_kernels_compute_what_fn_computes() {
    let c = run_with_mlx_kernels("tests/harnesses/kernels/quantized_experts.py");
    let candidates = c["candidates"].as_array().unwrap();
    let k = candidates.iter().find(|k| k["name"].as_str().unwrap().ends_with("+kernels")).expect("a kernel candidate");
    assert_eq!(k["verified"], true, "{k}");
    assert!(k["metal"].as_str().unwrap().contains("acc0[r][j] = simd_sum(acc0[r][j]);"), "{k}");
}

/// The fused kernel's meaning with gate and up swapped, and with the wrong group size,
/// does not pass verification.
#[test]
fn a_quantized_kernel_with_swapped_weights_or_groups_is_rejected() {
    let (gate, up) = ("gate = mx.gather_qmm(x, w0, s0, b0,", "up = mx.gather_qmm(x, w1, s1, b1,");
    let swapped = |s: &str| {
        s.replace(gate, "gate = mx.gather_qmm(x, w1, s1, b1,").replace(up, "up = mx.gather_qmm(x, w0, s0, b0,")
    };
    let regrouped = |s: &str| s.replacen("group_size=32, bits=8)", "group_size=64, bits=8)", 1);
    changed_kernels_are_rejected(
        "tests/harnesses/kernels/quantized_experts.py",
        &[("swapped", &swapped), ("regrouped", &regrouped)],
    );
}

/// Forward substitution of a unit lower-triangular system, written three ways (in-place
/// row updates, stacked rows, rows accumulated by products), each becomes one solve.
#[test]
fn forward_substitution_lowers_to_one_solve_however_it_is_written() {
    for (rel, what) in [
        (
            "tests/harnesses/solve/inplace_rows.py",
            "(i - l)^-1 of the strictly lower part l of 16 x 16 matrices, float32",
        ),
        (
            "tests/harnesses/solve/stacked_rows.py",
            "(i + l)^-1 of the strictly lower part l of 12 x 12 matrices, float32",
        ),
        ("tests/harnesses/solve/matmul_rows.py", "(i - l)^-1 of the strictly lower part l of 8 x 8 matrices, zeros on"),
    ] {
        let out = kernels(rel, "mlx");
        assert_eq!(out.matches("// kernel (solve, mlx)").count(), 1, "{rel}: {out}");
        assert!(out.contains(what), "{rel}: {out}");
    }
}

/// Near misses: an upper-triangular substitution, a diagonal of 2 taken as 1, rows solved
/// out of order, one row subtracting its sum: none is a unit lower solve.
#[test]
fn near_misses_of_a_unit_lower_solve_lower_to_none() {
    for name in ["upper_rows", "scaled_diagonal", "rows_out_of_order", "one_wrong_row"] {
        let out = kernels(&format!("tests/harnesses/solve/{name}.py"), "mlx");
        assert!(!out.contains("(solve,"), "{name}: {out}");
    }
}

#[test]
fn a_solve_kernel_computes_what_the_substitution_computes() {
    let c = run_with_mlx_kernels("tests/harnesses/solve/inplace_rows.py");
    let candidates = c["candidates"].as_array().unwrap();
    let k = candidates.iter().find(|k| k["name"] == "egraph+kernels").expect("a kernel candidate");
    assert_eq!(k["verified"], true, "{k}");
    assert!(k["rules"].to_string().contains("kernel (solve, mlx)"), "{k}");
}

/// The solve's plain-MLX meaning with the other sign, or without the NaN its substitution
/// makes of a non-finite entry (a NaN key makes a row and a column of the matrix NaN), is
/// rejected.
#[test]
fn a_solve_of_the_other_sign_or_without_its_nans_is_rejected() {
    let sign = |s: &str| s.replace("a = mx.where(strict, x32, 0.0)", "a = mx.where(strict, -x32, 0.0)");
    let nans = |s: &str| s.replace("t = mx.where(bad[..., :, None] > bad[..., None, :], mx.nan, t)", "");
    changed_kernels_are_rejected("tests/harnesses/solve/inplace_rows.py", &[("sign", &sign), ("nans", &nans)]);
}

/// A solve of matrices scaled by a factor that differs along the batch axes starts after
/// the scaling (the probe sees one matrix: a batch-varying operand inside the region would
/// pass it), and verifies.
#[test]
fn a_solve_of_batch_scaled_matrices_verifies() {
    let out = kernels("tests/harnesses/solve/batch_scaled.py", "mlx");
    assert!(out.contains("// kernel (solve, mlx)"), "{out}");
    changed_kernels_are_rejected("tests/harnesses/solve/batch_scaled.py", &[]);
}

/// A naive port of the chunked gated delta rule (CPU sizes): its solves become kernels,
/// and the candidate that calls their plain-MLX meaning verifies. Under `mx.compile` its
/// elementwise chains stay MLX's (compile fuses them); the eager kernel candidate has them
/// as kernels.
#[test]
fn a_chunked_gated_delta_rule_verifies_with_its_solve_as_a_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let h = harness("tests/mutations/harnesses/chunked_gated_delta.py");
    let o = Command::new(env!("CARGO_BIN_EXE_superopt"))
        .args(["run", h.to_str().unwrap(), "--json", json.to_str().unwrap(), "--time-budget", "60"])
        .env("SUPEROPT_KERNELS", "mlx")
        .env("SUPEROPT_SIZES", "cpu")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let candidates = c["candidates"].as_array().unwrap();
    let k = candidates.iter().find(|k| k["name"] == "egraph+compile+kernels").expect("a kernel candidate");
    assert_eq!(k["verified"], true, "{k}");
    assert!(k["rules"].to_string().contains("kernel (solve, mlx)"), "{k}");
    assert!(!k["rules"].to_string().contains("kernel (elementwise"), "{k}");
    let eager = candidates.iter().find(|k| k["name"] == "egraph+kernels").expect("the eager kernel candidate");
    let rules = eager["rules"].to_string();
    assert!(rules.contains("kernel (solve, mlx)") && rules.contains("kernel (elementwise, mlx)"), "{eager}");
}

/// A per-token recurrence (the gated delta rule as mlx-lm's ops fallback spells it, state
/// `[B, H, Dv, Dk]`): every size's loop is one kernel, threads of a warp per state line, which
/// computes what fn computes; a kernel walking the steps backwards or taking maxima for
/// sums is rejected.
#[test]
fn a_token_loop_is_one_recurrence_kernel() {
    let h = "tests/harnesses/kernels/delta_rule_loop.py";
    let out = kernels(h, "cuda");
    assert!(out.starts_with("// 3 kernels"), "{out}");
    assert!(out.contains("scan0: 16 steps of a recurrence on a float32 state [1, 4, 8, 16]"), "{out}");
    assert!(out.contains("its lines along axis 3 kept by 1 thread(s) each"), "{out}");
    let metal = kernels(h, "metal");
    assert!(metal.contains("const long tid = long(thread_position_in_grid.x);"), "{metal}");
    let c = run_with_mlx_kernels(h);
    let k = c["candidates"].as_array().unwrap().iter().find(|k| k["name"] == "egraph+kernels").expect("kernels");
    assert_eq!(k["verified"], true, "{k}");
    let backwards =
        |s: &str| s.replace("for t in range(", "for t in reversed(range(").replace("):\n        v0", ")):\n        v0");
    let maxima = |s: &str| s.replace("mx.sum(", "mx.max(");
    changed_kernels_are_rejected(h, &[("backwards", &backwards), ("maxima", &maxima)]);
}

/// The same recurrence spelled with vector-matrix products (`k_t @ S`, an outer product for
/// the update), on bfloat16 activations with a float32 state; linear attention in
/// `[B, H, T, D]` (its outer products made outside the step); an average over a time-major
/// signal (`x[t]`, a gather); mlx-lm's Mamba step, whose gates are biased projections of
/// each step's input split three ways (batched first: they read no state) and whose first
/// step has no decay; mlx-lm's masked update (a padded step keeps its state: a boolean operand,
/// cast to float32 for the kernel); a Mamba-2 step whose groups' B_t, C_t are repeated to the
/// heads inside it (batched first: a reshape of each step's broadcast); a state held in
/// bfloat16 (rounded to it each step, as the loop rounds it): one kernel each, whose plain-MLX
/// meaning verifies.
#[test]
fn other_spellings_of_the_token_loop_are_recurrence_kernels() {
    for h in [
        "tests/harnesses/kernels/delta_rule_products.py",
        "tests/harnesses/kernels/delta_rule_bf16.py",
        "tests/harnesses/kernels/linear_attention_heads_first.py",
        "tests/harnesses/kernels/ema_time_major.py",
        "tests/harnesses/kernels/mamba_ssm_steps.py",
        "tests/harnesses/kernels/delta_rule_masked.py",
        "tests/harnesses/kernels/mamba2_group_steps.py",
        "tests/harnesses/kernels/linear_attention_bf16_state.py",
    ] {
        let out = kernels(h, "cuda");
        let steps = ["scan0: 16 steps of a recurrence", "scan0: 14 steps", "scan0: 15 steps"];
        assert!(steps.iter().any(|s| out.contains(s)), "{h}: {out}");
        let c = run_with_mlx_kernels(h);
        let k = c["candidates"].as_array().unwrap().iter().find(|k| k["name"] == "egraph+kernels").expect("kernels");
        assert_eq!(k["verified"], true, "{h}: {k}");
    }
}

/// Mamba's selective scan in its sequential form (state `[B, D, N]`, `exp(dt * A)` and
/// `dt * B_t * x_t` made per step outside it) is one recurrence kernel per size.
#[test]
fn a_selective_scan_is_one_recurrence_kernel() {
    let out = kernels("tests/harnesses/kernels/selective_scan.py", "cuda");
    assert!(out.starts_with("// 3 kernels"), "{out}");
    assert!(out.contains("scan0: 16 steps of a recurrence on a float32 state [2, 32, 16]"), "{out}");
}
