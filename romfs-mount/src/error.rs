//! What can go wrong mounting or unmounting, and how it is said.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use nix::errno::Errno;
use romfs_format::{ErrorKind, Finding};

/// Everything that can go wrong mounting or unmounting.
///
/// Each message is complete (what, where, and why), so none returns its
/// cause again from [`source`](std::error::Error::source): printing the
/// chain says everything once. A mount that fails in its background
/// process is reported here exactly as in the foreground.
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
        error: crate::IndexError,
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
    /// `fusermount3` or the kernel refused the FUSE mount.
    Fuse {
        /// The mountpoint (canonical).
        mountpoint: PathBuf,
        /// Why.
        problem: FuseProblem,
    },
    /// A system call or helper program needed for mounting failed.
    System {
        /// What was being done.
        action: Action,
        /// What the system said.
        error: io::Error,
    },
    /// The background process that serves the mount exited before the
    /// mount existed without saying why (it was killed, or crashed).
    Daemon {
        /// The mountpoint (canonical).
        mountpoint: PathBuf,
    },
    /// Unmounting failed (e.g. the filesystem is busy).
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        problem: UnmountProblem,
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

/// Why a FUSE mount could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum FuseProblem {
    /// `fusermount3` is not installed.
    NotInstalled,
    /// `fusermount3` refused or failed; its own message (from its stderr).
    Refused(String),
    /// `fusermount3` exited without a message and without passing the
    /// `/dev/fuse` descriptor.
    Exited(ExitStatus),
    /// Receiving the descriptor from `fusermount3`, or waiting for it,
    /// failed.
    Io(io::Error),
    /// The kernel's FUSE handshake (INIT) failed.
    Handshake(io::Error),
}

/// What was being done when the system failed ([`MountError::System`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Creating the pipe the background process reports on.
    CreateReadinessPipe,
    /// Forking the process that detaches and starts the daemon.
    ForkMountProcess,
    /// Forking the daemon itself.
    ForkDaemon,
    /// Creating the socket pair `fusermount3` passes the device over.
    CreateSocketPair,
    /// Running `fusermount3`.
    RunFusermount,
    /// Copying that socket for the process that holds it.
    CopySocket,
    /// Serving FUSE requests.
    ServeRequests,
}

/// Why unmounting failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum UnmountProblem {
    /// `fusermount3 -u` refused or failed; its own message (from its
    /// stderr).
    Refused(String),
    /// `fusermount3 -u` failed without a message.
    Exited(ExitStatus),
    /// `fusermount3` could not be run.
    Run(io::Error),
    /// `fusermount3` is not installed, and unmounting directly (umount2)
    /// failed.
    Umount2(io::Error),
}

impl UnmountProblem {
    /// True when the filesystem is busy: files are open in it.
    pub fn is_busy(&self) -> bool {
        match self {
            UnmountProblem::Refused(message) => message.contains("busy"),
            UnmountProblem::Umount2(error) => error.raw_os_error() == Some(Errno::EBUSY as i32),
            _ => false,
        }
    }
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

impl fmt::Display for FuseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FuseProblem::NotInstalled => {
                f.write_str("fusermount3 not found: install the fuse3 package")
            }
            FuseProblem::Refused(message) => f.write_str(message),
            FuseProblem::Exited(status) => write!(f, "fusermount3 exited with {status}"),
            FuseProblem::Io(e) => write!(f, "no answer from fusermount3: {e}"),
            FuseProblem::Handshake(e) => write!(f, "FUSE handshake failed: {e}"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::CreateReadinessPipe => "create the readiness pipe",
            Action::ForkMountProcess => "fork the mount process",
            Action::ForkDaemon => "fork the mount daemon",
            Action::CreateSocketPair => "create a socket pair for fusermount3",
            Action::RunFusermount => "run fusermount3",
            Action::CopySocket => "copy the socket for fusermount3",
            Action::ServeRequests => "serve FUSE requests",
        })
    }
}

impl fmt::Display for UnmountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnmountProblem::Refused(message) => f.write_str(message),
            UnmountProblem::Exited(status) => write!(f, "fusermount3 -u exited with {status}"),
            UnmountProblem::Run(e) => write!(f, "cannot run fusermount3: {e}"),
            UnmountProblem::Umount2(e) => write!(f, "fusermount3 not found, and umount2: {e}"),
        }?;
        if self.is_busy() {
            f.write_str(" (files are open in it; close them, or unmount lazily)")?;
        }
        Ok(())
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
            MountError::Fuse {
                mountpoint,
                problem,
            } => write!(
                f,
                "FUSE mount on {} failed: {problem}",
                mountpoint.display()
            ),
            MountError::System { action, error } => write!(f, "cannot {action}: {error}"),
            MountError::Daemon { mountpoint } => write!(
                f,
                "the process mounting {} exited before mounting it, without saying why",
                mountpoint.display()
            ),
            MountError::Unmount { path, problem } => {
                write!(f, "cannot unmount {}: {problem}", path.display())
            }
        }
    }
}

impl std::error::Error for MountError {}

/// What can fail from the moment mounting starts, in whichever process
/// mounts: a [`MountError`] once the mountpoint is added.
#[derive(Debug)]
pub(crate) enum ServeError {
    /// See [`MountError::Fuse`].
    Fuse(FuseProblem),
    /// See [`MountError::System`].
    System(Action, io::Error),
}

impl ServeError {
    /// The error as the caller sees it.
    pub(crate) fn at(self, mountpoint: &Path) -> MountError {
        match self {
            ServeError::Fuse(problem) => MountError::Fuse {
                mountpoint: mountpoint.to_path_buf(),
                problem,
            },
            ServeError::System(action, error) => MountError::System { action, error },
        }
    }
}
