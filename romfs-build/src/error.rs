//! Errors of the build and inspection commands: each names the path it is about.

use std::path::PathBuf;

/// Why a build failed. Nothing has been written when one is returned (a
/// previous image at the output path is left untouched).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An option or argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A source path that cannot go into an image.
    #[error("{}: {reason}", path.display())]
    Input {
        /// The host path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name MicroPython (or the chosen layout) cannot use.
    #[error("{path}: {reason}")]
    BadName {
        /// Path inside the image.
        path: String,
        /// Why.
        reason: String,
    },
    /// `mpy-cross` is needed but missing, or could not be run.
    #[error("{0}")]
    MpyCross(String),
    /// `mpy-cross` rejected a source file.
    #[error("mpy-cross failed on {}:\n{message}", path.display())]
    Compile {
        /// The source file.
        path: PathBuf,
        /// What mpy-cross printed.
        message: String,
    },
    /// `.mpy` files the target cannot load.
    #[error("{}", .0.join("\n"))]
    Mpy(Vec<String>),
    /// The image does not fit in `--max-size`.
    #[error("image is {size} bytes, {over} bytes ({over_h}) over the --max-size of {max} bytes ({max_h})", over_h = human(*.size - *.max), max_h = human(*.max))]
    TooBig {
        /// Image size.
        size: u64,
        /// The limit.
        max: u64,
        /// By how much.
        over: u64,
    },
    /// A file changed size between scanning and writing.
    #[error("{}: file changed while the image was built (expected {expected} bytes, read {actual}); nothing was written", path.display())]
    Changed {
        /// The host path.
        path: PathBuf,
        /// Bytes at scan time.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// The image layout is impossible (duplicate names, too large...).
    #[error("{0}")]
    Layout(String),
    /// Writing the output failed.
    #[error("{}: {source}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why reading an image failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The image file could not be opened or mapped.
    #[error("{}: {source}", path.display())]
    Io {
        /// The image path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a (valid) image.
    #[error("{}: {source}", path.display())]
    Corrupt {
        /// The image path.
        path: PathBuf,
        /// What is wrong, and where.
        source: romfs_format::Error,
    },
    /// A path not in the image.
    #[error("{path}: no such file or directory in the image")]
    NotFound {
        /// The path looked up.
        path: String,
    },
    /// A path that is a directory where a file was wanted, or the reverse.
    #[error("{path}: {what}")]
    WrongType {
        /// The path looked up.
        path: String,
        /// What was expected.
        what: &'static str,
    },
    /// Extraction refused or failed.
    #[error("{0}")]
    Extract(String),
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
