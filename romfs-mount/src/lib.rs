#![doc = include_str!("../README.md")]
// Only `sys` may hold unsafe code (fork, `_exit`, mmap), and says why.
#![deny(unsafe_code)]

mod daemon;
#[doc(hidden)]
pub mod direct;
mod error;
mod fs;
mod fusermount;
mod index;
mod keepalive;
mod mountinfo;
mod options;
mod prepare;
mod readahead;
mod report;
mod serve;
mod sys;

use std::path::{Path, PathBuf};

pub use daemon::mount;
pub use error::{Action, FuseProblem, MountError, MountpointProblem, UnmountProblem};
pub use fusermount::{unmount, unmount_lazy};
pub use index::IndexError;
pub use mountinfo::is_mounted;
pub use options::{
    parse_mode, parse_threads, MountOptions, OptionError, OptionList, DEFAULT_READAHEAD_MIB,
    MAX_READAHEAD_MIB, MAX_THREADS,
};
pub use prepare::{prepare, Prepared};

/// A path made absolute (without resolving symlinks) when it can be.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
