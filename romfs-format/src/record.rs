//! Records: `varuint kind, varuint length, payload`, scanned within a bounded range.

use crate::error::{Error, ErrorKind};
use crate::varuint;

/// Record kinds defined by MicroPython's ROMFS.
pub mod kind {
    /// Never valid: a reader that meets it stops scanning (corruption).
    pub const UNUSED: u64 = 0;
    /// Padding or comments; readers skip it. Our extensions live here.
    pub const PADDING: u64 = 1;
    /// A file's bytes, stored in the payload.
    pub const DATA_VERBATIM: u64 = 2;
    /// A file's bytes stored elsewhere: `varuint size, varuint offset`.
    pub const DATA_INDIRECT: u64 = 3;
    /// A directory: `varuint name length, name, nested records`.
    pub const DIRECTORY: u64 = 4;
    /// A file: `varuint name length, name, nested records`.
    pub const FILE: u64 = 5;
    /// The whole image, encoded as the bytes `d2 cd 31`.
    pub const FILESYSTEM: u64 = 0x14a6b1;
}

/// One record as found in the image. Offsets count from the image start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record kind.
    pub kind: u64,
    /// Offset of the record's first byte (its kind varuint).
    pub offset: usize,
    /// Offset of the first payload byte.
    pub payload_offset: usize,
    /// The payload.
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload_offset + self.payload.len()
    }
}

/// Scans the records in `image[pos..end]`.
///
/// Yields an error (and then stops) for a record that cannot be decoded or
/// runs past `end`. A kind-0 record is yielded once with an empty payload and
/// ends the scan, as it does in MicroPython's reader.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    image: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Records<'a> {
    /// Records in `image[pos..end]`; `end` is clamped to the buffer.
    pub fn new(image: &'a [u8], pos: usize, end: usize) -> Self {
        let end = end.min(image.len());
        Records { image, pos, end }
    }

    /// Offset of the next record to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn stop(&mut self) {
        self.pos = self.end;
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let offset = self.pos;
        let result = (|| {
            let (kind, p) = varuint::decode(self.image, offset, self.end)?;
            if kind == kind::UNUSED {
                return Ok(Record {
                    kind,
                    offset,
                    payload_offset: p,
                    payload: &[],
                });
            }
            let (len, payload_offset) = varuint::decode(self.image, p, self.end)?;
            let len = len as usize;
            if len > self.end - payload_offset {
                return Err(Error::new(ErrorKind::RecordPastParent, offset));
            }
            let payload = &self.image[payload_offset..payload_offset + len];
            Ok(Record {
                kind,
                offset,
                payload_offset,
                payload,
            })
        })();
        match result {
            Ok(rec) if rec.kind != kind::UNUSED => self.pos = rec.end(),
            _ => self.stop(),
        }
        Some(result)
    }
}
