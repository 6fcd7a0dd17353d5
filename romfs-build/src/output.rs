//! The one way romfs writes an output file (`build`, `sign`, `extract`,
//! `publish`): complete or not at all, and never at the expense of what
//! the path names.
//!
//! - A regular file, or a path that does not exist yet, is replaced
//!   atomically: the output is written to a temporary file in the same
//!   directory and renamed over it only once complete, keeping the
//!   permissions of the file it replaces.
//! - A symlink is followed: its target is written (atomically, as above),
//!   the link stays. A dangling link creates its target.
//! - A character or block device or a FIFO (`/dev/stdout`, a pipe, a flash
//!   partition) is written in place, as `cat > PATH` would, but only once
//!   the whole output was produced: a failure before then writes nothing.
//!   So is a regular file named through `/dev/stdout`, `/dev/fd/N` or
//!   `/proc/.../fd/N` (an open descriptor the shell redirected: renaming
//!   over it would write a file nobody reads).
//! - Anything else (a directory, a socket) is refused with an error naming
//!   the path; a non-regular file is never replaced.
//!
//! Write with [`write_file`], or [`Staged`] when the output must be read
//! back or changed before it is committed (a signed build).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// How many symlinks [`Destination::resolve`] follows before giving up
/// (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Where an output path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A regular file (or none yet) at this path, the last symlink
    /// followed: replaced atomically.
    Replace(PathBuf),
    /// A character or block device, FIFO or redirected descriptor: written
    /// in place through the path as given.
    InPlace(PathBuf),
}

impl Destination {
    /// Where `path` leads, or an error when it names something romfs never
    /// writes (a directory, a socket, a symlink loop).
    pub fn resolve(path: &Path) -> io::Result<Destination> {
        if names_descriptor(path) {
            return Ok(Destination::InPlace(path.to_path_buf()));
        }
        let mut current = path.to_path_buf();
        for _ in 0..MAX_LINKS {
            let meta = match fs::symlink_metadata(&current) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(Destination::Replace(current))
                }
                Err(e) => return Err(e),
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&current)?;
                if names_descriptor(&current) || names_descriptor(&target) {
                    return Ok(Destination::InPlace(path.to_path_buf()));
                }
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            } else if kind.is_file() {
                return Ok(Destination::Replace(current));
            } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
                return Ok(Destination::InPlace(path.to_path_buf()));
            } else if kind.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                ));
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a socket, not a file romfs can write",
                ));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many levels of symbolic links",
        ))
    }
}

/// `/dev/stdin|stdout|stderr`, `/dev/fd/N`, `/proc/*/fd/N`: names of open
/// descriptors, whatever they lead to.
fn names_descriptor(path: &Path) -> bool {
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy()),
            _ => None,
        })
        .collect();
    if !path.is_absolute() {
        return false;
    }
    match parts.as_slice() {
        [dev, name] if dev == "dev" => matches!(&**name, "stdin" | "stdout" | "stderr"),
        [dev, fd, _] => dev == "dev" && fd == "fd",
        [proc, _, fd, _] => proc == "proc" && fd == "fd",
        _ => false,
    }
}

/// An output being written: a readable and writable temporary file that
/// becomes the output on [`Staged::commit`], and is removed if dropped
/// before.
#[derive(Debug)]
pub struct Staged {
    file: tempfile::NamedTempFile,
    destination: Destination,
}

impl Staged {
    /// Start writing the output `path` (see the module docs for what each
    /// kind of path gets). Fails, before anything is written, when `path`
    /// cannot be an output.
    pub fn new(path: &Path) -> io::Result<Staged> {
        let destination = Destination::resolve(path)?;
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix(".romfs-").suffix(".tmp");
            b
        };
        let create = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        // make_in, not tempfile_in: its errors are the system's, without the
        // random temporary path (the output path says more to the user).
        let file = match &destination {
            Destination::Replace(target) => builder.make_in(parent_of(target), create)?,
            Destination::InPlace(_) => builder.make_in(std::env::temp_dir(), create)?,
        };
        Ok(Staged { file, destination })
    }

    /// The temporary file to write (and read back) the output in.
    pub fn file(&self) -> &File {
        self.file.as_file()
    }

    /// Where the output goes.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// Make the written file the output: rename it over the destination,
    /// or copy it into the device, FIFO or descriptor.
    pub fn commit(self) -> io::Result<()> {
        match self.destination {
            Destination::Replace(target) => {
                // A rewritten output keeps the permissions of the one it replaces.
                let mode = fs::metadata(&target)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o644);
                let file = self.file.as_file();
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                file.sync_all()?;
                self.file.persist(&target).map_err(|e| e.error)?;
                Ok(())
            }
            Destination::InPlace(path) => {
                let mut from = self.file.reopen()?;
                from.seek(SeekFrom::Start(0))?;
                // No O_CREAT: the destination exists; O_TRUNC only matters
                // for a redirected regular file.
                let mut to = OpenOptions::new().write(true).truncate(true).open(&path)?;
                io::copy(&mut from, &mut to)?;
                to.flush()?;
                match to.sync_all() {
                    // Pipes and terminals cannot be synced.
                    Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
                    other => other,
                }
            }
        }
    }
}

/// Write `bytes` as the output `path` (see the module docs).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = Staged::new(path)?;
    staged.file().write_all(bytes)?;
    staged.commit()
}

/// The directory a file is created in.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors() {
        for p in [
            "/dev/stdout",
            "/dev/fd/1",
            "/proc/self/fd/3",
            "/proc/42/fd/1",
        ] {
            assert!(names_descriptor(Path::new(p)), "{p}");
        }
        for p in [
            "/dev/full",
            "dev/stdout",
            "/dev/fd",
            "/proc/self/fd",
            "/tmp/x",
        ] {
            assert!(!names_descriptor(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn symlinks_lead_to_their_targets() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("sub/target.img");
        fs::create_dir(t.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("sub/target.img", t.path().join("link")).unwrap();
        std::os::unix::fs::symlink("link", t.path().join("link2")).unwrap();
        // Dangling: the target is created.
        write_file(&t.path().join("link2"), b"one").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        write_file(&t.path().join("link2"), b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert!(fs::symlink_metadata(t.path().join("link"))
            .unwrap()
            .file_type()
            .is_symlink());
        // A loop is an error, not a hang.
        std::os::unix::fs::symlink("loop", t.path().join("loop")).unwrap();
        assert!(write_file(&t.path().join("loop"), b"x").is_err());
        // A directory is refused.
        let e = write_file(t.path(), b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn nothing_is_written_unless_committed() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        fs::write(&out, b"old").unwrap();
        let staged = Staged::new(&out).unwrap();
        staged.file().write_all(b"new").unwrap();
        drop(staged);
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
