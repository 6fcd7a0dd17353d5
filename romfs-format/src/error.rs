//! Errors that say what was wrong and at which byte offset of the image.

use core::fmt;

/// What went wrong while reading an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// Fewer than the 4 bytes of the smallest image.
    TooShort,
    /// The buffer does not start with the ROMFS header `d2 cd 31`.
    BadMagic,
    /// The image's declared length runs past the end of the buffer.
    ImagePastEnd {
        /// Bytes the header declares (header included).
        declared: u64,
        /// Bytes actually available.
        available: u64,
    },
    /// A varuint runs past the end of its record or of the image.
    VaruintTruncated,
    /// A varuint's value does not fit in 32 bits.
    VaruintOverflow,
    /// A varuint longer than any sane padding allows.
    VaruintOverlong,
    /// A record's declared length runs past the end of the record holding it.
    RecordPastParent,
    /// A directory or file name runs past the end of its record.
    NameLengthPastRecord,
    /// An indirect data record points outside the image payload.
    IndirectOutOfRange,
    /// A file record holds no data record.
    FileWithoutData,
    /// A node id that does not name a directory or file record.
    NoNodeAtOffset,
    /// One of our extension records is malformed.
    BadExtension,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::TooShort => f.write_str("image shorter than the 4-byte minimum"),
            ErrorKind::BadMagic => f.write_str("not a ROMFS image (expected header d2 cd 31)"),
            ErrorKind::ImagePastEnd {
                declared,
                available,
            } => write!(
                f,
                "image declares {declared} bytes but only {available} are available"
            ),
            ErrorKind::VaruintTruncated => f.write_str("varuint runs past the end of its record"),
            ErrorKind::VaruintOverflow => f.write_str("varuint value does not fit in 32 bits"),
            ErrorKind::VaruintOverlong => f.write_str("varuint is overlong (too much padding)"),
            ErrorKind::RecordPastParent => f.write_str("record runs past the end of its parent"),
            ErrorKind::NameLengthPastRecord => f.write_str("name runs past the end of its record"),
            ErrorKind::IndirectOutOfRange => {
                f.write_str("indirect data points outside the image payload")
            }
            ErrorKind::FileWithoutData => f.write_str("file record has no data record"),
            ErrorKind::NoNodeAtOffset => f.write_str("no directory or file record at this offset"),
            ErrorKind::BadExtension => f.write_str("malformed romfs extension record"),
        }
    }
}

/// An error reading an image: what, and where (byte offset from the image start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Error {
    /// What was wrong.
    pub kind: ErrorKind,
    /// Byte offset from the start of the image where it was found.
    pub offset: usize,
}

impl Error {
    pub(crate) const fn new(kind: ErrorKind, offset: usize) -> Self {
        Error { kind, offset }
    }

    /// This error, found in the file at `path`.
    #[cfg(feature = "std")]
    pub fn in_file(self, path: impl Into<std::path::PathBuf>) -> BadImageFile {
        BadImageFile {
            path: path.into(),
            error: self,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {:#x}", self.kind, self.offset)
    }
}

impl core::error::Error for Error {}

/// A file whose bytes are not a (valid) ROMFS image: which file, what is
/// wrong and at which offset. The one error the host crates give for it
/// (romfs-build's readers, `romfs deploy`, `romfs sign`), said once:
/// `PATH: not a ROMFS image (expected header d2 cd 31) at offset 0x0`.
#[cfg(feature = "std")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadImageFile {
    /// The file (or device) read.
    pub path: std::path::PathBuf,
    /// What is wrong, and where.
    pub error: Error,
}

#[cfg(feature = "std")]
impl fmt::Display for BadImageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

#[cfg(feature = "std")]
impl core::error::Error for BadImageFile {}
