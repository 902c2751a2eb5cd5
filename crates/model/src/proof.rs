//! The end-to-end proof: the stock, mx.compile-wrapped and patched model side by side in
//! one worker (one model switched between its forms by class): greedy tokens of several
//! prompts, each form's logits on stock's tokens against stock's (teacher forcing: one near
//! tie does not change every later token), prefill tokens/s and decode tokens/s at each batch.

use crate::{ModelCapsule, ModelConfig};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use superopt_worker::protocol::{CallKind, Forced, ModelBlocksReply, ModelProof};
use superopt_worker::{find_python, Worker};

/// How much of the model the proof runs.
#[derive(Clone, Debug)]
pub struct ProofConfig {
    pub prompts: usize,
    pub new_tokens: usize,
    pub decode_steps: usize,
    pub rounds: usize,
}

/// One form of the model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Form {
    pub name: String,
    pub prefill_tokens_per_s: f64,
    /// (batch, tokens/s).
    pub decode_tokens_per_s: Vec<(usize, f64)>,
    /// (batch, microseconds the host spent building one decode step's graph, at its best round).
    #[serde(default)]
    pub decode_build_us: Vec<(usize, f64)>,
    /// The first (prompt, token) where its greedy tokens differ from stock's.
    pub first_difference: Option<(usize, usize)>,
    /// Stock's margin there: its chosen token's logit over the next best.
    #[serde(default)]
    pub stock_margin: Option<f64>,
    /// Its logits on stock's tokens against stock's (none for stock).
    #[serde(default)]
    pub forced: Option<Forced>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proof {
    /// Calls that ran each winner's module while the patched model decoded its prompts.
    #[serde(default)]
    pub calls: std::collections::BTreeMap<String, u64>,
    pub prompts: usize,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub forms: Vec<Form>,
    /// The median of stock's margins over every greedy token: the scale of a near tie.
    #[serde(default)]
    pub median_margin: Option<f64>,
    pub seconds: f64,
}

/// The forms, in the order the table shows them.
pub const FORMS: [&str; 3] = ["stock", "compiled", "patched"];

/// A difference of more than this, in geomean over the figures, is a loss.
const NOISE: f64 = 0.03;
/// A difference of more than this in any one figure (fewer samples, more noise) is a loss.
const FIGURE_NOISE: f64 = 0.10;

impl Proof {
    pub fn form(&self, name: &str) -> &Form {
        self.forms.iter().find(|f| f.name == name).expect("every form is measured")
    }

    /// The form's speed over stock's, geometric mean over prefill and every decode batch.
    pub fn speedup(&self, name: &str) -> f64 {
        let ratios = self.figures(name);
        (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp()
    }

    /// Why the patch must patch nothing: its tokens differ, or it is slower end to end (by 3%
    /// in geomean over the figures, or by 10% in any one).
    pub fn withdraw_reason(&self) -> Option<String> {
        let patched = self.form("patched");
        if let Some((p, t)) = patched.first_difference {
            return Some(format!("the patched model's greedy tokens differ from stock's (prompt {p}, token {t})"));
        }
        let s = self.speedup("patched");
        if s < 1.0 - NOISE {
            return Some(format!("the patched model is slower than stock end to end ({s:.2}x)"));
        }
        let (stock, figures) = (self.form("stock"), self.figures("patched"));
        let names = std::iter::once("prefill".to_string())
            .chain(stock.decode_tokens_per_s.iter().map(|(b, _)| format!("decode batch {b}")));
        let worst = names.zip(figures).min_by(|a, b| a.1.total_cmp(&b.1))?;
        (worst.1 < 1.0 - FIGURE_NOISE).then(|| format!("the patched model is slower at {} ({:.2}x)", worst.0, worst.1))
    }

    /// The form's speed over stock's at prefill, then at each decode batch.
    fn figures(&self, name: &str) -> Vec<f64> {
        let (f, s) = (self.form(name), self.form("stock"));
        let decode = f.decode_tokens_per_s.iter().zip(&s.decode_tokens_per_s).map(|(a, b)| a.1 / b.1);
        std::iter::once(f.prefill_tokens_per_s / s.prefill_tokens_per_s).chain(decode).collect()
    }
}

/// Where `a` and `b` first differ, prompt by prompt.
fn first_difference(a: &[Vec<i64>], b: &[Vec<i64>]) -> Option<(usize, usize)> {
    for (p, (x, y)) in a.iter().zip(b).enumerate() {
        if let Some(t) = (0..x.len().max(y.len())).find(|t| x.get(*t) != y.get(*t)) {
            return Some((p, t));
        }
    }
    None
}

/// Runs the proof on the patch at `patch`.
pub fn prove(cfg: &ModelConfig, model: &ModelBlocksReply, patch: &std::path::Path) -> Result<Proof> {
    let started = std::time::Instant::now();
    let python = find_python(cfg.python.as_deref(), &|_| {})?.path;
    let mut worker = Worker::start(&python)?;
    let kinds = model.blocks.iter().filter(|b| b.call == CallKind::Pure).map(|b| b.kind.clone()).collect();
    let p = &cfg.proof;
    let req = ModelProof {
        model: cfg.model.canonicalize()?.display().to_string(),
        patch: patch.canonicalize()?.display().to_string(),
        kinds,
        vocab: model.vocab.ok_or_else(|| anyhow::anyhow!("the model's config has no vocab_size"))?,
        prompts: p.prompts,
        prompt_tokens: cfg.prompt_tokens,
        new_tokens: p.new_tokens,
        decode_batches: cfg.decode_batches.clone(),
        decode_steps: p.decode_steps,
        rounds: p.rounds,
    };
    let reply = worker.call(&req, std::time::Duration::from_secs(3600))?;
    let stock = &reply.tokens["stock"];
    let stock_margins = reply.margins.get("stock");
    let forms = FORMS
        .iter()
        .map(|name| {
            let diff = first_difference(stock, &reply.tokens[*name]);
            Form {
                name: name.to_string(),
                prefill_tokens_per_s: reply.prefill[*name],
                decode_tokens_per_s: cfg
                    .decode_batches
                    .iter()
                    .map(|b| (*b, reply.decode[*name][&b.to_string()]))
                    .collect(),
                decode_build_us: cfg
                    .decode_batches
                    .iter()
                    .filter_map(|b| Some((*b, *reply.build_us.get(*name)?.get(&b.to_string())?)))
                    .collect(),
                first_difference: diff,
                stock_margin: diff.and_then(|(p, t)| stock_margins?.get(p)?.get(t).copied()),
                forced: reply.forced.get(*name).copied(),
            }
        })
        .collect();
    let median_margin = stock_margins.and_then(|m| median(m.iter().flatten().copied().collect()));
    let seconds = started.elapsed().as_secs_f64();
    let (calls, prompts, new_tokens) = (reply.calls, p.prompts, p.new_tokens);
    Ok(Proof { calls, prompts, prompt_tokens: cfg.prompt_tokens, new_tokens, forms, median_margin, seconds })
}

/// The median of `v` (None when empty).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// The lines PATCH.py's docstring opens with.
pub fn notes(c: &ModelCapsule) -> Vec<String> {
    let mut lines = vec![format!("Model: {} ({} layers), {}, MLX {}.", c.model, c.layers, c.device, c.mlx)];
    lines.push(format!("Written by superopt {}.", c.version));
    for b in &c.blocks {
        lines.push(crate::report::block_line(b, c.withdrawn.is_some()));
    }
    if let Some(why) = &c.withdrawn {
        lines.push(format!("Patches nothing: {why}."));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, prefill: f64, decode: f64, diff: Option<(usize, usize)>) -> Form {
        let decode_tokens_per_s = vec![(1, decode)];
        Form {
            name: name.into(),
            prefill_tokens_per_s: prefill,
            decode_tokens_per_s,
            decode_build_us: vec![(1, 50.0)],
            first_difference: diff,
            stock_margin: None,
            forced: None,
        }
    }

    fn proof(patched: Form) -> Proof {
        let forms = vec![form("stock", 100.0, 10.0, None), form("compiled", 100.0, 10.0, None), patched];
        let calls = Default::default();
        Proof { calls, prompts: 1, prompt_tokens: 8, new_tokens: 4, forms, median_margin: None, seconds: 0.0 }
    }

    #[test]
    fn a_patch_whose_tokens_differ_is_withdrawn() {
        let why = proof(form("patched", 200.0, 20.0, Some((0, 3)))).withdraw_reason().unwrap();
        assert!(why.contains("prompt 0, token 3"), "{why}");
    }

    #[test]
    fn a_patch_much_slower_at_one_figure_is_withdrawn_though_faster_in_geomean() {
        let why = proof(form("patched", 200.0, 8.5, None)).withdraw_reason().unwrap();
        assert!(why.contains("slower at decode batch 1 (0.85x)"), "{why}");
        assert!(proof(form("patched", 200.0, 9.2, None)).withdraw_reason().is_none());
    }

    #[test]
    fn a_patch_slower_end_to_end_is_withdrawn_and_one_within_noise_is_not() {
        assert!(proof(form("patched", 90.0, 9.0, None)).withdraw_reason().is_some());
        assert!(proof(form("patched", 99.0, 9.9, None)).withdraw_reason().is_none());
        assert!((proof(form("patched", 200.0, 20.0, None)).speedup("patched") - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_difference_says_how_near_a_tie_stock_was_there() {
        let mut p = proof(Form { stock_margin: Some(0.004), ..form("patched", 100.0, 10.0, Some((0, 3))) });
        p.median_margin = Some(1.5);
        let table = crate::report::proof_table(&p);
        assert!(table.contains("differ (prompt 0, token 3; stock's margin there 0.004, median 1.500)"), "{table}");
        assert_eq!((median(vec![3.0, 1.0, 2.0]), median(vec![])), (Some(2.0), None));
    }

    #[test]
    fn the_table_says_how_far_each_form_is_from_stock_on_stocks_tokens() {
        let forced = Forced { rel_l2: Some(2.5e-3), argmax_differs: 2, steps: 600, at_ties: 0 };
        let p = proof(Form { forced: Some(forced), ..form("patched", 100.0, 10.0, Some((0, 3))) });
        let table = crate::report::proof_table(&p);
        assert!(table.contains("on stock's tokens: argmax differs, logits rel. L2 |"), "{table}");
        assert!(table.contains("| 2 of 600 differ, logits 2.5e-3 |"), "{table}");
        let nan = Forced { rel_l2: None, ..forced };
        let p = proof(Form { forced: Some(nan), ..form("patched", 100.0, 10.0, None) });
        assert!(crate::report::proof_table(&p).contains("| 2 of 600 differ, logits not finite |"));
        let ties = Forced { at_ties: 1, ..forced };
        let p = proof(Form { forced: Some(ties), ..form("patched", 100.0, 10.0, None) });
        let want = "| 2 of 600 differ (1 at stock's exact ties), logits 2.5e-3 |";
        assert!(crate::report::proof_table(&p).contains(want));
        assert!(table.contains("| the reference | the reference |"), "{table}");
        assert!(table.contains("| - |"), "a form not measured: {table}");
        let host = "host time per decode step: stock 50 µs, mx.compile 50 µs, patched 50 µs at batch 1";
        assert!(table.contains(host), "{table}");
    }

    #[test]
    fn the_first_difference_is_found_prompt_by_prompt() {
        let a = vec![vec![1, 2, 3], vec![4, 5, 6]];
        assert_eq!(first_difference(&a, &a), None);
        assert_eq!(first_difference(&a, &[vec![1, 2, 3], vec![4, 9, 6]]), Some((1, 1)));
        assert_eq!(first_difference(&a, &[vec![1, 2], vec![4, 5, 6]]), Some((0, 2)));
    }
}
