//! The suite's report: one row per harness (superopt against the original, `mx.compile`,
//! `mx.fast` and phew, timed side by side), as a markdown table and a bar chart.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Write};
use superopt_bench::geomean;

/// One contender's speedups over the original, per size.
#[derive(Debug, Serialize, Deserialize)]
pub struct Speedups {
    pub sizes: Vec<f64>,
    pub geomean: f64,
}

impl Speedups {
    pub fn of(sizes: Vec<f64>) -> Speedups {
        Speedups { geomean: geomean(sizes.iter().copied()), sizes }
    }
}

/// How a harness's row ended; in JSON, the text the table shows.
#[derive(Clone, Debug, PartialEq)]
pub enum RowStatus {
    /// Every contender timed.
    Ok,
    /// superopt left the original as it is, for this reason (nothing timed).
    NoChange(String),
    Failed(String),
    /// Ended after this many seconds (`--harness-limit`).
    TimedOut(u64),
}

impl fmt::Display for RowStatus {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            RowStatus::Ok => f.write_str("ok"),
            RowStatus::NoChange(why) => write!(f, "no change: {why}"),
            RowStatus::Failed(why) => write!(f, "failed: {why}"),
            RowStatus::TimedOut(s) => write!(f, "timed out after {s} s (--harness-limit)"),
        }
    }
}

/// Where a contender beside superopt (phew, the harness's `fast_fn`) stands; in JSON,
/// the text the table shows.
#[derive(Clone, Debug, PartialEq)]
pub enum ContenderStatus {
    NotRun,
    /// Passed superopt's verification at every size: timed with the others.
    Verified,
    /// phew is not importable in the worker's Python.
    NotImportable,
    /// The harness defines no `fast_fn`.
    Absent,
    /// It ran and failed, gave no usable output, or did not pass verification.
    Lost(String),
}

impl fmt::Display for ContenderStatus {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ContenderStatus::NotRun => f.write_str("not run"),
            ContenderStatus::Verified => f.write_str("verified"),
            ContenderStatus::NotImportable => f.write_str("not importable"),
            ContenderStatus::Absent => f.write_str("none (the harness defines no fast_fn)"),
            ContenderStatus::Lost(why) => f.write_str(why),
        }
    }
}

impl RowStatus {
    /// The status a text of [`fmt::Display`] stands for (a report written earlier).
    pub fn parse(text: &str) -> RowStatus {
        let timed_out = || text.strip_prefix("timed out after ")?.strip_suffix(" s (--harness-limit)")?.parse().ok();
        if text == "ok" {
            RowStatus::Ok
        } else if let Some(why) = text.strip_prefix("no change: ") {
            RowStatus::NoChange(why.into())
        } else if let Some(s) = timed_out() {
            RowStatus::TimedOut(s)
        } else {
            RowStatus::Failed(text.strip_prefix("failed: ").unwrap_or(text).into())
        }
    }
}

impl ContenderStatus {
    /// The status a text of [`fmt::Display`] stands for (a report written earlier).
    pub fn parse(text: &str) -> ContenderStatus {
        let named = [
            ContenderStatus::NotRun,
            ContenderStatus::Verified,
            ContenderStatus::NotImportable,
            ContenderStatus::Absent,
        ];
        named.into_iter().find(|s| s.to_string() == text).unwrap_or_else(|| ContenderStatus::Lost(text.into()))
    }
}

/// Serde as the text the table shows, parsed back on reading.
macro_rules! as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(<$t>::parse(&String::deserialize(d)?))
            }
        }
    };
}

as_text!(RowStatus);
as_text!(ContenderStatus);

/// What the report says of phew where the worker's Python does not import it.
pub const PHEW_ABSENT: &str = "not importable in the worker's Python (pip install phew-mlx there): skipped";

/// `phew` in JSON: the version seen, or [`PHEW_ABSENT`].
mod phew_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_deref().unwrap_or(super::PHEW_ABSENT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let text = String::deserialize(d)?;
        Ok((text != super::PHEW_ABSENT).then_some(text))
    }
}

/// One harness's row.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    pub status: RowStatus,
    /// The original's median seconds per call, per size.
    pub original: Vec<f64>,
    pub compiled: Option<Speedups>,
    pub superopt: Option<Speedups>,
    /// phew's output, timed like the others when it ran and passed superopt's verification.
    pub phew: Option<Speedups>,
    pub phew_status: ContenderStatus,
    /// The harness's `fast_fn` (the same function through `mx.fast`), where it has one.
    pub fast: Option<Speedups>,
    pub fast_status: ContenderStatus,
    /// The roofline floor per size (seconds), and the fraction of it superopt's result
    /// reaches at the large size.
    pub floor: Vec<f64>,
    pub roofline: Option<f64>,
    /// The label of the candidate superopt handed back, or "original".
    pub superopt_result: String,
    pub verified: bool,
    pub seconds: f64,
}

impl Row {
    /// A row with nothing measured yet.
    pub fn empty(workload: &str) -> Row {
        Row {
            workload: workload.to_string(),
            status: RowStatus::Ok,
            original: vec![],
            compiled: None,
            superopt: None,
            phew: None,
            phew_status: ContenderStatus::NotRun,
            fast: None,
            fast_status: ContenderStatus::NotRun,
            floor: vec![],
            roofline: None,
            superopt_result: "original".into(),
            verified: false,
            seconds: 0.0,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    pub device: String,
    pub sizes: String,
    /// "phew-mlx VERSION" where the worker's Python imports phew.
    #[serde(with = "phew_text")]
    pub phew: Option<String>,
    pub rows: Vec<Row>,
    pub geomean_compiled: f64,
    pub geomean_superopt: f64,
    /// Over the workloads where phew's output was verified; `None` where there is none.
    pub geomean_phew: Option<f64>,
}

/// The report over `rows`, with each contender's geometric mean.
pub fn summary(rows: Vec<Row>, device: String, phew: Option<String>, cpu_sizes: bool) -> SuiteReport {
    let gm = |pick: fn(&Row) -> Option<&Speedups>| geomean(rows.iter().map(|r| pick(r).map_or(1.0, |s| s.geomean)));
    SuiteReport {
        device,
        sizes: if cpu_sizes { "cpu".into() } else { "full".into() },
        phew,
        geomean_compiled: gm(|r| r.compiled.as_ref()),
        geomean_superopt: gm(|r| r.superopt.as_ref()),
        geomean_phew: rows
            .iter()
            .any(|r| r.phew.is_some())
            .then(|| geomean(rows.iter().filter_map(|r| r.phew.as_ref()).map(|s| s.geomean))),
        rows,
    }
}

/// The markdown table of every row, and the geometric means.
pub fn markdown(r: &SuiteReport) -> String {
    let mut s = String::new();
    let phew = r.phew.as_deref().unwrap_or(PHEW_ABSENT);
    writeln!(s, "\nsuperopt suite · {} · sizes: {} · phew: {phew}\n", r.device, r.sizes).unwrap();
    let columns = [
        "workload",
        "original (small / typical / large)",
        "mx.compile speedup",
        "mx.fast speedup",
        "phew speedup",
        "superopt speedup",
        "superopt result",
        "roofline at large",
        "time",
    ];
    writeln!(s, "| {} |", columns.join(" | ")).unwrap();
    writeln!(s, "|---|---|---|---|---|---|---|---|---|").unwrap();
    let fmt = |x: &Option<Speedups>| {
        x.as_ref().map_or("-".into(), |s| {
            format!(
                "{} (geo {:.2}x)",
                s.sizes.iter().map(|v| format!("{v:.2}x")).collect::<Vec<_>>().join(" / "),
                s.geomean
            )
        })
    };
    for row in &r.rows {
        if row.status != RowStatus::Ok {
            writeln!(
                s,
                "| {} | {} | - | - | - | - | original | - | {:.0}s |",
                row.workload,
                cell(&row.status.to_string()),
                row.seconds
            )
            .unwrap();
            continue;
        }
        let orig = row.original.iter().map(|t| crate::format_seconds(*t)).collect::<Vec<_>>().join(" / ");
        let result = if row.verified {
            format!("{} (verified)", row.superopt_result)
        } else {
            "original (no verified win)".into()
        };
        let phew = if row.phew.is_some() { fmt(&row.phew) } else { cell(&row.phew_status.to_string()) };
        let fast = match (&row.fast, &row.fast_status) {
            (Some(_), _) => fmt(&row.fast),
            (None, ContenderStatus::Absent) => "-".into(),
            (None, status) => cell(&status.to_string()),
        };
        let roof = row.roofline.map_or("-".into(), |f| format!("{:.0}%", f * 100.0));
        writeln!(
            s,
            "| {} | {orig} | {} | {fast} | {phew} | {} | {result} | {roof} | {:.0}s |",
            row.workload,
            fmt(&row.compiled),
            fmt(&row.superopt),
            row.seconds
        )
        .unwrap();
    }
    let phew = r.geomean_phew.map_or("-".into(), |g| format!("{g:.2}x (verified rows)"));
    writeln!(s, "| **geomean** | | {:.2}x | | {phew} | {:.2}x | | | |", r.geomean_compiled, r.geomean_superopt)
        .unwrap();
    s
}

/// One line of at most 100 characters for a table cell (the JSON keeps the whole text).
fn cell(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "/");
    match line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// A bar chart of the geometric-mean speedup per workload, one bar per contender.
pub fn plot(r: &SuiteReport, path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    if path.extension().is_none_or(|e| e != "svg") {
        anyhow::bail!("--plot writes SVG; name the file *.svg");
    }
    let n = r.rows.len().max(1);
    let top = r
        .rows
        .iter()
        .flat_map(|row| [&row.compiled, &row.superopt, &row.phew])
        .flatten()
        .map(|s| s.geomean)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (160 + 90 * n as u32, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("speedup over the original ({})", r.device), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| r.rows.get(x.floor() as usize).map_or(String::new(), |row| row.workload.clone()))
        .y_desc("geomean speedup (x)")
        .draw()?;
    let bars = |pick: fn(&Row) -> Option<&Speedups>, offset: f64, color: RGBColor| {
        r.rows.iter().enumerate().map(move |(k, row)| {
            let v = pick(row).map_or(0.0, |s| s.geomean);
            Rectangle::new([(k as f64 + offset, 0.0), (k as f64 + offset + 0.26, v)], color.filled())
        })
    };
    chart
        .draw_series(bars(|row| row.compiled.as_ref(), 0.12, RGBColor(150, 150, 150)))?
        .label("mx.compile")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(150, 150, 150).filled()));
    chart
        .draw_series(bars(|row| row.phew.as_ref(), 0.4, RGBColor(230, 150, 40)))?
        .label("phew")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(230, 150, 40).filled()));
    chart
        .draw_series(bars(|row| row.superopt.as_ref(), 0.68, RGBColor(40, 110, 200)))?
        .label("superopt")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RGBColor(40, 110, 200).filled()));
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 1.0), (n as f64, 1.0)], BLACK)))?;
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_their_table_text_in_json_and_read_back() {
        let rows = [
            RowStatus::Ok,
            RowStatus::NoChange("unsupported primitive Foo".into()),
            RowStatus::Failed("worker error: boom".into()),
            RowStatus::TimedOut(40),
        ];
        for r in rows {
            let text = serde_json::to_value(&r).unwrap();
            assert_eq!(text, r.to_string());
            assert_eq!(serde_json::from_value::<RowStatus>(text).unwrap(), r);
        }
        let lost = ContenderStatus::Lost("not verified at large: max error".into());
        for c in [ContenderStatus::Verified, ContenderStatus::Absent, ContenderStatus::NotImportable, lost] {
            let text = serde_json::to_value(&c).unwrap();
            assert_eq!(serde_json::from_value::<ContenderStatus>(text).unwrap(), c);
        }
        assert_eq!(serde_json::to_value(RowStatus::Ok).unwrap(), "ok");
    }

    #[test]
    fn a_report_without_phew_says_so_and_reads_back() {
        let r = summary(vec![Row::empty("w")], "cpu".into(), None, true);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["phew"], PHEW_ABSENT);
        let back: SuiteReport = serde_json::from_value(json).unwrap();
        assert_eq!(back.phew, None);
    }
}
