//! `superopt lint`: findings as `path:line:col: CODE message` (or JSON); exit 1 when any.

use crate::cli::{LintArgs, LintFormat};
use anyhow::Result;
use std::process::ExitCode;

pub fn command(a: LintArgs) -> Result<ExitCode> {
    if a.rules {
        print!("{}", superopt_lint::render_rules());
        return Ok(ExitCode::SUCCESS);
    }
    let (files, missing) = superopt_lint::python_files(&a.paths)?;
    let mut reports = Vec::new();
    let mut failed = missing.len();
    for m in &missing {
        eprintln!("error: {}: no such file or folder", m.display());
    }
    for f in &files {
        match superopt_lint::lint_file(f) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    let found: usize = reports.iter().map(|r| r.findings.len()).sum();
    match a.format {
        LintFormat::Text => {
            print!("{}", superopt_lint::render_text(&reports));
            let with = reports.iter().filter(|r| !r.findings.is_empty()).count();
            eprintln!(
                "{found} finding(s) in {with} of {} file(s) (superopt lint --rules explains each code)",
                files.len()
            );
        }
        LintFormat::Json => println!("{}", superopt_lint::render_json(&reports)),
    }
    Ok(match (failed, found) {
        (0, 0) => ExitCode::SUCCESS,
        (0, _) => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}
