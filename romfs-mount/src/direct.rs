//! The filesystem's answers without a kernel: what each FUSE handler
//! replies, computed by the same code, for tests and fuzzing. Not a stable
//! API.

use std::path::Path;

use fuser::{AccessFlags, INodeNo, OpenFlags};
use romfs_format::Finding;

pub use fuser::{Errno, FileAttr, FileType};

use crate::fs::RomFs;
use crate::{MountError, MountOptions};

/// A mapped, verified and indexed image, answering requests directly.
#[derive(Debug)]
pub struct DirectFs {
    fs: RomFs,
}

/// One entry of a READDIRPLUS reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The offset the kernel asks for to continue after this entry.
    pub next: u64,
    /// The entry's attributes (inode number, type, size...).
    pub attr: FileAttr,
    /// Its name (`.` and `..` first).
    pub name: Vec<u8>,
}

impl DirectFs {
    /// Map, verify and index `image` exactly as a mount does; the
    /// findings that do not stop a mount come back too.
    pub fn open(image: &Path, opts: &MountOptions) -> Result<(DirectFs, Vec<Finding>), MountError> {
        let (fs, warnings) = crate::prepare::open_image(image, opts)?;
        Ok((DirectFs { fs }, warnings))
    }

    /// LOOKUP of `name` in directory `parent` (inode 0: a negative entry).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<FileAttr, Errno> {
        self.fs.lookup_attr(INodeNo(parent), name)
    }

    /// GETATTR.
    pub fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        self.fs.getattr_of(INodeNo(ino))
    }

    /// OPEN with `flags` (`O_RDONLY`, `O_WRONLY`...).
    pub fn open_file(&self, ino: u64, flags: i32) -> Result<(), Errno> {
        self.fs.check_open(INodeNo(ino), OpenFlags(flags))
    }

    /// OPENDIR with `flags`.
    pub fn opendir(&self, ino: u64, flags: i32) -> Result<(), Errno> {
        self.fs.check_opendir(INodeNo(ino), OpenFlags(flags))
    }

    /// READDIRPLUS from `offset`, to the end (the kernel gets a buffer's
    /// worth of these and continues from the last one's `next`); at most
    /// `limit` entries.
    pub fn readdir(&self, ino: u64, offset: u64, limit: usize) -> Result<Vec<DirEntry>, Errno> {
        Ok(self
            .fs
            .dir_entries(INodeNo(ino), offset)?
            .take(limit)
            .map(|(next, n, name)| DirEntry {
                next,
                attr: self.fs.attr(n),
                name: name.to_vec(),
            })
            .collect())
    }

    /// READ of at most `size` bytes at `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        self.fs
            .read_data(INodeNo(ino), offset, size)
            .map(|d| d.bytes)
    }

    /// ACCESS with a mask of `libc::R_OK`, `W_OK`, `X_OK`.
    pub fn access(&self, ino: u64, mask: i32) -> Result<(), Errno> {
        self.fs
            .check_access(INodeNo(ino), AccessFlags::from_bits_retain(mask))
    }

    /// STATFS: (512-byte blocks, files and directories).
    pub fn statfs(&self) -> (u64, u64) {
        self.fs.statfs_counts()
    }
}
