//! The image writer: describe a tree, plan its layout, then emit the bytes
//! in one forward pass (file contents are streamed from a [`Contents`]
//! source, never held by the writer).
//!
//! Two layouts:
//! - [`Layout::Mpremote`]: byte for byte what `mpremote romfs build` writes.
//! - [`Layout::Default`]: file data aligned, identical contents stored once
//!   (indirect records), a metadata record first and a CRC32 record last.

mod emit;
mod plan;
mod stable;
mod tree;

use alloc::string::String;
use core::fmt;

use crate::header::HEADER;
use crate::name::{self, NameProblem, NameRules};

#[cfg(feature = "std")]
pub use emit::IoOutput;
pub use emit::{
    checksum_record_head, restamp_checksum, signature_record_placeholder, Contents, EmitError,
    Output,
};
pub use plan::{Placement, Plan, Stats};
pub use stable::{
    build_stable, FreshReason, StableImage, StableOptions, StableReport, DATA_AREA_PREFIX,
    DEFAULT_ERASE_BLOCK, FIXED_WIDTH, HOLE_LIMIT_BLOCKS, METADATA_SLACK, TAG_DATA_AREA,
};
pub use tree::{FileSpec, MemoryTree, NodeRef, Tree};

/// Files shorter than this are never stored as shared data: an indirect
/// record would cost about as much as the bytes it saves.
pub const MIN_DEDUP_LEN: u64 = 16;

/// The largest alignment accepted (a power of two).
pub const MAX_ALIGN: u32 = 1 << 16;

/// The largest flash write size [`Options::header_write_size`] accepts.
pub const MAX_HEADER_WRITE_SIZE: u32 = 32;

/// Width of the image length varuint that makes the header safe for flash
/// write units of `write_size` bytes: `write_size - 3` bytes of `0x80`
/// (completing the first unit after `d2 cd 31`), then
/// [`HEADER_SAFE_DIGITS`](crate::HEADER_SAFE_DIGITS) digit bytes. 1 (no
/// padding needed) when the first unit holds only magic bytes.
pub const fn header_length_width(write_size: u32) -> usize {
    if write_size as usize <= HEADER.len() {
        1
    } else {
        write_size as usize - HEADER.len() + crate::header::HEADER_SAFE_DIGITS
    }
}

/// Which byte layout to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Aligned, deduplicated, with metadata and checksum.
    #[default]
    Default,
    /// Byte-identical to `mpremote romfs build`.
    Mpremote,
}

/// Metadata to record in a default-layout image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataSpec {
    /// The tool that wrote the image.
    pub tool: Option<String>,
    /// A free-form label.
    pub label: Option<String>,
    /// Generation number for OTA updates; higher is newer.
    pub generation: Option<u64>,
    /// Build time (seconds since the Unix epoch). Leave `None` for
    /// reproducible images.
    pub build_time: Option<u64>,
    /// The product (board) the image is for.
    pub product: Option<String>,
}

/// How to lay an image out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The layout.
    pub layout: Layout,
    /// Default alignment of file data from the image start (a power of two;
    /// default layout only).
    pub align: u32,
    /// Store identical contents once (default layout only).
    pub dedup: bool,
    /// End the image with a CRC32 record (default layout only).
    pub checksum: bool,
    /// Sort each directory's entries by name bytes. With `false` entries keep
    /// the order they were added in (callers that mimic mpremote's order).
    pub sort: bool,
    /// Metadata record (default layout only; `None` writes none).
    pub metadata: Option<MetadataSpec>,
    /// Make the header safe for a single-slot flash update with write units
    /// of this many bytes (1 to [`MAX_HEADER_WRITE_SIZE`]; default layout
    /// only): the image length is padded so that the first write unit is
    /// the constant `d2 cd 31 80 80 ...` and the length's digits start in
    /// the next unit (see [`header_is_write_safe`](crate::header_is_write_safe)
    /// and FORMAT.md, section 5). `None` (or a size up to 3) pads nothing.
    pub header_write_size: Option<u32>,
    /// End the image with a signature record for this product and
    /// generation (default layout with a checksum only; FORMAT.md, section
    /// 3.4). The writer leaves its digest, key id and signature zero: a
    /// signer fills them in place (the bytes before the record do not
    /// change), see [`Plan::signature_offset`].
    pub signature: Option<SignatureSpec>,
}

/// What a signature record vouches for, besides the image's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureSpec {
    /// The product (board) identifier: at most
    /// [`MAX_PRODUCT_LEN`](crate::signature::MAX_PRODUCT_LEN) bytes of UTF-8, no NUL.
    pub product: String,
    /// The anti-rollback generation: a device refuses images not newer than
    /// the one it runs.
    pub generation: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            layout: Layout::Default,
            align: 4,
            dedup: true,
            checksum: true,
            sort: true,
            metadata: Some(MetadataSpec {
                tool: Some(String::from(concat!("romfs ", env!("CARGO_PKG_VERSION")))),
                ..MetadataSpec::default()
            }),
            header_write_size: None,
            signature: None,
        }
    }
}

impl Options {
    /// Options for byte-identical `mpremote romfs build` output.
    pub fn mpremote() -> Self {
        Options {
            layout: Layout::Mpremote,
            align: 1,
            dedup: false,
            checksum: false,
            sort: true,
            metadata: None,
            header_write_size: None,
            signature: None,
        }
    }
}

/// Why an image cannot be planned or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// A name the format (or the chosen layout) cannot hold.
    BadName {
        /// Path of the offending entry.
        path: String,
        /// What is wrong with its name.
        problem: NameProblem,
    },
    /// Two entries of one directory have the same name.
    DuplicateName {
        /// Path of the second entry.
        path: String,
    },
    /// A node was added under a file.
    NotADirectory {
        /// Path of the file.
        path: String,
    },
    /// An alignment that is not a power of two up to [`MAX_ALIGN`].
    BadAlignment {
        /// The alignment asked for.
        align: u32,
    },
    /// The image would exceed the 4 GiB the format's 32-bit varuints allow.
    TooLarge {
        /// The size it would have.
        size: u64,
    },
    /// A [`Options::header_write_size`] that cannot be honoured: 0, above
    /// [`MAX_HEADER_WRITE_SIZE`], or with the mpremote layout.
    BadHeaderWriteSize {
        /// The write size asked for.
        size: u32,
    },
    /// A signature record for a layout without a checksum (the mpremote
    /// layout, or the default one with `checksum: false`).
    SignatureNeedsChecksum,
    /// A product identifier a manifest cannot hold.
    BadProduct {
        /// The identifier.
        product: String,
    },
    /// The stable layout was asked for with the mpremote layout.
    StableNeedsDefaultLayout,
    /// An erase-block size that is not a power of two from 256 to 16 MiB.
    BadEraseBlock {
        /// The size asked for.
        size: u32,
    },
    /// A stable build was given no contents (or contents of another
    /// length) for a file.
    ContentsMissing {
        /// Path of the file.
        path: String,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BadName { path, problem } => write!(f, "{path:?}: {problem}"),
            WriteError::DuplicateName { path } => {
                write!(f, "{path:?}: duplicate name in its directory")
            }
            WriteError::NotADirectory { path } => write!(f, "{path:?}: not a directory"),
            WriteError::BadAlignment { align } => {
                write!(
                    f,
                    "alignment {align} is not a power of two up to {MAX_ALIGN}"
                )
            }
            WriteError::TooLarge { size } => {
                write!(
                    f,
                    "image would be {size} bytes; the format allows at most 4 GiB"
                )
            }
            WriteError::SignatureNeedsChecksum => {
                f.write_str("a signed image needs the default layout with a checksum record")
            }
            WriteError::BadProduct { product } => write!(
                f,
                "product {product:?}: at most {} bytes of UTF-8 without NUL",
                crate::signature::MAX_PRODUCT_LEN
            ),
            WriteError::StableNeedsDefaultLayout => {
                f.write_str("a stable layout (--base) needs the default layout")
            }
            WriteError::BadEraseBlock { size } => write!(
                f,
                "erase block {size}: must be a power of two from 256 bytes to 16 MiB"
            ),
            WriteError::ContentsMissing { path } => {
                write!(f, "{path:?}: contents missing or of another length")
            }
            WriteError::BadHeaderWriteSize { size } => {
                write!(
                    f,
                    "flash write size {size}: a header-safe image needs a write size \
                     from 1 to {MAX_HEADER_WRITE_SIZE} and the default layout"
                )
            }
        }
    }
}

impl core::error::Error for WriteError {}

/// The name rules of `layout`: names MicroPython can list, and ASCII for
/// the mpremote layout (as mpremote writes them).
pub fn name_rules(layout: Layout) -> NameRules {
    match layout {
        Layout::Default => NameRules::MICROPYTHON,
        Layout::Mpremote => NameRules::MPREMOTE,
    }
}

fn check_name(tree: &Tree, node: usize, layout: Layout) -> Result<(), WriteError> {
    name::check(&tree.nodes[node].name, name_rules(layout)).map_err(|problem| WriteError::BadName {
        path: tree.path_lossy(NodeRef(node)),
        problem,
    })
}

fn check_align(align: u32) -> Result<u64, WriteError> {
    if align == 0 || !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(WriteError::BadAlignment { align });
    }
    Ok(u64::from(align))
}
