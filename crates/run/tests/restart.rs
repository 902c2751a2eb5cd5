//! A worker restarted mid-run (a candidate hung or crashed it) still has the traced
//! constants: every later candidate's module, and the winner's, can be written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use superopt_run::stage::keep_constants;
use superopt_run::{Session, SessionConfig};
use superopt_worker::protocol::{ProgramId, Size, Time};
use superopt_worker::WorkerError;

/// A session on a harness whose `fn` closes over a weight matrix, traced at small, with
/// the keys of its tensor constants.
fn traced() -> (Session, superopt_ir::Program, Vec<String>) {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/harnesses/ok/closure_weights.py");
    let config = SessionConfig { harness, python: None, request_timeout: Duration::from_secs(120) };
    let mut s = Session::start(&config).expect("the worker starts and loads the harness");
    let p = s.trace(Size::Small).expect("fn traces");
    let keys: Vec<String> = p.tensor_keys().map(String::from).collect();
    assert!(!keys.is_empty(), "W is a tensor constant of the trace");
    (s, p, keys)
}

/// A request the worker cannot answer in a millisecond: it is restarted.
fn restart(s: &mut Session) {
    let programs = vec![ProgramId::Original];
    let iters = BTreeMap::from([(ProgramId::Original, 100_000)]);
    let req = Time { programs, size: Size::Large, seed: 0, iters, rounds: 10 };
    let got = s.worker.call(&req, Duration::from_millis(1));
    assert!(matches!(got, Err(WorkerError::TimedOut(_))), "the worker was restarted: {got:?}");
}

#[test]
fn traced_constants_survive_a_worker_restart() {
    let (mut s, p, keys) = traced();
    let dir = tempfile::tempdir().unwrap();
    keep_constants(&mut s, std::slice::from_ref(&p), dir.path()).expect("the constants are saved");
    restart(&mut s);
    let out = dir.path().join("winner.safetensors");
    s.save_constants(&keys, &out).expect("the restarted worker still has the traced constants");
    assert!(out.metadata().unwrap().len() > 64 * 32 * 4, "W's bytes are written");
}

#[test]
fn without_keeping_them_a_restarted_worker_has_lost_them() {
    let (mut s, _, keys) = traced();
    let dir = tempfile::tempdir().unwrap();
    restart(&mut s);
    let lost = s.save_constants(&keys, &dir.path().join("winner.safetensors"));
    assert!(lost.is_err_and(|e| e.to_string().contains("KeyError")), "the trace's constants lived in the old process");
}
