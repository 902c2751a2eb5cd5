//! Which Python runs the worker.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the interpreter came from, for the report.
#[derive(Debug, Clone)]
pub struct PythonChoice {
    pub path: PathBuf,
    pub source: &'static str,
}

/// The MLX the managed environment installs.
const MLX_VERSION: &str = "0.32.4";
/// Bumped when the managed environment's contents change.
const VENV_REVISION: u32 = 2;

fn imports_mlx(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import mlx.core"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `--python`, else `SUPEROPT_PYTHON`, else the Python of the environment superopt was
/// installed into (`pip install .`), else `python3` if it imports mlx, else a managed
/// virtualenv in the user cache dir, created on first use.
pub fn find_python(flag: Option<&Path>, progress: &dyn Fn(&str)) -> Result<PythonChoice> {
    if let Some(p) = flag {
        return checked(p.to_path_buf(), "--python");
    }
    if let Some(p) = std::env::var_os("SUPEROPT_PYTHON") {
        return checked(PathBuf::from(p), "SUPEROPT_PYTHON");
    }
    if let Some(env) = std::env::current_exe().ok().and_then(|exe| installed_env(&exe)) {
        return checked(env, "the environment superopt is installed in");
    }
    let system = PathBuf::from("python3");
    if imports_mlx(&system) {
        return Ok(PythonChoice { path: system, source: "python3 on PATH" });
    }
    managed(progress)
}

/// The Python of the virtualenv whose scripts folder holds `exe` (`VENV/bin/superopt`, as
/// pip installs it), if it is one: `VENV/pyvenv.cfg` names a virtualenv.
pub fn installed_env(exe: &Path) -> Option<PathBuf> {
    let scripts = exe.parent()?;
    let python = scripts.join(if cfg!(windows) { "python.exe" } else { "python" });
    (scripts.parent()?.join("pyvenv.cfg").is_file() && python.exists()).then_some(python)
}

fn checked(path: PathBuf, source: &'static str) -> Result<PythonChoice> {
    if !imports_mlx(&path) {
        let p = path.display();
        let how = "(Linux; mlx[cuda13] for CUDA, mlx on macOS), or pass --python";
        let fix = format!("install MLX there with `{p} -m pip install \"mlx[cpu]\"` {how}");
        bail!("{p} (from {source}) cannot import mlx; {fix}");
    }
    Ok(PythonChoice { path, source })
}

fn managed(progress: &dyn Fn(&str)) -> Result<PythonChoice> {
    let dir = dirs::cache_dir().context("no user cache directory; set SUPEROPT_PYTHON to a Python that imports mlx")?;
    let venv = dir.join("superopt").join(format!("venv-mlx-{MLX_VERSION}-r{VENV_REVISION}"));
    let python = venv.join("bin").join("python");
    if imports_mlx(&python) {
        return Ok(PythonChoice { path: python, source: "managed virtualenv" });
    }
    let package =
        if cfg!(target_os = "macos") { format!("mlx=={MLX_VERSION}") } else { format!("mlx[cpu]=={MLX_VERSION}") };
    progress(&format!("setting up Python for superopt: a virtualenv at {} with {package} (once)", venv.display()));
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3 -m venv")?;
    // numpy: phew-style harnesses build their inputs with it.
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", &package, "numpy"]), "pip install mlx")?;
    if !imports_mlx(&python) {
        bail!(
            "the managed virtualenv at {} cannot import mlx after installing it; remove that folder and try again",
            venv.display()
        );
    }
    Ok(PythonChoice { path: python, source: "managed virtualenv" })
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("could not start {what}; is python3 installed?"))?;
    if !out.status.success() {
        bail!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_executable_in_a_virtualenv_uses_its_python() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python"), "").unwrap();
        let exe = bin.join("superopt");
        // Near miss: a folder with a python beside superopt that is no virtualenv (/usr/bin).
        assert_eq!(installed_env(&exe), None);
        std::fs::write(dir.path().join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        assert_eq!(installed_env(&exe), Some(bin.join("python")));
    }
}
