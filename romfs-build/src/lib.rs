//! Build and inspect MicroPython ROMFS images: the library behind the `romfs`
//! command-line tool.
//!
//! - [`build()`](build::build) packs a directory into an image, compiling
//!   `.py` to `.mpy` with `mpy-cross` in parallel, checking every `.mpy`
//!   header, and writing the output atomically while streaming file data.
//! - [`inspect`] opens images (memory-mapped) to list, describe, verify and
//!   extract them; it works on images from any builder.
//!
//! Every byte is encoded and decoded by [`romfs_format`].
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod build;
pub mod compile;
pub mod error;
pub mod inspect;
pub mod scan;

pub use build::{build, BuildOptions, BuildReport, MpyMode, NoProgress, Progress};
pub use error::{human, BuildError, ReadError};
pub use inspect::ImageFile;
pub use romfs_format::write::Layout;

/// Parse a size such as `1048576`, `64K`, `1M`, `1.5M`, `2MiB`, `4G`
/// (K, M, G are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: use a number with an optional K, M or G suffix"
            ))
        }
    };
    if num.is_empty() {
        return Err(format!("invalid size {s:?}: no number"));
    }
    if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size {s:?}"));
        }
        return Ok(bytes.round() as u64);
    }
    let v: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1.5M"), Ok(1572864));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human(100), "100 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
