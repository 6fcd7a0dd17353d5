//! Walking a source directory the way `mpremote romfs build` does: entries
//! sorted by name, symlinks followed; plus exclusions and clear errors for
//! everything an image cannot hold.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::BuildError;

/// One entry of the scanned tree.
#[derive(Debug, Clone)]
pub struct SourceNode {
    /// The name in its directory, as bytes (empty for the root).
    pub name: Vec<u8>,
    /// Path relative to the source root, `/`-separated (empty for the root).
    pub rel: String,
    /// Directory or file.
    pub kind: SourceKind,
}

/// What a [`SourceNode`] is.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A directory and its entries (indices into [`SourceTree::nodes`]) in
    /// source-name order.
    Dir(Vec<usize>),
    /// A regular file (or a symlink to one).
    File {
        /// Where its bytes are read from.
        path: PathBuf,
        /// Its length when it was scanned.
        len: u64,
    },
}

/// A scanned source directory.
#[derive(Debug, Clone)]
pub struct SourceTree {
    /// The nodes; 0 is the root.
    pub nodes: Vec<SourceNode>,
    /// Entries left out by `--exclude`.
    pub excluded: usize,
}

/// A set of glob patterns matched against an entry's relative path and
/// against its name alone (so `*.pyc` and `__pycache__` match at any depth,
/// `lib/test_*.py` only there).
#[derive(Debug, Clone)]
pub struct Patterns {
    set: GlobSet,
    len: usize,
}

impl Patterns {
    /// Compile patterns; an invalid one is an error naming it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, BuildError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref();
            let glob = Glob::new(p.trim_start_matches('/'))
                .map_err(|e| BuildError::Usage(format!("invalid glob pattern {p:?}: {e}")))?;
            b.add(glob);
        }
        let set = b
            .build()
            .map_err(|e| BuildError::Usage(format!("invalid glob patterns: {e}")))?;
        Ok(Patterns {
            set,
            len: patterns.len(),
        })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Index of the first pattern matching `rel` (or its last component).
    pub fn first_match(&self, rel: &str) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let mut hits = self.set.matches(rel);
        if name != rel {
            hits.extend(self.set.matches(name));
        }
        hits.into_iter().min()
    }

    /// Indices of every pattern matching `rel` (or its last component).
    pub fn matches(&self, rel: &str) -> Vec<usize> {
        if self.len == 0 {
            return Vec::new();
        }
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let mut hits = self.set.matches(rel);
        if name != rel {
            hits.extend(self.set.matches(name));
        }
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}

/// Walk `root` (following symlinks), leaving out entries matching `exclude`
/// and any path in `skip` (canonical paths, e.g. the output file).
pub fn scan(root: &Path, exclude: &Patterns) -> Result<SourceTree, BuildError> {
    let meta = fs::metadata(root).map_err(|e| classify(root, e))?;
    if !meta.is_dir() {
        return Err(BuildError::Input {
            path: root.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let mut tree = SourceTree {
        nodes: vec![SourceNode {
            name: Vec::new(),
            rel: String::new(),
            kind: SourceKind::Dir(Vec::new()),
        }],
        excluded: 0,
    };
    let mut ancestors = vec![(meta.dev(), meta.ino())];
    walk(&mut tree, 0, root, exclude, &mut ancestors)?;
    Ok(tree)
}

fn walk(
    tree: &mut SourceTree,
    dir_node: usize,
    dir: &Path,
    exclude: &Patterns,
    ancestors: &mut Vec<(u64, u64)>,
) -> Result<(), BuildError> {
    let read = fs::read_dir(dir).map_err(|e| classify(dir, e))?;
    let mut names: Vec<OsString> = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| classify(dir, e))?;
        names.push(entry.file_name());
    }
    // Python's sorted() on str compares code points; for UTF-8 that is byte order.
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut children = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let name = name.into_vec();
        let parent_rel = &tree.nodes[dir_node].rel;
        let name_str = String::from_utf8_lossy(&name);
        let rel = if parent_rel.is_empty() {
            name_str.into_owned()
        } else {
            format!("{parent_rel}/{name_str}")
        };
        if exclude.first_match(&rel).is_some() {
            tree.excluded += 1;
            continue;
        }
        let meta = fs::metadata(&path).map_err(|e| classify(&path, e))?;
        let ft = meta.file_type();
        let id = tree.nodes.len();
        if ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if ancestors.contains(&key) {
                return Err(BuildError::Input {
                    path,
                    reason: "symlink loop (links back to a directory that contains it)".into(),
                });
            }
            tree.nodes.push(SourceNode {
                name,
                rel,
                kind: SourceKind::Dir(Vec::new()),
            });
            ancestors.push(key);
            walk(tree, id, &path, exclude, ancestors)?;
            ancestors.pop();
        } else if ft.is_file() {
            tree.nodes.push(SourceNode {
                name,
                rel,
                kind: SourceKind::File {
                    path,
                    len: meta.len(),
                },
            });
        } else {
            let what = if ft.is_fifo() {
                "a FIFO"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "a device"
            } else {
                "not a regular file or directory"
            };
            return Err(BuildError::Input {
                path,
                reason: format!("{what}: only files and directories can go in an image"),
            });
        }
        children.push(id);
    }
    tree.nodes[dir_node].kind = SourceKind::Dir(children);
    Ok(())
}

/// Turn an I/O error on `path` into a message that says what is wrong.
pub(crate) fn classify(path: &Path, e: io::Error) -> BuildError {
    let is_link = fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    let reason = match e.raw_os_error() {
        Some(code) if code == ELOOP => {
            "symlink loop (too many levels of symbolic links)".to_string()
        }
        _ if is_link && e.kind() == io::ErrorKind::NotFound => {
            let target = fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            format!("dangling symlink (target {target:?} does not exist)")
        }
        _ => e.to_string(),
    };
    BuildError::Input {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const ELOOP: i32 = 40;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ELOOP: i32 = 62;

/// `path` made absolute and canonical as far as it exists (for files that do
/// not exist yet, the parent is canonicalised and the name appended).
pub(crate) fn canonical_lenient(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(name))
}

/// Render bytes of a name for messages.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[allow(dead_code)]
pub(crate) fn os_name(bytes: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(bytes)
}
