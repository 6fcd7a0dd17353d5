//! Mount a MicroPython ROMFS image as a read-only directory tree with FUSE.
//!
//! ```no_run
//! use std::path::Path;
//! use romfs_mount::{mount, unmount, MountOptions};
//!
//! let mut opts = MountOptions::default();
//! opts.parse_fuse_options("allow_other,uid=1000").unwrap();
//! // Returns once the filesystem is mounted (a daemon serves it).
//! mount(Path::new("app.img"), Path::new("/mnt/app"), &opts).unwrap();
//! unmount(Path::new("/mnt/app")).unwrap();
//! ```
//!
//! The image is memory-mapped, verified (structure and checksum) and indexed
//! before anything is mounted; a bad image or mountpoint is an error and
//! nothing is mounted. The mount is strictly read-only, inode numbers are the
//! record offsets (+1; the root is 1), and replies come straight from the
//! mapping. `fusermount3` (Debian package `fuse3`) does the mounting, so
//! non-root users can mount; with `auto_unmount` (the default) it also
//! removes the mount if the serving process dies.

#![warn(missing_docs)]

mod daemon;
mod fs;
mod index;
mod options;
mod readahead;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use daemon::{is_mounted, mount, prepare, unmount, unmount_lazy, Prepared};
pub use options::{parse_mode, MountOptions};

/// Everything that can go wrong mounting or unmounting.
#[derive(Debug)]
#[non_exhaustive]
pub enum MountError {
    /// The image file could not be opened, read or mapped.
    Image {
        /// The image path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The file is not a ROMFS image at all (wrong header, too short...).
    NotRomfs {
        /// The image path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The image is a ROMFS image but corrupt; nothing was mounted.
    Corrupt {
        /// The image path.
        path: PathBuf,
        /// Every problem found, with its offset.
        findings: Vec<String>,
    },
    /// The mountpoint is missing, not a directory, stale or unusable.
    Mountpoint {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Something is already mounted there.
    AlreadyMounted(PathBuf),
    /// Nothing is mounted there (for unmount).
    NotMounted(PathBuf),
    /// A mount option was not understood or not allowed.
    Options(String),
    /// The FUSE mount itself failed (`fusermount3`, `/dev/fuse`, the kernel).
    Fuse(String),
    /// Unmounting failed (e.g. the filesystem is busy).
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Image { path, source } => write!(f, "cannot read image {}: {source}", path.display()),
            MountError::NotRomfs { path, reason } => {
                write!(f, "{} is not a ROMFS image: {reason}", path.display())
            }
            MountError::Corrupt { path, findings } => {
                write!(f, "image {} is corrupt, not mounting it:", path.display())?;
                for finding in findings.iter().take(20) {
                    write!(f, "\n  {finding}")?;
                }
                if findings.len() > 20 {
                    write!(f, "\n  ... and {} more", findings.len() - 20)?;
                }
                Ok(())
            }
            MountError::Mountpoint { path, reason } => write!(f, "mountpoint {}: {reason}", path.display()),
            MountError::AlreadyMounted(path) => write!(
                f,
                "mountpoint {}: a FUSE filesystem is already mounted there (unmount it first: romfs umount {0})",
                path.display()
            ),
            MountError::NotMounted(path) => write!(f, "{}: nothing is mounted there", path.display()),
            MountError::Options(msg) => write!(f, "bad mount option: {msg}"),
            MountError::Fuse(msg) => write!(f, "FUSE mount failed: {msg}"),
            MountError::Unmount { path, reason } => write!(f, "cannot unmount {}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for MountError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MountError::Image { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where a file is, for error messages.
pub(crate) fn display(p: &Path) -> String {
    p.display().to_string()
}
