#![doc = include_str!("../README.md")]
// Only `sys` may hold unsafe code (fork, `_exit`, mmap), and says why.
#![deny(unsafe_code)]

mod daemon;
#[doc(hidden)]
pub mod direct;
mod fs;
mod fusermount;
mod index;
mod keepalive;
mod mountinfo;
mod options;
mod prepare;
mod readahead;
mod serve;
mod sys;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use romfs_format::{ErrorKind, Finding};

pub use daemon::mount;
pub use fusermount::{unmount, unmount_lazy};
pub use index::IndexError;
pub use mountinfo::is_mounted;
pub use options::{
    parse_mode, parse_threads, MountOptions, OptionError, OptionList, DEFAULT_READAHEAD_MIB,
    MAX_READAHEAD_MIB, MAX_THREADS,
};
pub use prepare::{prepare, Prepared};

/// Everything that can go wrong mounting or unmounting.
///
/// Each message is complete (what, where, and why), so none returns its
/// cause again from [`source`](std::error::Error::source): printing the
/// chain says everything once.
#[derive(Debug)]
#[non_exhaustive]
pub enum MountError {
    /// The image file could not be opened, read or mapped.
    Image {
        /// The image path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The file is not a ROMFS image at all (wrong header, too short,
    /// truncated).
    NotRomfs {
        /// The image path.
        path: PathBuf,
        /// What is wrong, and at which offset.
        error: romfs_format::Error,
    },
    /// The image is a ROMFS image but corrupt; nothing was mounted.
    Corrupt {
        /// The image path.
        path: PathBuf,
        /// Every problem found, with its offset.
        findings: Vec<Finding>,
    },
    /// The image verified, but cannot be indexed for serving.
    Index {
        /// The image path.
        path: PathBuf,
        /// Why.
        error: IndexError,
    },
    /// The mountpoint is missing, not a directory, stale or unusable.
    Mountpoint {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        problem: MountpointProblem,
    },
    /// Something is already mounted there.
    AlreadyMounted(PathBuf),
    /// Nothing is mounted there (for unmount).
    NotMounted(PathBuf),
    /// `fusermount3` refused or failed to mount (its own message).
    Fuse(String),
    /// A system call or helper program needed for mounting failed.
    System {
        /// What was being done.
        action: &'static str,
        /// What the system said.
        error: io::Error,
    },
    /// The background process that serves the mount failed before the
    /// mount existed; its message as it reported it.
    Daemon(String),
    /// Unmounting failed (e.g. the filesystem is busy).
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// Why (what `fusermount3` said).
        reason: String,
    },
}

/// What is wrong with a mountpoint.
#[derive(Debug)]
#[non_exhaustive]
pub enum MountpointProblem {
    /// It does not exist.
    Missing,
    /// It exists but is not a directory.
    NotADirectory,
    /// A FUSE mount whose server died is still there.
    Disconnected,
    /// It cannot be inspected.
    Io(io::Error),
}

impl fmt::Display for MountpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountpointProblem::Missing => f.write_str("does not exist"),
            MountpointProblem::NotADirectory => f.write_str("is not a directory"),
            MountpointProblem::Disconnected => f.write_str(
                "is a disconnected FUSE mount (its server died); clean it up with fusermount3 -u",
            ),
            MountpointProblem::Io(e) => write!(f, "{e}"),
        }
    }
}

/// How many findings a [`MountError::Corrupt`] message lists.
const LISTED_FINDINGS: usize = 20;

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Image { path, error } => {
                write!(f, "cannot read image {}: {error}", path.display())
            }
            // The header error already says "not a ROMFS image".
            MountError::NotRomfs { path, error } if error.kind == ErrorKind::BadMagic => {
                write!(f, "{}: {error}", path.display())
            }
            MountError::NotRomfs { path, error } => {
                write!(f, "{}: not a ROMFS image: {error}", path.display())
            }
            MountError::Corrupt { path, findings } => {
                write!(f, "{}: corrupt image, not mounting it:", path.display())?;
                for finding in findings.iter().take(LISTED_FINDINGS) {
                    write!(f, "\n  {finding}")?;
                }
                if findings.len() > LISTED_FINDINGS {
                    write!(f, "\n  ... and {} more", findings.len() - LISTED_FINDINGS)?;
                }
                Ok(())
            }
            MountError::Index { path, error } => {
                write!(f, "{}: cannot index the image: {error}", path.display())
            }
            MountError::Mountpoint { path, problem } => {
                write!(f, "mountpoint {}: {problem}", path.display())
            }
            MountError::AlreadyMounted(path) => write!(
                f,
                "mountpoint {}: a FUSE filesystem is already mounted there; unmount it first",
                path.display()
            ),
            MountError::NotMounted(path) => {
                write!(f, "{}: nothing is mounted there", path.display())
            }
            MountError::Fuse(msg) => write!(f, "FUSE mount failed: {msg}"),
            MountError::System { action, error } => write!(f, "cannot {action}: {error}"),
            MountError::Daemon(msg) => f.write_str(msg),
            MountError::Unmount { path, reason } => {
                write!(f, "cannot unmount {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for MountError {}

/// A path made absolute (without resolving symlinks) when it can be.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
