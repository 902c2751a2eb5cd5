//! PATCH.py on a tiny dense Qwen3 (random weights): a block kind with a winner calls it
//! where its `fits` says so, the model then decodes as stock; a winner that computes
//! something else is withdrawn by the end-to-end proof, and one that fits nothing is
//! never called.

use std::path::{Path, PathBuf};
use std::time::Duration;
use superopt_model::patch::{source, Patched};
use superopt_model::proof::{prove, ProofConfig};
use superopt_model::{blocks, blocks_folder, BlockReport, ModelCapsule, ModelConfig};

fn python() -> PathBuf {
    std::env::var("SUPEROPT_PYTHON").unwrap_or_else(|_| "python3".into()).into()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The MLP's SwiGLU by hand, its weights in `tree_flatten` order; `body` is the product.
fn winner(fits: &str, body: &str, mark: &Path) -> String {
    format!(
        "import mlx.core as mx\n\n\ndef fits(x, gate, down, up):\n    return {fits}\n\n\n\
         def optimized(x, gate, down, up):\n    open({mark:?}, \"a\").write(\"called\\n\")\n    \
         g, u = x @ gate.T, x @ up.T\n    return ({body}) @ down.T\n",
        mark = mark.display().to_string()
    )
}

struct Setup {
    cfg: ModelConfig,
    mark: PathBuf,
    _tmp: tempfile::TempDir,
}

fn setup(fits: &str, body: &str) -> Setup {
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
    let patched = [Patched { kind: "mlx_lm.models.qwen3.MLP".into(), modules: vec!["MLP_decode.py".into()] }];
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
    let (hello, model) = blocks(&s.cfg).unwrap();
    let report = |b: &superopt_worker::protocol::BlockKind| BlockReport {
        kind: b.kind.clone(),
        instances: b.instances.len(),
        runs: vec![],
        skipped: None,
    };
    let capsule = ModelCapsule {
        tool: "superopt".into(),
        version: "test".into(),
        model: s.cfg.model.display().to_string(),
        device: hello.device,
        mlx: hello.mlx,
        python: hello.python,
        layers: model.count,
        blocks: model.blocks.iter().map(report).collect(),
        patch: s.cfg.output.display().to_string(),
        withdrawn: None,
        proof: None,
        seconds: 0.0,
    };
    prove(&s.cfg, &model, &capsule).unwrap()
}

#[test]
fn a_patched_kind_calls_its_winner_where_it_fits_and_decodes_as_stock() {
    let s = setup("x.shape[1] == 1", "g * mx.sigmoid(g) * u");
    // (Only the tokens: a winner that writes a file at every call is slower than stock.)
    let p = proof_of(&s);
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    let calls = std::fs::read_to_string(&s.mark).unwrap_or_default();
    assert!(calls.lines().count() > 10, "the winner ran at decode: {calls:?}");
}

#[test]
fn a_winner_that_computes_something_else_is_withdrawn() {
    let s = setup("True", "g * u");
    let why = proof_of(&s).withdraw_reason().expect("withdrawn");
    assert!(why.contains("greedy tokens differ"), "{why}");
}

#[test]
fn a_winner_that_fits_nothing_is_never_called() {
    let s = setup("False", "g * u");
    let p = proof_of(&s);
    assert!(p.forms.iter().all(|f| f.first_difference.is_none()), "{p:?}");
    assert!(!s.mark.exists(), "called: {:?}", std::fs::read_to_string(&s.mark));
}
