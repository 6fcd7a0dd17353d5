//! Walking a source directory the way `mpremote romfs build` does: entries
//! sorted by name, symlinks followed; plus exclusions, the name rules of the
//! layout, and clear errors for everything an image cannot hold.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use romfs_format::name::{self, NameRules};

use crate::error::{BuildError, InputProblem};

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
            // The error's kind: its full message repeats the pattern.
            let glob =
                Glob::new(p.trim_start_matches('/')).map_err(|e| BuildError::InvalidGlob {
                    pattern: p.to_string(),
                    reason: e.kind().to_string(),
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| BuildError::InvalidGlob {
            pattern: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            reason: e.kind().to_string(),
        })?;
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

/// Walk `root` (following symlinks), leaving out entries matching
/// `exclude`. Every name left must follow `rules`
/// ([`NameRules::MICROPYTHON`] for the default layout,
/// [`NameRules::MPREMOTE`] for mpremote's).
pub fn scan(root: &Path, exclude: &Patterns, rules: NameRules) -> Result<SourceTree, BuildError> {
    let meta = fs::metadata(root).map_err(|e| classify(root, e))?;
    if !meta.is_dir() {
        return Err(input_error(root, InputProblem::NotADirectory));
    }
    let tree = SourceTree {
        nodes: vec![SourceNode {
            name: Vec::new(),
            rel: String::new(),
            kind: SourceKind::Dir(Vec::new()),
        }],
        excluded: 0,
    };
    let mut walker = Walker {
        tree,
        exclude,
        rules,
        ancestors: vec![(meta.dev(), meta.ino())],
    };
    walker.walk(0, root)?;
    Ok(walker.tree)
}

/// The state of one scan.
struct Walker<'a> {
    tree: SourceTree,
    exclude: &'a Patterns,
    rules: NameRules,
    /// (device, inode) of the directories being walked, to catch loops.
    ancestors: Vec<(u64, u64)>,
}

impl Walker<'_> {
    /// Add the entries of `dir` (node `dir_node`), recursively.
    fn walk(&mut self, dir_node: usize, dir: &Path) -> Result<(), BuildError> {
        let mut names: Vec<OsString> = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| classify(dir, e))? {
            names.push(entry.map_err(|e| classify(dir, e))?.file_name());
        }
        // Python's sorted() on str compares code points; for UTF-8 that is byte order.
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            if let Some(id) = self.add(dir_node, dir, name)? {
                children.push(id);
            }
        }
        self.tree.nodes[dir_node].kind = SourceKind::Dir(children);
        Ok(())
    }

    /// Add the entry `name` of `dir`; `None` when it is excluded.
    fn add(
        &mut self,
        dir_node: usize,
        dir: &Path,
        name: OsString,
    ) -> Result<Option<usize>, BuildError> {
        let path = dir.join(&name);
        let name = name.into_vec();
        let parent_rel = &self.tree.nodes[dir_node].rel;
        let rel = if parent_rel.is_empty() {
            lossy(&name)
        } else {
            format!("{parent_rel}/{}", lossy(&name))
        };
        if self.exclude.first_match(&rel).is_some() {
            self.tree.excluded += 1;
            return Ok(None);
        }
        if let Err(problem) = name::check(&name, self.rules) {
            return Err(BuildError::BadName { path, problem });
        }
        let meta = fs::metadata(&path).map_err(|e| classify(&path, e))?;
        let ft = meta.file_type();
        let id = self.tree.nodes.len();
        if ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if self.ancestors.contains(&key) {
                return Err(input_error(&path, InputProblem::LinksToAncestor));
            }
            self.tree.nodes.push(SourceNode {
                name,
                rel,
                kind: SourceKind::Dir(Vec::new()),
            });
            self.ancestors.push(key);
            self.walk(id, &path)?;
            self.ancestors.pop();
        } else if ft.is_file() {
            self.tree.nodes.push(SourceNode {
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
            return Err(input_error(&path, InputProblem::Special(what)));
        }
        Ok(Some(id))
    }
}

pub(crate) fn input_error(path: &Path, problem: InputProblem) -> BuildError {
    BuildError::Input {
        path: path.to_path_buf(),
        problem,
    }
}

/// Turn an I/O error on `path` into a message that says what is wrong.
pub(crate) fn classify(path: &Path, e: io::Error) -> BuildError {
    let is_link = fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    let problem = match e.raw_os_error() {
        Some(code) if code == ELOOP => InputProblem::SymlinkLoop,
        _ if is_link && e.kind() == io::ErrorKind::NotFound => InputProblem::Dangling {
            target: fs::read_link(path).unwrap_or_default(),
        },
        _ => InputProblem::Io(e),
    };
    input_error(path, problem)
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
