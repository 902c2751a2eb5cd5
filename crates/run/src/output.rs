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
        mode_of_replaced(&tmp, &dir.join(&consts))?;
        tmp.persist(dir.join(&consts))?;
    }
    write_atomic(out, e.source.as_bytes())
}

/// Gives a temporary file (private, 0600) the mode of the file it will replace, or 0644.
fn mode_of_replaced(tmp: &tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o777);
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (tmp, path);
    Ok(())
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
    mode_of_replaced(&tmp, path)?;
    tmp.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_written_file_is_readable_by_others_or_keeps_the_mode_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.py");
        write_atomic(&new, b"x = 1\n").unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o644);
        let old = dir.path().join("old.py");
        std::fs::write(&old, "x = 0\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&old, b"x = 1\n").unwrap();
        assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "x = 1\n");
    }
}
