//! PATCH.py on a tiny dense Qwen3 (random weights): a block kind with a winner calls it
//! where its `fits` says so, the model then decodes as stock; a winner that computes
//! something else is withdrawn by the end-to-end proof, and one that fits nothing is
//! never called.

use std::path::{Path, PathBuf};
use std::time::Duration;
use superopt_model::patch::{source, Patched};
use superopt_model::proof::{prove, ProofConfig};
use superopt_model::{blocks, blocks_folder, ModelConfig};
use superopt_worker::protocol::CallKind;

fn python() -> PathBuf {
    std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into()).into()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The MLP's SwiGLU by hand where `fits` holds (a written module's `verified`), its weights in
/// `tree_flatten` order; `body` is the product.
fn winner(fits: &str, body: &str, mark: &Path) -> String {
    format!(
        "import mlx.core as mx\n\n\ndef verified(x, gate, down, up):\n    if not ({fits}):\n        return None\n    \
         open({mark:?}, \"a\").write(\"called\\n\")\n    \
         g, u = x @ gate.T, x @ up.T\n    return ({body}) @ down.T\n",
        mark = mark.display().to_string()
    )
}

struct Setup {
    cfg: ModelConfig,
    mark: PathBuf,
    _tmp: tempfile::TempDir,
}

const WEIGHTS: [&str; 3] = ["gate_proj.weight", "down_proj.weight", "up_proj.weight"];

fn setup(fits: &str, body: &str) -> Setup {
    setup_with(fits, body, WEIGHTS)
}

fn setup_with(fits: &str, body: &str, weights: [&str; 3]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen3");
    let o = std::process::Command::new(python())
        .arg(repo().join("tests/models/random_model.py"))
        .args(["qwen3", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let output = tmp.path().join("PATCH.py");
    let mark = tmp.path().join("calls.txt");
    let folder = blocks_folder(&output);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("MLP_decode.py"), winner(fits, body, &mark)).unwrap();
    let patched = [Patched {
        kind: "mlx_lm.models.qwen3.MLP".into(),
        call: CallKind::Pure,
        weights: weights.map(String::from).to_vec(),
        instances: ["model.layers.0.mlp", "model.layers.1.mlp"].map(String::from).to_vec(),
        modules: vec!["MLP_decode.py".into()],
    }];
    std::fs::write(&output, source("PATCH_blocks", &patched, &["a hand-written winner".into()])).unwrap();
    let cfg = ModelConfig {
        model: dir,
        output,
        python: Some(python()),
        time_budget: Duration::from_secs(10),
        request_timeout: Duration::from_secs(300),
        prompt_tokens: 16,
        decode_batches: vec![1, 2],
        proof: ProofConfig { prompts: 2, new_tokens: 12, decode_steps: 2, rounds: 1 },
    };
    Setup { cfg, mark, _tmp: tmp }
}

fn proof_of(s: &Setup) -> superopt_model::proof::Proof {
    let (_, model) = blocks(&s.cfg).unwrap();
    prove(&s.cfg, &model, &s.cfg.output).unwrap()
}

#[test]
fn a_patched_kind_calls_its_winner_where_it_fits_and_decodes_as_stock() {
    let s = setup("x.shape[1] == 1", "g * mx.sigmoid(g) * u");
    // (Only the tokens: a winner that writes a file at every call is slower than stock.)
    let p = proof_of(&s);
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    let calls = std::fs::read_to_string(&s.mark).unwrap_or_default();
    assert!(calls.lines().count() > 10, "the winner ran at decode: {calls:?}");
    assert!(p.calls.get("MLP_decode.py").is_some_and(|n| *n > 10), "the proof counts its calls: {:?}", p.calls);
}

#[test]
fn a_winner_that_computes_something_else_is_withdrawn() {
    let s = setup("True", "g * u");
    let p = proof_of(&s);
    let why = p.withdraw_reason().expect("withdrawn");
    assert!(why.contains("greedy tokens differ"), "{why}");
    // The table says how near a tie stock's choice was where they differ.
    let margin = p.form("patched").stock_margin.expect("stock's margin at the difference");
    assert!(margin >= 0.0 && p.median_margin.is_some_and(|m| m > 0.0), "{p:?}");
    // On stock's tokens its choices differ, and not only where stock's logits tie.
    let forced = p.form("patched").forced.expect("teacher-forced figures");
    assert!(forced.argmax_differs > 0 && forced.at_ties < forced.argmax_differs, "{forced:?}");
}

#[test]
fn a_winner_that_fits_nothing_is_never_called() {
    let s = setup("False", "g * u");
    let p = proof_of(&s);
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    assert!(!s.mark.exists(), "called: {:?}", std::fs::read_to_string(&s.mark));
}

#[test]
fn an_instance_whose_weights_are_not_those_verified_is_left_alone() {
    let s = setup_with("True", "g * u", ["gate_proj.weight", "up_proj.weight", "down_proj.weight"]);
    let p = proof_of(&s);
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    assert!(!s.mark.exists() && p.calls.is_empty(), "called: {:?}", p.calls);
}

/// PATCH.py's path for blocks with a KV cache, on the tiny model's attention: a winner that
/// is the harness's own `fn` (the block's call on mlx-lm's cache, functional) must decode as
/// stock; one that writes the keys' buffer as the values' must be withdrawn.
fn attention_proof(returned: &str) -> (superopt_model::proof::Proof, PathBuf) {
    let s = setup("False", "g * u");
    let (_, model) = blocks(&s.cfg).unwrap();
    let attention = model.blocks.iter().find(|b| b.call == CallKind::Cached).expect("the attention");
    let folder = blocks_folder(&s.cfg.output);
    let dir = s.cfg.model.display().to_string();
    let past = superopt_model::harness::cache_positions(16);
    let text = superopt_model::harness::source_cached(&dir, attention, [1, 2, 4], past, model.hidden.unwrap());
    let harness = folder.join("Attention_harness.py");
    std::fs::write(&harness, text).unwrap();
    let winner = format!(
        "import importlib.util\n\nspec = importlib.util.spec_from_file_location(\"h\", {h:?})\n\
         h = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(h)\n\n\n\
         def verified(*args):\n    open({mark:?}, \"a\").write(\"called\\n\")\n    out, keys, values = h.fn(*args)\n    \
         return {returned}\n",
        h = harness.display().to_string(),
        mark = s.mark.display().to_string(),
    );
    std::fs::write(folder.join("Attention_decode.py"), winner).unwrap();
    let patched = [Patched {
        kind: attention.kind.clone(),
        call: CallKind::Cached,
        weights: attention.parameters.iter().map(|p| p.name.clone()).collect(),
        instances: attention.instances.clone(),
        modules: vec!["Attention_decode.py".into()],
    }];
    std::fs::write(&s.cfg.output, source("PATCH_blocks", &patched, &[])).unwrap();
    let p = prove(&s.cfg, &model, &s.cfg.output).unwrap();
    (p, s.mark.clone())
}

#[test]
fn a_block_with_a_kv_cache_runs_its_winner_at_decode_and_decodes_as_stock() {
    let (p, _) = attention_proof("out, keys, values");
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    assert!(p.calls.get("Attention_decode.py").is_some_and(|n| *n > 10), "{:?}", p.calls);
}

#[test]
fn a_winner_that_stores_the_keys_as_values_is_withdrawn() {
    let (p, _) = attention_proof("out, keys, keys");
    let why = p.withdraw_reason().expect("withdrawn");
    assert!(why.contains("greedy tokens differ"), "{why}");
}

/// The proof's forms: after the patched form, stock is stock again, every module of it (a
/// patch switches blocks the compiled form does not touch, such as attention).
#[test]
fn the_stock_form_after_the_patched_one_is_stock() {
    let s = setup("False", "g * u");
    let script = format!(
        r#"
import importlib.util, sys, types
spec = importlib.util.spec_from_file_location("m", {m:?})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
model = m.load({dir:?})
attention = model.model.layers[0].self_attn
original = type(attention)
switch = lambda model: setattr(attention, "__class__", type("P", (original,), {{}}))
patch = types.SimpleNamespace(patch=switch, _weights=m.load_patch({patch:?})._weights)
v = m.Variants(model, {{"mlx_lm.models.qwen3.MLP"}}, patch)
v.use("patched"); assert type(attention) is not original
v.use("stock"); assert type(attention) is original, type(attention)
v.use("compiled"); assert type(attention) is original and type(model.model.layers[0].mlp).__name__ == "MLP"
print("ok")
"#,
        m = repo().join("crates/worker/python/superopt_model.py").display().to_string(),
        dir = s.cfg.model.display().to_string(),
        patch = s.cfg.output.display().to_string(),
    );
    let o = std::process::Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
