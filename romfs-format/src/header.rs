//! The image header: `d2 cd 31` (record kind 0x14a6b1, "RM1") and the
//! payload length. Decoded here and nowhere else.

use crate::error::{Error, ErrorKind};
use crate::source::{ReadError, Source};
use crate::varuint;

/// The three bytes every image starts with: record kind 0x14a6b1 ("RM1").
pub const HEADER: [u8; 3] = [0xd2, 0xcd, 0x31];

/// Digits of the image length that a header-safe image (see
/// [`header_is_write_safe`]) puts after its first flash write unit. Any
/// garbage in the first unit then has a weight of at least
/// 128^10 = 2^70: a decoder that accumulates in a 32- or 64-bit word (as
/// MicroPython's does) shifts it out entirely and reads the true length, and
/// a checking decoder (ours) refuses the value as an overflow.
pub const HEADER_SAFE_DIGITS: usize = 10;

/// The longest header: the magic and a length varuint of the longest
/// encoding [`varuint::decode`] accepts.
pub const MAX_HEADER_LEN: usize = HEADER.len() + varuint::MAX_ENCODED_LEN;

/// What an image's first bytes declare, before anything is checked against
/// the bytes that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declared {
    /// Offset of the payload's first byte (the header's length).
    pub payload_offset: usize,
    /// Payload length the header declares.
    pub payload_len: u64,
}

impl Declared {
    /// The whole image's length: header and payload.
    pub fn image_len(&self) -> u64 {
        self.payload_offset as u64 + self.payload_len
    }
}

/// Decode the header at the start of `src`: magic, then the length. A
/// length cut short by the end of `src` is `VaruintTruncated`; fewer than 4
/// bytes is `TooShort`. Nothing is checked against the bytes after it.
pub fn decode_header<S: Source>(src: &mut S) -> Result<Declared, ReadError<S::Error>> {
    if src.len() < 4 {
        return Err(Error::new(ErrorKind::TooShort, 0).into());
    }
    let mut magic = [0u8; 3];
    src.read_exact_at(0, &mut magic)?;
    if magic != HEADER {
        return Err(Error::new(ErrorKind::BadMagic, 0).into());
    }
    let end = src.len();
    let (payload_len, payload_offset) = varuint::decode_at(src, HEADER.len(), end)?;
    Ok(Declared {
        payload_offset,
        payload_len,
    })
}

/// An image's extent within its source, checked: the payload runs from
/// `payload_offset` to `end`, and `end` is within the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Offset of the payload's first byte; indirect data offsets count from here.
    pub payload_offset: usize,
    /// Offset just past the image (its length).
    pub end: usize,
}

impl Header {
    /// Read and check the header at the start of `src`, as MicroPython's
    /// `vfs.VfsRom` does: the magic, and a declared length that fits the
    /// source. Bytes after the image are ignored.
    pub fn parse<S: Source>(src: &mut S) -> Result<Header, ReadError<S::Error>> {
        let available = src.len() as u64;
        let past_end = |declared| {
            ReadError::Format(Error::new(
                ErrorKind::ImagePastEnd {
                    declared,
                    available,
                },
                HEADER.len(),
            ))
        };
        let declared = match decode_header(src) {
            Ok(d) => d,
            Err(ReadError::Format(e)) if e.kind == ErrorKind::VaruintTruncated => {
                return Err(past_end(available + 1))
            }
            Err(e) => return Err(e),
        };
        if declared.image_len() > available {
            return Err(past_end(declared.image_len()));
        }
        Ok(Header {
            payload_offset: declared.payload_offset,
            // Fits: it is at most `available`, a usize.
            end: declared.image_len() as usize,
        })
    }

    /// The payload's length.
    pub fn payload_len(&self) -> usize {
        self.end - self.payload_offset
    }
}

/// True when an image starting with `head` (its first bytes, at least up to
/// the end of the image length varuint) is *header-safe* for a flash whose
/// write unit is `write_size` bytes: however a program of its first write
/// unit over erased flash (0xFF, bits only cleared) is interrupted, a reader
/// that checks only what MicroPython checks sees no image (the magic is
/// incomplete) or exactly this image.
///
/// That holds for every image when `write_size <= 3` (the first unit holds
/// only magic bytes). For larger units the first unit must be constant,
/// `d2 cd 31` then `write_size - 3` bytes of `0x80` (length padding), and the
/// length varuint must continue for at least [`HEADER_SAFE_DIGITS`] bytes
/// after it. The writer produces this with
/// [`Options::header_write_size`](crate::write::Options::header_write_size).
pub fn header_is_write_safe(head: &[u8], write_size: usize) -> bool {
    if head.get(..HEADER.len()) != Some(&HEADER[..]) {
        return false;
    }
    if write_size <= HEADER.len() {
        return true;
    }
    match head.get(HEADER.len()..write_size) {
        Some(pad) if pad.iter().all(|&b| b == 0x80) => {}
        _ => return false,
    }
    let mut src = head;
    match decode_header(&mut src) {
        Ok(declared) => declared.payload_offset >= write_size + HEADER_SAFE_DIGITS,
        Err(_) => false,
    }
}
