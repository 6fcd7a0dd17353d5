//! Records: `varuint kind, varuint length, payload`, scanned within a
//! bounded range of any [`Source`].

use crate::error::{Error, ErrorKind};
use crate::source::{ReadError, Source};
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

/// Where a record is: its kind and the extent of its payload. Offsets count
/// from the image start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// The record kind.
    pub kind: u64,
    /// Offset of the record's first byte (its kind varuint).
    pub offset: usize,
    /// Offset of the first payload byte.
    pub payload_offset: usize,
    /// Payload length.
    pub len: usize,
}

impl RecordHeader {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload_offset + self.len
    }
}

/// A position in a run of records `pos..end`, advanced over any source.
///
/// A record that cannot be decoded or runs past `end` gives one error and
/// ends the run. A kind-0 record is given once (with an empty payload) and
/// ends the run, as it does in MicroPython's reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pos: usize,
    end: usize,
}

impl Cursor {
    /// The records in `pos..end` (`end` is also bounded by the source).
    pub const fn new(pos: usize, end: usize) -> Self {
        Cursor { pos, end }
    }

    /// A run with no records.
    pub const fn empty() -> Self {
        Cursor { pos: 0, end: 0 }
    }

    /// Offset of the next record to be read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next record, decoded from `src`.
    #[inline]
    pub fn next<S: Source>(
        &mut self,
        src: &mut S,
    ) -> Option<Result<RecordHeader, ReadError<S::Error>>> {
        let end = self.end.min(src.len());
        if self.pos >= end {
            return None;
        }
        let result = read_record(src, self.pos, end);
        match &result {
            Ok(rec) if rec.kind != kind::UNUSED => self.pos = rec.end(),
            _ => self.pos = self.end,
        }
        Some(result)
    }
}

#[inline]
fn read_record<S: Source>(
    src: &mut S,
    offset: usize,
    end: usize,
) -> Result<RecordHeader, ReadError<S::Error>> {
    let (kind, p) = varuint::decode_at(src, offset, end)?;
    if kind == kind::UNUSED {
        return Ok(RecordHeader {
            kind,
            offset,
            payload_offset: p,
            len: 0,
        });
    }
    let (len, payload_offset) = varuint::decode_at(src, p, end)?;
    if len > (end - payload_offset) as u64 {
        return Err(Error::new(ErrorKind::RecordPastParent, offset).into());
    }
    Ok(RecordHeader {
        kind,
        offset,
        payload_offset,
        len: len as usize,
    })
}

/// One record of an image in memory, with its payload.
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

impl<'a> Record<'a> {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload_offset + self.payload.len()
    }

    /// The record's header (kind and extent).
    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            kind: self.kind,
            offset: self.offset,
            payload_offset: self.payload_offset,
            len: self.payload.len(),
        }
    }

    #[inline]
    pub(crate) fn from_header(bytes: &'a [u8], h: RecordHeader) -> Self {
        Record {
            kind: h.kind,
            offset: h.offset,
            payload_offset: h.payload_offset,
            // In range: the cursor checked it against the bytes.
            payload: bytes.get(h.payload_offset..h.end()).unwrap_or(&[]),
        }
    }
}

/// The records in `image[pos..end]` of an image in memory; see [`Cursor`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    image: &'a [u8],
    cursor: Cursor,
}

impl<'a> Records<'a> {
    /// Records in `image[pos..end]`; `end` is clamped to the buffer.
    pub fn new(image: &'a [u8], pos: usize, end: usize) -> Self {
        Records {
            image,
            cursor: Cursor::new(pos, end),
        }
    }

    /// Offset of the next record to be read.
    pub fn position(&self) -> usize {
        self.cursor.position()
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let mut src = self.image;
        Some(match self.cursor.next(&mut src)? {
            Ok(h) => Ok(Record::from_header(self.image, h)),
            Err(e) => Err(e.into()),
        })
    }
}
