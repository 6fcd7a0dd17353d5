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

#[cfg(feature = "std")]
pub use error::BadImageFile;
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

// Every error type is a `core::error::Error` with or without std and
// alloc, and a `defmt::Format` with `defmt`: the builds without std and
// for a microcontroller (scripts/test.sh) fail otherwise.
const _: () = {
    const fn is_error<E: core::error::Error>() {}
    is_error::<Error>();
    is_error::<ReadError<core::convert::Infallible>>();
    is_error::<stream::StreamError>();
    is_error::<signature::ManifestError>();
    is_error::<delta::DeltaError>();
    is_error::<mpy::MpyError>();
    is_error::<name::NameProblem>();
    #[cfg(feature = "alloc")]
    is_error::<write::WriteError>();
};
#[cfg(feature = "defmt")]
const _: () = {
    const fn is_format<T: defmt::Format>() {}
    is_format::<Error>();
    is_format::<ReadError<Error>>();
    is_format::<stream::StreamError>();
    is_format::<signature::ManifestError>();
    is_format::<delta::DeltaError>();
    is_format::<mpy::MpyError>();
    is_format::<name::NameProblem>();
};
