//! `superopt model`: the model's blocks optimized with a bar over the runs, then the
//! table, the capsule and the chart.

use crate::cli::ModelArgs;
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use superopt_model::proof::ProofConfig;
use superopt_model::{optimize_model, report, ModelConfig};
use superopt_run::output::write_atomic;

const DEFAULT_OUTPUT: &str = "superopt_patch.py";

pub fn command(a: ModelArgs) -> Result<ExitCode> {
    let output = match a.output {
        Some(o) => o,
        None if std::path::Path::new(DEFAULT_OUTPUT).exists() => {
            bail!("{DEFAULT_OUTPUT} exists: name the patch to write with -o (it is replaced only when named)")
        }
        None => PathBuf::from(DEFAULT_OUTPUT),
    };
    if a.decode_batch.is_empty() || a.decode_batch.len() > 3 || a.decode_batch.contains(&0) {
        bail!("--decode-batch takes one to three batches of at least 1, e.g. 1,8");
    }
    let cfg = ModelConfig {
        model: a.dir,
        output,
        python: a.python,
        time_budget: Duration::from_secs(a.time_budget),
        request_timeout: Duration::from_secs(a.request_timeout),
        prompt_tokens: a.prompt_tokens,
        decode_batches: a.decode_batch,
        proof: ProofConfig {
            prompts: a.prompts,
            new_tokens: a.new_tokens,
            decode_steps: a.decode_steps,
            rounds: a.rounds,
        },
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:24} {pos}/{len} runs {elapsed:>4} {wide_msg}").expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let capsule = optimize_model(&cfg, &|msg| bar.set_message(msg.to_string()), &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let capsule = capsule?;
    print!("{}", report::table(&capsule));
    if let Some(path) = &a.json {
        write_atomic(path, serde_json::to_string_pretty(&capsule)?.as_bytes())?;
    }
    if let (Some(path), Some(p)) = (&a.plot, &capsule.proof) {
        report::plot(p, path)?;
    }
    Ok(ExitCode::SUCCESS)
}
