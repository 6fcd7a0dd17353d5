//! Reading images: open (memory-mapped), list, walk, cat, describe
//! ([`info()`]), verify ([`verify()`]) and extract ([`extract()`]). Works on
//! images from any builder; corrupt images give errors, not panics.

mod extract;
mod info;
mod layout;
mod verify;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use romfs_format::{Dir, Image, Node};

use crate::error::ReadError;

pub use extract::extract;
pub use info::{info, FileInfo, Info, LayoutKind, MpyFormat, MpyGroup};
pub use layout::is_mpremote_layout;
pub use verify::{verify, VerifyReport};

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
    #[allow(unsafe_code)] // maps the image (SAFETY below)
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let io_err = |error| ReadError::Io {
            path: path.to_path_buf(),
            error,
        };
        let file = fs::File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::ErrorKind::IsADirectory.into()));
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
        Image::parse(self.bytes()).map_err(|error| self.corrupt(error))
    }

    /// A corruption error naming this file.
    pub fn corrupt(&self, error: romfs_format::Error) -> ReadError {
        ReadError::Corrupt(error.in_file(&self.path))
    }
}

/// Directory or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A file.
    File,
}

/// One directory entry as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Name (invalid UTF-8 replaced).
    pub name: String,
    /// Path from the root.
    pub path: String,
    /// Directory or file.
    pub kind: EntryKind,
    /// File length, or a directory's payload size (as MicroPython's stat).
    pub size: u64,
    /// Offset of a file's data from the image start.
    pub offset: Option<u64>,
    /// File data shared with another file (indirect record).
    pub shared: bool,
}

impl Entry {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
}

fn entry_of(node: &Node<'_>, path: String) -> Entry {
    let name = String::from_utf8_lossy(node.name()).into_owned();
    match node {
        Node::Dir(d) => Entry {
            name,
            path,
            kind: EntryKind::Dir,
            size: d.size() as u64,
            offset: None,
            shared: false,
        },
        Node::File(f) => Entry {
            name,
            path,
            kind: EntryKind::File,
            size: f.len() as u64,
            offset: Some(f.data_offset() as u64),
            shared: f.is_indirect(),
        },
    }
}

/// `prefix/name`, for display (invalid UTF-8 replaced).
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

/// One node of a [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// The node.
    pub entry: Entry,
    /// 1 for entries of the root.
    pub depth: usize,
    /// The last entry of its directory.
    pub last: bool,
}

/// The longest path in an image (in bytes, `/` separators included) that
/// [`walk`], [`info()`] and [`extract()`] handle: Linux's `PATH_MAX`, longer
/// than any path a host can build an image from. Every entry's path is
/// kept in memory, so without a bound a small image nested deep enough
/// (a chain of directories) would need memory quadratic in its size.
pub const MAX_PATH_LEN: usize = 4096;

/// The error for a path longer than [`MAX_PATH_LEN`].
pub(crate) fn too_deep_error(file: &ImageFile, node: &Node<'_>, depth: usize) -> ReadError {
    ReadError::TooDeep {
        path: file.path().to_path_buf(),
        offset: node.id(),
        depth,
    }
}

/// Every node, depth-first in stored order.
pub fn walk(file: &ImageFile) -> Result<Vec<WalkEntry>, ReadError> {
    let image = file.image()?;
    let entries_of = |d| entries(file, d);
    let mut out = Vec::new();
    // An explicit stack: any nesting depth is safe. Each level keeps the
    // length of its path in bytes (names as stored, not as shown).
    let mut stack = vec![(entries_of(image.root())?, 0, String::new(), 1, 0)];
    while let Some((nodes, i, prefix, depth, prefix_len)) = stack.last_mut() {
        let Some(node) = nodes.get(*i).copied() else {
            stack.pop();
            continue;
        };
        *i += 1;
        let last = *i == nodes.len();
        let path_len = *prefix_len + usize::from(*prefix_len > 0) + node.name().len();
        if path_len > MAX_PATH_LEN {
            return Err(too_deep_error(file, &node, *depth));
        }
        let path = join(prefix, node.name());
        let depth = *depth;
        out.push(WalkEntry {
            entry: entry_of(&node, path.clone()),
            depth,
            last,
        });
        if let Node::Dir(d) = node {
            stack.push((entries_of(d)?, 0, path, depth + 1, path_len));
        }
    }
    Ok(out)
}

fn entries<'a>(file: &ImageFile, dir: Dir<'a>) -> Result<Vec<Node<'a>>, ReadError> {
    dir.entries()
        .map(|e| e.map_err(|e| file.corrupt(e)))
        .collect()
}

/// The contents of the file at `path`.
pub fn cat<'a>(file: &'a ImageFile, path: &str) -> Result<&'a [u8], ReadError> {
    let image = file.image()?;
    match lookup(file, &image, path)? {
        Node::File(f) => Ok(f.data()),
        Node::Dir(_) => Err(ReadError::IsADirectory {
            // The root, however it was written, is shown as `/`.
            path: if path.trim_matches('/').is_empty() {
                "/".to_string()
            } else {
                path.to_string()
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use romfs_format::{BadImageFile, ErrorKind};

    #[test]
    fn a_file_that_is_no_image_is_the_format_crate_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        fs::write(&path, "hello\n").unwrap();
        let file = ImageFile::open(&path).unwrap();
        let Err(ReadError::Corrupt(BadImageFile { path: named, error })) = file.image() else {
            panic!("not refused as no image");
        };
        assert_eq!((named, error.kind), (path.clone(), ErrorKind::BadMagic));
        let text = list(&file, "").unwrap_err().to_string();
        assert_eq!(text.matches("not a ROMFS image").count(), 1, "{text}");
        assert!(text.starts_with(&format!("{}: ", path.display())), "{text}");
    }
}
