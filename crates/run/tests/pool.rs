//! The reference pool on real MLX (CPU backend): its workers write every case's float64
//! reference, and verification then judges against them exactly as against its own.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use superopt_run::{Session, SessionConfig};
use superopt_verify::Tolerance;
use superopt_worker::protocol::{ProgramId, Size};

fn session() -> Session {
    session_on("examples/rms_norm.py")
}

/// A session on `harness` (from the repository's root).
fn session_on(harness: &str) -> Session {
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(harness);
    let config = SessionConfig { harness, python: None, request_timeout: Duration::from_secs(120) };
    Session::start(&config).expect("the worker starts and loads the harness")
}

fn figures(s: &mut Session, seeds: &[u64]) -> Vec<String> {
    let each = Size::ALL.iter().map(|z| s.verify(&ProgramId::Original, *z, seeds, Tolerance::Relative, None));
    each.map(|f| format!("{:?}", f.expect("the original verifies"))).collect()
}

#[test]
fn pool_references_are_the_verifying_workers_own() {
    let seeds = [0, 1];
    let mut pooled = session();
    pooled.start_references(&seeds, 2, Default::default(), Instant::now() + Duration::from_secs(300));
    assert!(pooled.await_references(Instant::now() + Duration::from_secs(300)), "the pool did every case");
    assert_eq!(pooled.reference_workers(), 2);
    let spans = pooled.pool.as_ref().unwrap().spans();
    assert!(Size::ALL.iter().all(|z| spans[z].cases == 8), "2 seeds and 6 edge inputs per size: {spans:?}");
    let with_pool = figures(&mut pooled, &seeds);
    let own_time = pooled.reference_seconds.values().sum::<f64>();
    assert_eq!(own_time, 0.0, "the verifying worker computed no reference itself");
    let mut alone = session();
    let own = figures(&mut alone, &seeds);
    assert!(Size::ALL.iter().all(|z| alone.reference_seconds.get(z).is_some_and(|t| *t > 0.0)));
    assert_eq!(with_pool, own, "the same figures, so the same references");
}

/// A whole run of `harness` (from the repository's root) with 2 pool workers.
fn pooled_run(harness: &str, budget: Duration) -> superopt_report::Capsule {
    std::env::set_var("SUPEROPT_REFERENCE_WORKERS", "2");
    let harness = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(harness);
    let session = SessionConfig { harness, python: None, request_timeout: Duration::from_secs(120) };
    let config = superopt_run::Config {
        session,
        objective: superopt_bench::Objective::All,
        tolerance: Tolerance::Relative,
        time_budget: budget,
        seeds: 2,
    };
    let outcome = superopt_run::optimize(&config, &|_| {}).expect("the run ends");
    let superopt_run::Outcome::Done(done) = outcome else { panic!("the run traces and verifies") };
    done.capsule
}

/// A whole run whose references come from a pool: verification runs beside it and judges
/// every candidate (none is dropped for waiting), the traced program bit-identical.
#[test]
fn a_run_verifies_beside_the_pool() {
    let c = &pooled_run("examples/softmax.py", Duration::from_secs(90));
    assert!(c.references.iter().all(|r| r.workers == 2), "{:?}", c.references);
    assert!(c.candidates[0].verified, "the round trip: {:?}", c.candidates[0].dropped);
    let dropped: Vec<_> = c.candidates.iter().filter_map(|k| k.dropped.as_deref()).collect();
    assert!(dropped.iter().all(|d| !d.contains("time budget")), "{dropped:?}");
}

/// A run whose references come slower than its budget: the time verification waits for
/// them is not counted, so every candidate is still judged, and the notes say how long.
#[test]
fn waiting_for_references_does_not_drop_candidates() {
    let c = &pooled_run("tests/harnesses/pool/slow_reference.py", Duration::from_secs(10));
    assert!(c.notes.iter().any(|n| n.contains("waited") && n.contains("not counted")), "{:?}", c.notes);
    assert!(c.candidates[0].verified, "the round trip: {:?}", c.candidates[0].dropped);
    let dropped: Vec<_> = c.candidates.iter().filter_map(|k| k.dropped.as_deref()).collect();
    assert!(dropped.iter().all(|d| !d.contains("time budget")), "{dropped:?}");
}

/// Workers that die on their cases: the pool ends without them, and says what happened.
#[test]
fn a_pool_whose_workers_die_says_so() {
    let mut s = session_on("tests/harnesses/pool/crashing_reference.py");
    s.start_references(&[0], 2, Default::default(), Instant::now() + Duration::from_secs(300));
    assert!(!s.await_references(Instant::now() + Duration::from_secs(300)), "no reference was kept");
    let pool = s.pool.as_mut().unwrap();
    let progress = pool.progress();
    assert!(progress.starts_with("0 of 21 cases kept, 2 started"), "{progress}");
    let troubles = pool.troubles();
    assert!(troubles.iter().any(|t| t.starts_with("a small case failed: ") && t.ends_with("(x2)")), "{troubles:?}");
}

/// Workers that do their cases: nothing went wrong, and every case was kept.
#[test]
fn a_pool_whose_workers_do_their_cases_has_no_troubles() {
    let mut s = session_on("tests/harnesses/pool/slow_reference.py");
    s.start_references(&[0], 2, Default::default(), Instant::now() + Duration::from_secs(300));
    assert!(s.await_references(Instant::now() + Duration::from_secs(300)));
    let pool = s.pool.as_mut().unwrap();
    assert!(pool.troubles().is_empty(), "{:?}", pool.troubles());
    let progress = pool.progress();
    assert!(progress.starts_with("21 of 21 cases kept, 21 started, the first done began "), "{progress}");
    assert!(progress.contains("; 2 of 2 workers had loaded the harness "), "{progress}");
}

/// A pool started before the trace loads the harness and waits: no case starts until it
/// is released, and then every case is done.
#[test]
fn a_preloaded_pool_waits_for_its_release() {
    let mut s = session_on("tests/harnesses/pool/slow_reference.py");
    s.preload_references(&[0], 2, Instant::now() + Duration::from_secs(300));
    let loaded = Instant::now() + Duration::from_secs(120);
    while !s.pool.as_mut().unwrap().progress().contains("2 of 2 workers had loaded") && Instant::now() < loaded {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let progress = s.pool.as_mut().unwrap().progress();
    assert!(progress.starts_with("0 of 21 cases kept, 0 started; 2 of 2 workers had loaded"), "{progress}");
    s.release_references(Default::default(), vec![]);
    assert!(s.await_references(Instant::now() + Duration::from_secs(300)), "every case done once released");
}
