//! Recreating an image's tree in a host directory, safely.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use romfs_format::name::{self, NameRules};
use romfs_format::Node;

use super::{join, too_deep_error, ImageFile, MAX_PATH_LEN};
use crate::error::ReadError;

/// What to create, in order: a directory, or a file with its data range.
enum Step {
    Dir(PathBuf),
    File(PathBuf, std::ops::Range<usize>),
}

/// Extract every file and directory into `dest` (created if missing).
///
/// Every name must pass the format's own rules (`NameRules::FORMAT`: not
/// empty, no `/` or NUL, not `.` or `..`), which is what keeps every path
/// inside `dest`; an image with any other name is refused before anything
/// is written. As in MicroPython, only the first entry of a name in a
/// directory is extracted. Existing files are overwritten only with
/// `force`, and never through a symlink; a device, FIFO or socket is
/// never replaced. Returns (directories, files)
/// written.
pub fn extract(file: &ImageFile, dest: &Path, force: bool) -> Result<(usize, usize), ReadError> {
    let image = file.image()?;
    // Collect and check everything first.
    let mut steps = Vec::new();
    let mut stack = vec![(image.root(), PathBuf::new(), String::new(), 1)];
    while let Some((dir, rel, shown, depth)) = stack.pop() {
        let mut seen = HashSet::new();
        for e in dir.entries() {
            let e = e.map_err(|e| file.corrupt(e))?;
            let name = e.name();
            let shown_path = join(&shown, name);
            if let Err(problem) = name::check(name, NameRules::FORMAT) {
                return Err(ReadError::UnsafeName {
                    path: shown_path,
                    problem,
                });
            }
            if !seen.insert(name) {
                continue;
            }
            let path = rel.join(std::ffi::OsStr::from_bytes(name));
            if path.as_os_str().len() > MAX_PATH_LEN {
                return Err(too_deep_error(file, &e, depth));
            }
            match e {
                Node::Dir(d) => {
                    steps.push(Step::Dir(path.clone()));
                    stack.push((d, path, shown_path, depth + 1));
                }
                Node::File(f) => {
                    let start = f.data_offset();
                    steps.push(Step::File(path, start..start + f.len()));
                }
            }
        }
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |error: io::Error| ReadError::Write { path, error }
    };
    fs::create_dir_all(dest).map_err(write_err(dest))?;
    let (mut dirs, mut files) = (0, 0);
    for step in steps {
        match step {
            Step::Dir(rel) => {
                let path = dest.join(rel);
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(ReadError::NotADirectory { path }),
                    Err(_) => fs::create_dir(&path).map_err(write_err(&path))?,
                }
                dirs += 1;
            }
            Step::File(rel, range) => {
                let path = dest.join(rel);
                if let Ok(m) = fs::symlink_metadata(&path) {
                    if !force || m.is_dir() {
                        return Err(ReadError::AlreadyExists { path });
                    }
                    // A symlink is replaced, never followed out of `dest`;
                    // a device, FIFO or socket is left alone.
                    if !(m.is_file() || m.file_type().is_symlink()) {
                        return Err(ReadError::NotAFile { path });
                    }
                    fs::remove_file(&path).map_err(write_err(&path))?;
                }
                // create_new: never through a symlink planted meanwhile.
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(&image.bytes()[range]))
                    .map_err(write_err(&path))?;
                files += 1;
            }
        }
    }
    Ok((dirs, files))
}
