//! The e-graph search end to end: on small harnesses, a candidate shaped by the
//! expected rule reaches the emitted module and passes every verification check.

mod common;
use common::*;
use serde_json::Value;

fn capsule(rel: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let h = harness(rel);
    let o = superopt(&["run", h.to_str().unwrap(), "--json", json.to_str().unwrap(), "--time-budget", "30"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{rel}: {stdout}\n{stderr}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// The `egraph` candidates of a run that used `rule`, verified.
fn assert_rule_verified(rel: &str, rule: &str) {
    let c = capsule(rel);
    let shaped: Vec<&Value> =
        shaped_by(&c, rule).into_iter().filter(|k| k["name"].as_str().unwrap().starts_with("egraph")).collect();
    assert!(!shaped.is_empty(), "{rel}: no e-graph candidate used {rule}: {:#}", c["candidates"]);
    for k in shaped {
        assert_eq!(k["verified"], true, "{rel}: {} not verified: {:#}", k["name"], k);
    }
}

#[test]
fn matmul_chain_is_reassociated_and_the_weight_product_hoisted() {
    assert_rule_verified("tests/harnesses/search/matmul_chain.py", "algebra/matmul-associate-right");
    assert_rule_verified("tests/harnesses/search/matmul_chain.py", "hoist:");
}

/// A candidate the cost model, scaled by `compile`'s measured time, puts 20x or more behind
/// a verified one is never called (on a GPU its first call compiles its kernels): the
/// traced program's islands here; the e-graph's candidates, modelled near the winner, are
/// verified.
#[test]
fn a_candidate_modelled_far_behind_a_verified_one_is_not_called() {
    let c = capsule("tests/harnesses/search/matmul_chain_gated.py");
    let named = |n: &str| c["candidates"].as_array().unwrap().iter().find(|k| k["name"] == n).cloned().unwrap();
    let islands = named("compile-islands");
    let why = islands["dropped"].as_str().unwrap_or_default();
    for size in ["small", "typical", "large"] {
        assert!(why.contains(&format!("at {size}: not verified: modelled 1.00x of compile")), "{islands:#}");
    }
    assert!(why.contains("slower than egraph") && why.contains("it cannot win there"), "{why}");
    let verified_s = islands["sizes"].as_array().unwrap().iter().filter(|z| z.get("verify_s").is_some()).count();
    assert_eq!(verified_s, 0, "never called: {islands:#}");
    for near_miss in ["egraph", "egraph+islands", "egraph+compile"] {
        assert_eq!(named(near_miss)["verified"], true, "{near_miss}: {:#}", named(near_miss));
    }
}

#[test]
fn gram_of_broadcast_heads_is_computed_once_per_kv_head() {
    assert_rule_verified("tests/harnesses/search/gqa_gram.py", "sharing/matmul-of-broadcasts");
}

#[test]
fn a_chunked_pre_scaled_gram_is_computed_once_per_kv_head() {
    let h = "tests/harnesses/search/chunked_prescaled_gram.py";
    assert_rule_verified(h, "sharing/split-before-broadcast");
    assert_rule_verified(h, "sharing/row-scale-after-matmul");
}

#[test]
fn attention_written_as_broadcast_sums_becomes_matmuls() {
    assert_rule_verified("tests/harnesses/search/attention_broadcast_sums.py", "algebra/sum-of-products-as-matmul~");
}

#[test]
fn hand_written_rope_becomes_mx_fast_rope() {
    assert_rule_verified("tests/harnesses/search/rope.py", "fast/rope");
}

#[test]
fn gqa_attention_divided_by_sqrt_d_under_a_built_mask_becomes_sdpa_at_the_kv_heads() {
    assert_rule_verified("tests/harnesses/search/gqa_divided_masked.py", "fast/sdpa-gqa-unrepeat-masked");
}

#[test]
fn gqa_attention_laid_out_by_sequence_becomes_sdpa_at_the_kv_heads() {
    assert_rule_verified("tests/harnesses/search/gqa_einsum_by_sequence.py", "fast/sdpa-gqa-unrepeat");
    assert_rule_verified("tests/harnesses/search/gqa_einsum_by_sequence.py", "layout/transpose-of-repeat");
}

#[test]
fn rms_norm_normalized_in_float32_then_weighted_becomes_one_mx_fast_rms_norm() {
    assert_rule_verified("tests/harnesses/search/rms_norm_cast_back.py", "fast/rms-norm-weighted-after-cast");
}

#[test]
fn a_transposed_low_rank_product_is_reassociated() {
    assert_rule_verified("tests/harnesses/search/lora_transposed_delta.py", "algebra/transpose-of-matmul");
}

#[test]
fn rope_after_a_projection_split_by_reshape_minus_one_becomes_mx_fast_rope() {
    assert_rule_verified("tests/harnesses/search/rope_after_projection.py", "fast/rope");
}

#[test]
fn an_exponentiated_log_softmax_becomes_mx_softmax() {
    assert_rule_verified("tests/harnesses/search/softmax_from_log.py", "fast/softmax-log-shifted");
}

#[test]
fn rope_written_with_rotate_half_becomes_mx_fast_rope() {
    assert_rule_verified("tests/harnesses/search/rope_rotate_half.py", "fast/rope-rotate-half");
}

#[test]
fn a_mask_rebuilt_every_call_is_hoisted() {
    assert_rule_verified("tests/harnesses/search/mask_rebuilt.py", "hoist:");
}

#[test]
fn explain_names_the_rules_and_the_traced_values_they_replaced() {
    let h = harness("tests/harnesses/search/rope.py");
    let o = superopt(&["explain", h.to_str().unwrap(), "--time-budget", "30"]);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("-> RoPE   [fast/rope]"), "{stdout}");
}

/// Every candidate of a run whose rules include one starting with `rule`.
fn shaped_by<'a>(c: &'a Value, rule: &str) -> Vec<&'a Value> {
    let cs = c["candidates"].as_array().unwrap();
    cs.iter().filter(|k| k["rules"].as_array().unwrap().iter().any(|r| r.as_str().unwrap().starts_with(rule))).collect()
}

#[test]
fn an_unrolled_loops_stateless_steps_run_once_for_every_iteration() {
    // Two spellings: steps along axis 1 (mlx-lm's reference ops), chunks along axis 2 with
    // products (FlashQLA's loop); each batched in the cleanup and the e-graph's candidates.
    for h in ["tests/harnesses/search/unrolled_lanes.py", "tests/harnesses/search/unrolled_chunks.py"] {
        let c = capsule(h);
        let shaped = shaped_by(&c, "batch:");
        let names: Vec<&str> = shaped.iter().map(|k| k["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"cse") && names.contains(&"egraph"), "{h}: {names:?}");
        for k in shaped {
            assert_eq!(k["verified"], true, "{h}: {} not verified: {:#}", k["name"], k);
        }
    }
    // Near misses: every other step only, and a step primitive that alternates.
    let c = capsule("tests/harnesses/search/unrolled_lanes_partial.py");
    assert!(shaped_by(&c, "batch:").is_empty(), "{:#}", c["candidates"]);
}
