//! The winner written as a module beside its constants, atomically; the user's files
//! are replaced only where they asked for it (`-o`).

use crate::session::Session;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use superopt_emit::{emit, ModuleInfo};
use superopt_report::CandidateReport;
use superopt_search::Candidate;

/// The lines the written module opens with: the speedup measured at each size.
pub fn module_notes(r: &CandidateReport) -> Vec<String> {
    let mut notes = vec!["Verified and timed by superopt:".to_string()];
    for z in &r.sizes {
        if let Some(t) = &z.timing {
            notes.push(format!("  {} {:?}: {:.2}x faster", z.size, z.shapes, t.speedup));
        }
    }
    notes
}

/// Writes `c` as `out`, with its constants beside it, atomically.
pub fn write_module(s: &mut Session, c: &Candidate, out: &Path, notes: Vec<String>) -> Result<()> {
    let stem = out.file_stem().context("the output path has no file name")?.to_string_lossy().to_string();
    let consts = format!("{stem}.safetensors");
    let info = ModuleInfo { harness: &s.harness.to_string_lossy(), constants_file: &consts, notes };
    let e = emit(c, &info)?;
    let dir = folder_of(out);
    if !e.tensors.is_empty() {
        let tmp = tempfile::Builder::new().suffix(".safetensors").tempfile_in(&dir)?;
        s.save_constants(&e.tensors, tmp.path())?;
        tmp.persist(dir.join(&consts))?;
    }
    write_atomic(out, e.source.as_bytes())
}

/// The folder a path is in ("." for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(PathBuf::from("."), Path::to_path_buf)
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = folder_of(path);
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("cannot write into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
