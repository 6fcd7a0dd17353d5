//! Everything checked before a mount: the mountpoint, and the image mapped,
//! verified and indexed.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::unistd::{getgid, getuid};
use romfs_format::name::NameProblem;
use romfs_format::{ErrorKind, Finding, FindingKind, Image};

use crate::fs::{Attrs, RomFs};
use crate::index::{Index, IndexError};
use crate::mountinfo::mount_type;
use crate::{MountError, MountOptions, MountpointProblem};

fn mountpoint_error(path: &Path, problem: MountpointProblem) -> MountError {
    MountError::Mountpoint {
        path: path.to_path_buf(),
        problem,
    }
}

/// Check the mountpoint: it must exist, be a directory, and not already be
/// a FUSE mount. Returns its canonical path.
fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf, MountError> {
    let meta = std::fs::metadata(mountpoint).map_err(|e| {
        let problem = match e.raw_os_error() {
            Some(errno) if errno == Errno::ENOENT as i32 => MountpointProblem::Missing,
            Some(errno) if errno == Errno::ENOTCONN as i32 => MountpointProblem::Disconnected,
            _ => MountpointProblem::Io(e),
        };
        mountpoint_error(mountpoint, problem)
    })?;
    if !meta.is_dir() {
        return Err(mountpoint_error(
            mountpoint,
            MountpointProblem::NotADirectory,
        ));
    }
    let canonical = mountpoint
        .canonicalize()
        .map_err(|e| mountpoint_error(mountpoint, MountpointProblem::Io(e)))?;
    if mount_type(&canonical).is_some_and(|fstype| fstype.starts_with("fuse")) {
        return Err(MountError::AlreadyMounted(mountpoint.to_path_buf()));
    }
    Ok(canonical)
}

/// A verified, indexed image ready to be mounted with [`Prepared::mount`].
pub struct Prepared {
    pub(crate) fs: RomFs,
    /// Absolute: the daemon changes directory to / before it mounts.
    pub(crate) image_path: PathBuf,
    /// Canonical.
    pub(crate) mountpoint: PathBuf,
    pub(crate) opts: MountOptions,
    warnings: Vec<Finding>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("image", &self.image_path)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

impl Prepared {
    /// Number of files and directories (root included).
    pub fn nodes(&self) -> usize {
        self.fs.index.len()
    }

    /// Findings that do not stop the mount: duplicate names (the first
    /// entry of a name is served, as MicroPython does), names that are not
    /// UTF-8 (MicroPython cannot list them, Linux can), an odd image size,
    /// and a checksum mismatch under `ignore_checksum`.
    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }
}

/// Whether a finding still lets the image be served.
fn is_harmless(finding: &Finding, opts: &MountOptions) -> bool {
    match finding.kind {
        FindingKind::DuplicateName
        | FindingKind::OddImageSize
        | FindingKind::Name(NameProblem::NotUtf8) => true,
        FindingKind::ChecksumMismatch { .. } => opts.ignore_checksum,
        _ => false,
    }
}

/// Map, verify and index `image`, and check `mountpoint`, without mounting
/// anything. [`mount`](crate::mount) is this followed by
/// [`Prepared::mount`]; call them separately to see the
/// [warnings](Prepared::warnings) first.
pub fn prepare(
    image: &Path,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<Prepared, MountError> {
    let mountpoint = check_mountpoint(mountpoint)?;
    let (fs, warnings) = open_image(image, opts)?;
    Ok(Prepared {
        fs,
        image_path: crate::absolute(image),
        mountpoint,
        opts: opts.clone(),
        warnings,
    })
}

/// Map, verify and index `image`: the filesystem a mount serves, and the
/// findings that do not stop it.
pub(crate) fn open_image(
    image: &Path,
    opts: &MountOptions,
) -> Result<(RomFs, Vec<Finding>), MountError> {
    let image_err = |error: io::Error| MountError::Image {
        path: image.to_path_buf(),
        error,
    };
    let not_romfs = |error: romfs_format::Error| MountError::NotRomfs {
        path: image.to_path_buf(),
        error,
    };
    let file = File::open(image).map_err(image_err)?;
    let meta = file.metadata().map_err(image_err)?;
    if meta.is_dir() {
        return Err(image_err(io::ErrorKind::IsADirectory.into()));
    }
    // Too short to map (an empty file cannot be) or to be an image.
    if meta.len() < 4 {
        return Err(not_romfs(romfs_format::Error {
            kind: ErrorKind::TooShort,
            offset: 0,
        }));
    }
    let map = crate::sys::map_image(&file).map_err(image_err)?;
    let parsed = Image::parse(&map).map_err(not_romfs)?;
    let mut fatal = Vec::new();
    let mut warnings = Vec::new();
    parsed.verify(|finding| {
        if is_harmless(&finding, opts) {
            warnings.push(finding);
        } else {
            fatal.push(finding);
        }
    });
    if !fatal.is_empty() {
        return Err(MountError::Corrupt {
            path: image.to_path_buf(),
            findings: fatal,
        });
    }
    let index = Index::build(&parsed).map_err(|e| match e {
        IndexError::Corrupt(e) => MountError::Corrupt {
            path: image.to_path_buf(),
            findings: vec![e.into()],
        },
        error => MountError::Index {
            path: image.to_path_buf(),
            error,
        },
    })?;
    let build_time = parsed.metadata().ok().flatten().and_then(|m| m.build_time);
    let image_len = parsed.len() as u64;
    let time = match build_time {
        Some(secs) => SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .unwrap_or(SystemTime::UNIX_EPOCH),
        None => meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    };
    // Verification touched every page; let them go from our page tables
    // (they stay in the page cache). Reads fault in what they need.
    crate::sys::release_pages(&map);
    let attrs = Attrs {
        uid: opts.uid.unwrap_or_else(|| getuid().as_raw()),
        gid: opts.gid.unwrap_or_else(|| getgid().as_raw()),
        file_mode: opts.file_mode,
        dir_mode: opts.dir_mode,
        time,
    };
    Ok((
        RomFs::new(map, file, index, attrs, image_len, opts.readahead_mib),
        warnings,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_errors() {
        let e = check_mountpoint(Path::new("/definitely/not/here")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = check_mountpoint(Path::new("/proc/self/status")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(check_mountpoint(Path::new("/")).is_ok());
    }
}
