//! What `superopt model` prints: each block kind's result, then the end-to-end table;
//! and the chart of the forms' speed over stock.

use crate::proof::{Proof, FORMS};
use crate::{BlockReport, ModelCapsule};
use anyhow::Result;
use std::fmt::Write;

/// One block kind in a line: its runs' results, or why it was not run.
pub fn block_line(b: &BlockReport, withdrawn: bool) -> String {
    let head = format!("{} ({} layers)", b.kind, b.instances.len());
    if let Some(why) = &b.skipped {
        return format!("{head}: kept, {why}");
    }
    let runs: Vec<String> = b
        .runs
        .iter()
        .map(|r| {
            let speedups: Vec<String> = r.speedups.iter().map(|s| format!("{s:.2}x")).collect();
            let cached = if r.cached { ", cached" } else { "" };
            match (&r.module, withdrawn) {
                (Some(m), false) => format!("{} {} ({m}{cached})", r.shapes.name(), speedups.join(" / ")),
                (Some(_), true) => format!("{} {} (withdrawn{cached})", r.shapes.name(), speedups.join(" / ")),
                (None, _) if r.decision.starts_with("failed") => {
                    format!("{} original ({})", r.shapes.name(), r.decision)
                }
                (None, _) => format!("{} original{cached}", r.shapes.name()),
            }
        })
        .collect();
    format!("{head}: {}", runs.join("; "))
}

fn form_label(name: &str) -> &str {
    match name {
        "compiled" => "mx.compile",
        other => other,
    }
}

/// The end-to-end table: per form, prefill and decode tokens/s, whether its greedy tokens
/// are stock's, and on stock's tokens at how many steps its choice differs and how far its
/// logits are (relative L2).
pub fn proof_table(p: &Proof) -> String {
    let stock = p.form("stock");
    let mut head = format!("| form | prefill {} tokens |", p.prompt_tokens);
    for (b, _) in &stock.decode_tokens_per_s {
        write!(head, " decode batch {b} |").unwrap();
    }
    let forced = "on stock's tokens: argmax differs, logits rel. L2";
    write!(head, " geomean | greedy tokens ({} prompts x {}) | {forced} |", p.prompts, p.new_tokens).unwrap();
    let columns = head.matches('|').count() - 1;
    let mut s = format!("{head}\n|{}\n", "---|".repeat(columns));
    for name in FORMS {
        let f = p.form(name);
        let ratio = |x: f64, base: f64| if name == "stock" { String::new() } else { format!(" ({:.2}x)", x / base) };
        write!(
            s,
            "| {} | {:.1} tok/s{} |",
            form_label(name),
            f.prefill_tokens_per_s,
            ratio(f.prefill_tokens_per_s, stock.prefill_tokens_per_s)
        )
        .unwrap();
        for ((_, t), (_, base)) in f.decode_tokens_per_s.iter().zip(&stock.decode_tokens_per_s) {
            write!(s, " {t:.1} tok/s{} |", ratio(*t, *base)).unwrap();
        }
        let same = match (name, f.first_difference) {
            ("stock", _) => "the reference".to_string(),
            (_, None) => "identical".to_string(),
            (_, Some((prompt, token))) => match (f.stock_margin, p.median_margin) {
                (Some(m), Some(median)) => {
                    format!("differ (prompt {prompt}, token {token}; stock's margin there {m:.3}, median {median:.3})")
                }
                _ => format!("differ (prompt {prompt}, token {token})"),
            },
        };
        let forced = match (name, f.forced) {
            ("stock", _) => "the reference".to_string(),
            (_, Some(d)) => {
                let l2 = d.rel_l2.map_or("not finite".into(), |r| format!("{r:.1e}"));
                let ties =
                    if d.at_ties > 0 { format!(" ({} at stock's exact ties)", d.at_ties) } else { String::new() };
                format!("{} of {} differ{ties}, logits {l2}", d.argmax_differs, d.steps)
            }
            (_, None) => "-".to_string(),
        };
        writeln!(s, " {:.2}x | {same} | {forced} |", p.speedup(name)).unwrap();
    }
    s.push_str(&build_line(p));
    s
}

/// The host's time to build one decode step's graph, per form at each batch: where it nears
/// a step's time, the decode is bound by the host, not the device.
fn build_line(p: &Proof) -> String {
    let batches: Vec<usize> = p.form("stock").decode_build_us.iter().map(|(b, _)| *b).collect();
    let per_batch: Vec<String> = batches
        .iter()
        .map(|b| {
            let forms: Vec<String> = FORMS
                .iter()
                .filter_map(|n| {
                    let us = p.form(n).decode_build_us.iter().find(|(x, _)| x == b)?.1;
                    Some(format!("{} {us:.0} µs", form_label(n)))
                })
                .collect();
            format!("{} at batch {b}", forms.join(", "))
        })
        .collect();
    if per_batch.is_empty() {
        return String::new();
    }
    format!("host time per decode step: {}\n", per_batch.join("; "))
}

/// Everything the command prints after its progress bars.
pub fn table(c: &ModelCapsule) -> String {
    let mut s = format!(
        "superopt {} model · {} · {} · MLX {}\n\nblocks ({} layers):\n",
        c.version, c.model, c.device, c.mlx, c.layers
    );
    for b in &c.blocks {
        writeln!(s, "  {}", block_line(b, c.withdrawn.is_some())).unwrap();
    }
    if let Some(p) = &c.proof {
        writeln!(s, "\nend to end (best of the rounds, {:.0} s):\n{}", p.seconds, proof_table(p)).unwrap();
        let calls: Vec<String> = p.calls.iter().map(|(m, n)| format!("{m} {n} calls")).collect();
        if !calls.is_empty() {
            writeln!(s, "while the patched model decoded: {}", calls.join(", ")).unwrap();
        }
    }
    let patched: usize = c.blocks.iter().filter(|b| b.runs.iter().any(|r| r.module.is_some())).count();
    match &c.withdrawn {
        Some(why) => writeln!(s, "patch withdrawn: {why}; {} patches nothing", c.patch).unwrap(),
        None if patched == 0 => writeln!(
            s,
            "no block kind got a verified win: {} patches nothing (the patched row is stock timed again: \
             its ratios are the timing's noise)",
            c.patch
        )
        .unwrap(),
        None => writeln!(s, "{} patches {patched} block kind(s): `patch(model)`", c.patch).unwrap(),
    }
    let warm = c.warm_seconds.map_or(String::new(), |w| format!(" (the stock model's warm-up {w:.0} s)"));
    writeln!(s, "time: {:.0} s{warm}", c.seconds).unwrap();
    s
}

/// A bar chart (SVG) of each form's speed over stock at prefill and each decode batch.
pub fn plot(p: &Proof, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    if path.extension().is_none_or(|e| e != "svg") {
        anyhow::bail!("--plot writes SVG; name the file *.svg");
    }
    let stock = p.form("stock");
    let mut groups = vec![("prefill".to_string(), stock.prefill_tokens_per_s)];
    groups.extend(stock.decode_tokens_per_s.iter().map(|(b, t)| (format!("decode b{b}"), *t)));
    let ratios: Vec<Vec<f64>> = FORMS
        .iter()
        .map(|n| {
            let f = p.form(n);
            let mut v = vec![f.prefill_tokens_per_s];
            v.extend(f.decode_tokens_per_s.iter().map(|x| x.1));
            v.iter().zip(&groups).map(|(x, g)| x / g.1).collect()
        })
        .collect();
    let top = ratios.iter().flatten().cloned().fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = groups.len();
    let mut chart = ChartBuilder::on(&root)
        .caption("superopt model: tokens/s over stock", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2)
        .x_label_formatter(&|x| {
            labels
                .get((x - 0.5).round() as usize)
                .filter(|_| (x.fract() - 0.5).abs() < 1e-6)
                .cloned()
                .unwrap_or_default()
        })
        .y_desc("speed over stock")
        .draw()?;
    let colors = [RGBColor(150, 150, 150), RGBColor(70, 130, 180), RGBColor(220, 120, 40)];
    for (k, (name, row)) in FORMS.iter().zip(&ratios).enumerate() {
        let color = colors[k];
        chart
            .draw_series(row.iter().enumerate().map(|(g, r)| {
                let x0 = g as f64 + 0.1 + k as f64 * 0.27;
                Rectangle::new([(x0, 0.0), (x0 + 0.25, *r)], color.filled())
            }))?
            .label(form_label(name).to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}
