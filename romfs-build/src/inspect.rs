//! Reading images: open (memory-mapped), list, describe, verify, extract.
//! Works on images from any builder; corrupt images give errors, not panics.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use romfs_format::mpy::MpyHeader;
use romfs_format::write::{Contents, FileSpec, Options, Output, Plan, Tree};
use romfs_format::{Checksum, Dir, Image, Node};
use serde::Serialize;

use crate::error::ReadError;

/// An image file's bytes: memory-mapped when possible.
pub struct ImageFile {
    path: PathBuf,
    bytes: Bytes,
}

enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl ImageFile {
    /// Open (map) an image file.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let io_err = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::other("is a directory")));
        }
        let bytes = if meta.is_file() && meta.len() > 0 {
            // SAFETY: the map is read-only; an image modified by another
            // process while mapped can give wrong data (never unsafety in
            // this process, since every read is bounds-checked).
            match unsafe { memmap2::Mmap::map(&file) } {
                Ok(m) => Bytes::Map(m),
                Err(_) => Bytes::Owned(fs::read(path).map_err(io_err)?),
            }
        } else {
            let mut v = Vec::new();
            io::Read::read_to_end(&mut &file, &mut v).map_err(io_err)?;
            Bytes::Owned(v)
        };
        Ok(ImageFile {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Parse the image.
    pub fn image(&self) -> Result<Image<'_>, ReadError> {
        Image::parse(self.bytes()).map_err(|source| self.corrupt(source))
    }

    /// A corruption error naming this file.
    pub fn corrupt(&self, source: romfs_format::Error) -> ReadError {
        ReadError::Corrupt {
            path: self.path.clone(),
            source,
        }
    }
}

/// One directory entry as `ls` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Name.
    pub name: String,
    /// Path from the root.
    pub path: String,
    /// `"dir"` or `"file"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// File length, or a directory's payload size (as MicroPython's stat).
    pub size: u64,
    /// Offset of a file's data from the image start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// File data shared with another file (indirect record).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

fn entry_of(node: &Node<'_>, path: String) -> Entry {
    let name = String::from_utf8_lossy(node.name()).into_owned();
    match node {
        Node::Dir(d) => Entry {
            name,
            path,
            kind: "dir",
            size: d.size() as u64,
            offset: None,
            shared: false,
        },
        Node::File(f) => Entry {
            name,
            path,
            kind: "file",
            size: f.len() as u64,
            offset: Some(f.data_offset() as u64),
            shared: f.is_indirect(),
        },
    }
}

fn join(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Look `path` up (MicroPython's rules); not found is an error.
pub fn lookup<'a>(file: &ImageFile, image: &Image<'a>, path: &str) -> Result<Node<'a>, ReadError> {
    match image.lookup(path.as_bytes()).map_err(|e| file.corrupt(e))? {
        Some(n) => Ok(n),
        None => Err(ReadError::NotFound {
            path: path.to_string(),
        }),
    }
}

/// The entries of the directory at `path` (or the file itself).
pub fn list(file: &ImageFile, path: &str) -> Result<Vec<Entry>, ReadError> {
    let image = file.image()?;
    let node = lookup(file, &image, path)?;
    let prefix = path.trim_matches('/').to_string();
    match node {
        Node::File(_) => Ok(vec![entry_of(&node, prefix)]),
        Node::Dir(d) => {
            let mut out = Vec::new();
            for e in d.entries() {
                let e = e.map_err(|e| file.corrupt(e))?;
                out.push(entry_of(&e, join(&prefix, e.name())));
            }
            Ok(out)
        }
    }
}

/// Every node, depth-first in stored order, with its depth (1 for root
/// entries) and whether it is the last entry of its directory.
pub fn walk(file: &ImageFile) -> Result<Vec<(Entry, usize, bool)>, ReadError> {
    let image = file.image()?;
    let mut out = Vec::new();
    walk_dir(file, image.root(), String::new(), 1, &mut out)?;
    Ok(out)
}

fn collect_entries<'a>(file: &ImageFile, d: Dir<'a>) -> Result<Vec<Node<'a>>, ReadError> {
    d.entries()
        .map(|e| e.map_err(|e| file.corrupt(e)))
        .collect()
}

fn walk_dir<'a>(
    file: &ImageFile,
    dir: Dir<'a>,
    prefix: String,
    depth: usize,
    out: &mut Vec<(Entry, usize, bool)>,
) -> Result<(), ReadError> {
    // An explicit stack: any nesting depth is safe.
    let mut stack: Vec<(Vec<Node<'a>>, usize, String, usize)> = Vec::new();
    let collect = |d: Dir<'a>| collect_entries(file, d);
    stack.push((collect(dir)?, 0, prefix, depth));
    while let Some((nodes, i, prefix, depth)) = stack.last_mut() {
        let Some(node) = nodes.get(*i).copied() else {
            stack.pop();
            continue;
        };
        *i += 1;
        let last = *i == nodes.len();
        let path = join(prefix, node.name());
        let depth = *depth;
        out.push((entry_of(&node, path.clone()), depth, last));
        if let Node::Dir(d) = node {
            let children = collect(d)?;
            stack.push((children, 0, path, depth + 1));
        }
    }
    Ok(())
}

/// Write the `tree` view of an image.
pub fn write_tree(file: &ImageFile, out: &mut impl Write) -> Result<(usize, usize), io::Error> {
    let nodes = walk(file).map_err(io::Error::other)?;
    writeln!(out, "/")?;
    let mut open_levels: Vec<bool> = Vec::new(); // per depth: more siblings follow
    let (mut dirs, mut files) = (0, 0);
    for (e, depth, last) in nodes {
        open_levels.truncate(depth - 1);
        let mut line = String::new();
        for &more in &open_levels {
            line.push_str(if more { "│   " } else { "    " });
        }
        line.push_str(if last { "└── " } else { "├── " });
        line.push_str(&e.name);
        if e.kind == "dir" {
            line.push('/');
            dirs += 1;
        } else {
            files += 1;
        }
        writeln!(out, "{line}")?;
        open_levels.push(!last);
    }
    writeln!(out, "\n{dirs} directories, {files} files")?;
    Ok((dirs, files))
}

/// The contents of the file at `path`.
pub fn cat<'a>(file: &'a ImageFile, path: &str) -> Result<&'a [u8], ReadError> {
    let image = file.image()?;
    match lookup(file, &image, path)? {
        Node::File(f) => Ok(f.data()),
        Node::Dir(_) => Err(ReadError::WrongType {
            path: path.to_string(),
            what: "is a directory",
        }),
    }
}

/// Alignment of a file's data: the largest power of two dividing its offset
/// (capped at 64 KiB).
pub fn alignment_of(offset: u64) -> u64 {
    if offset == 0 {
        return 1 << 16;
    }
    (1u64 << offset.trailing_zeros()).min(1 << 16)
}

/// Per-file facts for `info`.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Path.
    pub path: String,
    /// Length.
    pub size: u64,
    /// Offset of the data from the image start.
    pub offset: u64,
    /// Largest power of two dividing `offset` (up to 65536).
    pub align: u64,
    /// Data shared with another file.
    pub shared: bool,
}

/// `.mpy` files of one version and architecture.
#[derive(Debug, Clone, Serialize)]
pub struct MpyGroup {
    /// Format version (`None` when the header is not a `.mpy` header).
    pub version: Option<u8>,
    /// Native architecture (`"none"` for bytecode).
    pub arch: String,
    /// Small-int bits.
    pub small_int_bits: Option<u8>,
    /// Number of files.
    pub files: usize,
}

/// What `info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// Path of the image file.
    pub image: String,
    /// Which builder the layout matches: `romfs`, `mpremote`, or `other`.
    pub layout: String,
    /// Image length (header to end of payload).
    pub image_size: u64,
    /// Size of the file holding it (may be larger, e.g. a partition dump).
    pub file_size: u64,
    /// Payload length (what `statvfs` reports).
    pub payload_size: u64,
    /// Files.
    pub files: usize,
    /// Directories (root excluded).
    pub dirs: usize,
    /// Deepest nesting.
    pub max_depth: usize,
    /// Sum of file lengths.
    pub file_bytes: u64,
    /// File bytes stored once (shared data counted once).
    pub stored_bytes: u64,
    /// Files whose data is shared with another.
    pub shared_files: usize,
    /// `absent`, `valid` or `mismatch`.
    pub checksum: &'static str,
    /// Stored CRC32, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_value: Option<String>,
    /// Tool recorded in the metadata.
    pub tool: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Generation.
    pub generation: Option<u64>,
    /// Build time (Unix seconds).
    pub build_time: Option<u64>,
    /// Largest flash write unit (bytes, up to 32) for which the header is
    /// safe to program last in a single-slot update (see FORMAT.md §5);
    /// 3 for an image built without `--flash-write-size`.
    pub header_safe_write_size: usize,
    /// Files by alignment of their data (power of two → count).
    pub alignment_histogram: BTreeMap<u64, usize>,
    /// `.mpy` files by version and architecture.
    pub mpy: Vec<MpyGroup>,
    /// Every file.
    pub file_list: Vec<FileInfo>,
    /// Number of verify findings (0 for a clean image).
    pub findings: usize,
}

/// Describe an image.
pub fn info(file: &ImageFile) -> Result<Info, ReadError> {
    let image = file.image()?;
    let nodes = walk(file)?;
    let summary = image.verify(|_| {});
    let md = image.metadata().ok().flatten();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut files = 0;
    let mut dirs = 0;
    let mut file_bytes = 0;
    let mut stored = std::collections::BTreeSet::new();
    let mut stored_bytes = 0;
    let mut shared_files = 0;
    let mut hist = BTreeMap::new();
    let mut file_list = Vec::new();
    let mut mpy: BTreeMap<(Option<u8>, String, Option<u8>), usize> = BTreeMap::new();
    let mut max_depth = 0;
    for (e, depth, _) in &nodes {
        max_depth = max_depth.max(*depth);
        if e.kind == "dir" {
            dirs += 1;
            continue;
        }
        files += 1;
        file_bytes += e.size;
        let offset = e.offset.unwrap_or(0);
        if e.shared {
            shared_files += 1;
        }
        if stored.insert((offset, e.size)) {
            stored_bytes += e.size;
        }
        let align = alignment_of(offset);
        if e.size > 0 {
            *hist.entry(align).or_insert(0) += 1;
        }
        file_list.push(FileInfo {
            path: e.path.clone(),
            size: e.size,
            offset,
            align,
            shared: e.shared,
        });
        if e.name.ends_with(".mpy") {
            let data = &image.bytes()[offset as usize..(offset + e.size) as usize];
            let key = match MpyHeader::parse(data) {
                Ok(h) => (Some(h.version), h.arch.to_string(), Some(h.small_int_bits)),
                Err(_) => (None, "not a .mpy".to_string(), None),
            };
            *mpy.entry(key).or_insert(0) += 1;
        }
    }
    let (checksum, checksum_value) = match image.checksum() {
        Checksum::Absent => ("absent", None),
        Checksum::Valid(v) => ("valid", Some(format!("{v:#010x}"))),
        Checksum::Mismatch { stored, .. } => ("mismatch", Some(format!("{stored:#010x}"))),
    };
    let tool = text(md.and_then(|m| m.tool));
    let layout = if tool.as_deref().is_some_and(|t| t.starts_with("romfs")) {
        "romfs".to_string()
    } else if is_mpremote_layout(&image) {
        "mpremote".to_string()
    } else {
        "other".to_string()
    };
    Ok(Info {
        image: file.path().display().to_string(),
        layout,
        image_size: image.len() as u64,
        file_size: file.bytes().len() as u64,
        payload_size: image.payload().len() as u64,
        files,
        dirs,
        max_depth: max_depth.saturating_sub(1),
        file_bytes,
        stored_bytes,
        shared_files,
        checksum,
        checksum_value,
        tool,
        label: text(md.and_then(|m| m.label)),
        generation: md.and_then(|m| m.generation),
        build_time: md.and_then(|m| m.build_time),
        header_safe_write_size: (1..=romfs_format::write::MAX_HEADER_WRITE_SIZE as usize)
            .rev()
            .find(|&w| image.is_header_safe(w))
            .unwrap_or(0),
        alignment_histogram: hist,
        mpy: mpy
            .into_iter()
            .map(|((version, arch, small_int_bits), files)| MpyGroup {
                version,
                arch,
                small_int_bits,
                files,
            })
            .collect(),
        file_list,
        findings: summary.findings,
    })
}

/// True when `image` is exactly what `mpremote romfs build` writes for the
/// tree it holds: rebuilt in mpremote layout, it compares equal byte for byte.
pub fn is_mpremote_layout(image: &Image<'_>) -> bool {
    let mut tree = Tree::new();
    let mut data: Vec<&[u8]> = Vec::new();
    let mut stack = vec![(image.root(), tree.root())];
    while let Some((dir, wdir)) = stack.pop() {
        for e in dir.entries() {
            let Ok(e) = e else { return false };
            match e {
                Node::Dir(d) => match tree.add_dir(wdir, d.name()) {
                    Ok(w) => stack.push((d, w)),
                    Err(_) => return false,
                },
                Node::File(f) => {
                    let spec = FileSpec {
                        len: f.len() as u64,
                        source: data.len() as u64,
                        content: None,
                        align: None,
                    };
                    data.push(f.data());
                    if tree.add_file(wdir, f.name(), spec).is_err() {
                        return false;
                    }
                }
            }
        }
    }
    let mut opts = Options::mpremote();
    opts.sort = false; // keep stored order; mpremote's is sorted, checked by comparison
    let Ok(plan) = Plan::new(&tree, &opts) else {
        return false;
    };
    if plan.image_len() != image.len() as u64 {
        return false;
    }
    struct Compare<'a> {
        expect: &'a [u8],
        pos: usize,
    }
    impl Output for Compare<'_> {
        type Error = ();
        fn write_all(&mut self, bytes: &[u8]) -> Result<(), ()> {
            let end = self.pos + bytes.len();
            if end > self.expect.len() || &self.expect[self.pos..end] != bytes {
                return Err(());
            }
            self.pos = end;
            Ok(())
        }
    }
    struct Slices<'a>(Vec<&'a [u8]>);
    impl Contents<()> for Slices<'_> {
        fn write_contents(
            &mut self,
            source: u64,
            _len: u64,
            sink: &mut dyn FnMut(&[u8]) -> Result<(), ()>,
        ) -> Result<(), ()> {
            sink(self.0[source as usize])
        }
    }
    let sorted = sorted_everywhere(image);
    sorted
        && plan
            .emit(
                &mut Compare {
                    expect: image.bytes(),
                    pos: 0,
                },
                &mut Slices(data),
            )
            .is_ok()
}

fn sorted_everywhere(image: &Image<'_>) -> bool {
    let mut stack = vec![image.root()];
    while let Some(dir) = stack.pop() {
        let mut prev: Option<&[u8]> = None;
        for e in dir.entries() {
            let Ok(e) = e else { return false };
            if prev.is_some_and(|p| p >= e.name()) {
                return false;
            }
            prev = Some(e.name());
            if let Node::Dir(d) = e {
                stack.push(d);
            }
        }
    }
    true
}

/// One verify finding.
#[derive(Debug, Clone, Serialize)]
pub struct FindingReport {
    /// Byte offset from the image start.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// What `verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Path of the image file.
    pub image: String,
    /// True when nothing was found.
    pub clean: bool,
    /// Files seen.
    pub files: usize,
    /// Directories seen.
    pub dirs: usize,
    /// `absent`, `valid` or `mismatch`.
    pub checksum: &'static str,
    /// Every finding, with its offset.
    pub findings: Vec<FindingReport>,
}

/// Check an image completely. A file that is not an image at all is one
/// finding at offset 0.
pub fn verify(file: &ImageFile) -> VerifyReport {
    let mut findings = Vec::new();
    let image_name = file.path().display().to_string();
    let image = match Image::parse(file.bytes()) {
        Ok(i) => i,
        Err(e) => {
            findings.push(FindingReport {
                offset: e.offset,
                message: e.kind.to_string(),
            });
            return VerifyReport {
                image: image_name,
                clean: false,
                files: 0,
                dirs: 0,
                checksum: "absent",
                findings,
            };
        }
    };
    let summary = image.verify(|f| {
        findings.push(FindingReport {
            offset: f.offset,
            message: f.kind.to_string(),
        })
    });
    VerifyReport {
        image: image_name,
        clean: findings.is_empty(),
        files: summary.files,
        dirs: summary.dirs,
        checksum: match summary.checksum {
            Checksum::Absent => "absent",
            Checksum::Valid(_) => "valid",
            Checksum::Mismatch { .. } => "mismatch",
        },
        findings,
    }
}

/// Extract every file and directory into `dest` (created if missing). Names
/// that could escape `dest` (`/`, `..`, `.`, empty, NUL) are refused before
/// anything is written. Existing files are overwritten only with `force`.
/// Returns (directories, files) written.
pub fn extract(file: &ImageFile, dest: &Path, force: bool) -> Result<(usize, usize), ReadError> {
    let image = file.image()?;
    // Collect and check everything first.
    let mut plan: Vec<(PathBuf, Option<(usize, usize)>)> = Vec::new(); // path, file data range
    let mut stack = vec![(image.root(), PathBuf::new(), String::new())];
    while let Some((dir, rel, shown)) = stack.pop() {
        let mut seen = std::collections::HashSet::new();
        for e in dir.entries() {
            let e = e.map_err(|e| file.corrupt(e))?;
            let name = e.name();
            let shown_path = join(&shown, name);
            if name.is_empty()
                || name == b"."
                || name == b".."
                || name.contains(&b'/')
                || name.contains(&0)
            {
                return Err(ReadError::Extract(format!(
                    "refusing to extract {shown_path:?}: the name would escape or is not a valid file name; nothing was extracted"
                )));
            }
            if !seen.insert(name) {
                // MicroPython sees only the first entry of a name.
                continue;
            }
            let path = rel.join(std::ffi::OsStr::from_bytes(name));
            match e {
                Node::Dir(d) => {
                    plan.push((path.clone(), None));
                    stack.push((d, path, shown_path));
                }
                Node::File(f) => plan.push((path, Some((f.data_offset(), f.len())))),
            }
        }
    }
    let err = |p: &Path, e: io::Error| ReadError::Extract(format!("{}: {e}", p.display()));
    fs::create_dir_all(dest).map_err(|e| err(dest, e))?;
    let (mut dirs, mut files) = (0, 0);
    for (rel, data) in plan {
        let path = dest.join(&rel);
        match data {
            None => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(ReadError::Extract(format!(
                            "{}: exists and is not a directory",
                            path.display()
                        )))
                    }
                    Err(_) => fs::create_dir(&path).map_err(|e| err(&path, e))?,
                }
                dirs += 1;
            }
            Some((offset, len)) => {
                let bytes = &image.bytes()[offset..offset + len];
                if let Ok(m) = fs::symlink_metadata(&path) {
                    if !force || m.is_dir() {
                        return Err(ReadError::Extract(format!(
                            "{}: already exists (use --force to overwrite files)",
                            path.display()
                        )));
                    }
                    fs::remove_file(&path).map_err(|e| err(&path, e))?;
                }
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| err(&path, e))?;
                f.write_all(bytes).map_err(|e| err(&path, e))?;
                files += 1;
            }
        }
    }
    Ok((dirs, files))
}
