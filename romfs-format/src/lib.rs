#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod crc32;
pub mod delta;
mod error;
pub mod ext;
mod header;
mod image;
pub mod mpy;
pub mod name;
pub mod reader;
pub mod record;
pub mod signature;
pub mod source;
pub mod stream;
pub mod varuint;
mod verify;
#[cfg(feature = "alloc")]
pub mod write;

pub use error::{Error, ErrorKind};
pub use ext::{Checksum, Metadata};
pub use header::{
    decode_header, header_is_write_safe, Declared, Header, HEADER, HEADER_SAFE_DIGITS,
    MAX_HEADER_LEN,
};
pub use image::{Dir, Entries, File, Image, Node};
pub use reader::{NodeInfo, Reader, Trailer};
pub use record::{Cursor, Record, RecordHeader, Records};
pub use source::{ReadError, Source};
pub use verify::{Finding, FindingKind, Summary, MAX_DEPTH_NO_ALLOC};
