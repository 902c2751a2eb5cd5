//! Warm workers on real MLX (CPU backend, asked for by `SUPEROPT_WARM_WORKERS`; by default
//! only CUDA has them): a whole run makes fn's and its candidates' first calls in them, and
//! still judges every candidate (none dropped, each accepted, as without them).

use std::path::PathBuf;
use std::time::Duration;
use superopt_verify::Tolerance;

#[test]
fn a_run_with_warm_workers_judges_every_candidate() {
    std::env::set_var("SUPEROPT_WARM_WORKERS", "2");
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/softmax.py");
    let session = superopt_run::SessionConfig { harness, python: None, request_timeout: Duration::from_secs(120) };
    let config = superopt_run::Config {
        session,
        objective: superopt_bench::Objective::All,
        tolerance: Tolerance::Relative,
        time_budget: Duration::from_secs(90),
        seeds: 2,
    };
    let outcome = superopt_run::optimize(&config, &|_| {}).expect("the run ends");
    let superopt_run::Outcome::Done(done) = outcome else { panic!("the run traces and verifies") };
    let c = &done.capsule;
    let said =
        c.notes.iter().find(|n| n.contains("first calls of fn")).expect("the notes say what the warm workers did");
    assert!(said.contains("made ahead by 2 warm workers") && !said.contains("failed"), "{said}");
    assert!(c.candidates[0].verified, "the round trip: {:?}", c.candidates[0].dropped);
    let dropped: Vec<_> = c.candidates.iter().filter_map(|k| k.dropped.as_deref()).collect();
    assert!(dropped.is_empty(), "{dropped:?}");
    assert!(c.candidates.iter().all(|k| k.verified), "every candidate judged and accepted");
}
