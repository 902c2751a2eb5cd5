//! The terminal table.

use crate::capsule::Capsule;
use std::fmt::Write;

pub fn format_seconds(s: f64) -> String {
    if !s.is_finite() {
        "-".into()
    } else if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn shapes_text(shapes: &[Vec<i64>]) -> String {
    shapes.iter().map(|s| format!("{s:?}").replace(' ', "")).collect::<Vec<_>>().join(" ")
}

/// The result table: the winner (or the best loser) per size, then every candidate.
pub fn table(c: &Capsule) -> String {
    let mut s = String::new();
    writeln!(s, "superopt {} · {} · {} · MLX {}", c.version, c.harness, c.device, c.mlx).unwrap();
    let shown = c.winner_at.and_then(|k| c.candidates.get(k));
    if let Some(k) = shown {
        writeln!(
            s,
            "\n{:<8} {:<28} {:>18} {:>18} {:>14}  verified",
            "size", "input shapes", "original", "optimized", "speedup"
        )
        .unwrap();
        for z in &k.sizes {
            let (b, o, sp) = match &z.timing {
                Some(t) => (
                    format!("{} ±{:.0}%", format_seconds(t.baseline.median), t.baseline.spread * 100.0),
                    format!("{} ±{:.0}%", format_seconds(t.candidate.median), t.candidate.spread * 100.0),
                    format!("{:.2}x ±{:.2}", t.speedup, t.speedup_spread),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let v = match &z.verdict {
                Some(v) if v.accepted && v.bit_identical => "yes (bit-identical)".to_string(),
                Some(v) if v.accepted => format!("yes (err {:.1e} vs original's {:.1e})", v.worst_l2, v.original_l2),
                Some(v) => format!("NO: {}", v.reason.clone().unwrap_or_default()),
                None => "-".into(),
            };
            let v = match (z.runs_original, z.dispatch_s) {
                (false, _) => v,
                (true, None) => format!("{v}; runs the original"),
                (true, Some(d)) => format!("{v}; runs the original (choosing: {} a call)", format_seconds(d)),
            };
            writeln!(s, "{:<8} {:<28} {:>18} {:>18} {:>14}  {v}", z.size, shapes_text(&z.shapes), b, o, sp).unwrap();
        }
        roofline_lines(&mut s, c, Some(k));
        writeln!(s, "\nwinner: {}", k.name).unwrap();
        if !k.rules.is_empty() {
            writeln!(s, "rules: {}", k.rules.join("; ")).unwrap();
        }
    }
    writeln!(s, "\ncandidates:").unwrap();
    for k in &c.candidates {
        let speedups: Vec<String> = k
            .sizes
            .iter()
            .filter_map(|z| {
                z.timing
                    .as_ref()
                    .map(|t| format!("{} {:.2}x{}", z.size, t.speedup, if t.significant { "" } else { "~" }))
            })
            .collect();
        let status = match (&k.dropped, k.verified) {
            (Some(why), _) => format!("dropped: {why}"),
            (None, true) if speedups.is_empty() => "verified".to_string(),
            (None, true) if k.first_look_only => format!("verified; {} (first look only)", speedups.join(", ")),
            (None, true) => format!("verified; {}", speedups.join(", ")),
            (None, false) => "not verified".to_string(),
        };
        let roof = k
            .sizes
            .last()
            .and_then(|z| z.roofline)
            .map_or(String::new(), |f| format!("; {:.0}% of the roofline at large", f * 100.0));
        writeln!(s, "  {:<22} {:>5} nodes  {status}{roof}", k.name, k.nodes).unwrap();
        for l in &k.launches {
            writeln!(s, "  {:<22} launch: {l}", "").unwrap();
        }
        if k.metal.is_some() {
            let what =
                "metal: the same kernels for mx.fast.metal_kernel are in the capsule: not verified on this device";
            writeln!(s, "  {:<22} {what}", "").unwrap();
        }
        if k.source.is_egraph() && !k.rules.is_empty() {
            writeln!(s, "  {:<22} rules: {}", "", k.rules.join("; ")).unwrap();
        }
        if k.source == superopt_search::Source::BySize {
            writeln!(s, "  {:<22} parts: {}", "", k.rules.join("; ")).unwrap();
        }
        if let Some(f) = k.field.first() {
            writeln!(s, "  {:<22} field: {}", "", f.summary()).unwrap();
        }
    }
    if shown.is_none() {
        roofline_lines(&mut s, c, None);
    }
    if !c.references.is_empty() {
        let each: Vec<String> = c
            .references
            .iter()
            .map(|r| format!("{} {:.1} s ({} cases, {:.1} GFLOP)", r.size, r.seconds, r.cases, r.gflop))
            .collect();
        let (device, workers) = (c.references[0].device, c.references[0].workers);
        let by = match device {
            superopt_bench::DeviceKind::Gpu => " on the GPU".to_string(),
            superopt_bench::DeviceKind::Cpu if workers > 1 => format!(" by {workers} CPU workers"),
            superopt_bench::DeviceKind::Cpu => String::new(),
        };
        writeln!(s, "\nfloat64 references{by}: {}", each.join(", ")).unwrap();
    }
    for n in &c.notes {
        writeln!(s, "\nnote: {n}").unwrap();
    }
    writeln!(s, "\n{}", c.decision).unwrap();
    let stages: Vec<String> = c.stages.iter().map(|st| format!("{} {:.1}s", st.name, st.seconds)).collect();
    writeln!(s, "shapes: {}\ntime: {}", c.shapes, stages.join(", ")).unwrap();
    s
}

/// The device's ceilings and, per size, the floor and the fraction of it reached.
fn roofline_lines(s: &mut String, c: &Capsule, winner: Option<&crate::CandidateReport>) {
    let Some(ceil) = c.ceilings else { return };
    if c.floors.iter().all(|f| f.original.is_none()) {
        return;
    }
    writeln!(
        s,
        "\nroofline (copy {:.0} GB/s + {:.1} µs per kernel, matmul {:.0} GFLOP/s, measured on this device):",
        ceil.bytes_per_s / 1e9,
        ceil.fixed_s * 1e6,
        ceil.flops_per_s / 1e9
    )
    .unwrap();
    for (i, f) in c.floors.iter().enumerate() {
        let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0));
        let won =
            winner.map_or(String::new(), |k| format!(", optimized {}", pct(k.sizes.get(i).and_then(|z| z.roofline))));
        writeln!(
            s,
            "  {:<8} floor {} ({:.1} MB, {:.2} GFLOP): original reaches {}{won}",
            f.size,
            format_seconds(f.seconds),
            f.bytes / 1e6,
            f.flops / 1e9,
            pct(f.original)
        )
        .unwrap();
    }
}
