//! Block runs cached by what decides them (the key's parts: `crate::run_block` says which):
//! the harness (model, block, shapes), the weights' shapes, the sources and signature of the
//! block, the model's config, the device, MLX, mlx-lm, the Python, superopt's build (its
//! executable's digest: the version names no change of the emitter or the verifier) and the
//! time budget.
//! An entry holds the run's record and its module (with the module's constants).

use crate::BlockRun;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use superopt_run::output::write_atomic;

/// The key of a run: a hash of what decides it.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())[..24].to_string()
}

/// This superopt's build: a digest of its executable (a module written by another build,
/// with other guards or checks, is not reused); where it cannot be read, a key of this
/// process alone, so that nothing cached is reused.
pub fn build() -> String {
    let exe = std::env::current_exe().and_then(std::fs::read);
    exe.map(|bytes| format!("{:x}", Sha256::digest(&bytes))[..16].to_string()).unwrap_or_else(|_| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("unread-{}-{}", std::process::id(), now.as_nanos())
    })
}

fn entry(key: &str) -> Option<PathBuf> {
    Some(dirs::cache_dir()?.join("superopt").join("model").join(key))
}

/// The module's files: itself and, where it has constants, its safetensors.
fn files(module: &str) -> [String; 2] {
    let stem = module.trim_end_matches(".py");
    [module.to_string(), format!("{stem}.safetensors")]
}

/// Keeps a finished run; a cache that cannot be written only costs the next run its time.
pub fn store(key: &str, run: &BlockRun, folder: &Path) {
    let Some(dir) = entry(key) else { return };
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&tmp)?;
        for f in run.module.iter().flat_map(|m| files(m)) {
            if folder.join(&f).exists() {
                std::fs::copy(folder.join(&f), tmp.join(&f))?;
            }
        }
        std::fs::write(tmp.join("run.json"), serde_json::to_vec_pretty(run).expect("runs serialize"))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// An earlier run of the same key, its module copied into `folder` (its constants first)
/// and pointed at `harness` for the inputs it was not verified for.
pub fn restore(key: &str, folder: &Path, harness: &Path) -> Option<BlockRun> {
    let dir = entry(key)?;
    let run: BlockRun = serde_json::from_slice(&std::fs::read(dir.join("run.json")).ok()?).ok()?;
    for f in run.module.iter().flat_map(|m| files(m)).rev() {
        let from = dir.join(&f);
        if f.ends_with(".py") {
            let text = std::fs::read_to_string(&from).ok()?;
            write_atomic(&folder.join(&f), relocate(&text, harness).as_bytes()).ok()?;
        } else if from.exists() {
            write_atomic(&folder.join(&f), &std::fs::read(&from).ok()?).ok()?;
        }
    }
    Some(run)
}

/// A written module's source with its fallback pointed at `harness`.
pub fn relocate(module: &str, harness: &Path) -> String {
    let line = format!("_ORIGINAL = {:?}", harness.display().to_string());
    let lines = module.lines().map(|l| if l.starts_with("_ORIGINAL = ") { line.as_str() } else { l });
    lines.collect::<Vec<_>>().join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_module_falls_back_to_the_new_harness() {
        let m = "import os\n_ORIGINAL = \"/old/h.py\"\n_original_fn = None\n";
        let r = relocate(m, Path::new("/new/h.py"));
        assert_eq!(r, "import os\n_ORIGINAL = \"/new/h.py\"\n_original_fn = None\n");
    }

    #[test]
    fn the_build_is_the_executables_digest_not_the_version() {
        let b = build();
        assert_eq!(b, build());
        assert_eq!(b.len(), 16);
        assert!(b.chars().all(|c| c.is_ascii_hexdigit()), "{b}");
        assert_ne!(b, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn keys_differ_in_every_part() {
        let k = key(&["a", "b"]);
        assert_ne!(k, key(&["ab", ""]));
        assert_ne!(k, key(&["a", "c"]));
        assert_eq!(k, key(&["a", "b"]));
    }
}
