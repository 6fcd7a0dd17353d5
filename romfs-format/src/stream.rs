//! Following an image as it streams past (an over-the-air update): its
//! header and its top-level records, without holding the image.
//!
//! [`Scanner::feed`] takes the bytes in order, in chunks of any size, and
//! stops at every top-level record boundary, so a caller that hashes the
//! stream can keep the hash state of everything before a record (the CRC
//! and signature records are verified that way).

use crate::error::ErrorKind;
use crate::ext;
use crate::header::{Declared, HEADER};
use crate::record::{kind, RecordHeader};
use crate::signature::TAG_SIGNATURE;
use crate::varuint::{Decoder, Step};

/// Bytes of a top-level record's payload a [`Scanner`] keeps: enough for an
/// extension record's prefix and a checksum.
pub const KEPT_PAYLOAD: usize = ext::CHECKSUM_PAYLOAD_LEN;

/// Why a stream is not an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StreamError {
    /// The stream does not start with the ROMFS header `d2 cd 31`.
    NotAnImage,
    /// The image length varuint is malformed.
    BadLength(ErrorKind),
    /// More bytes arrived than the header declares.
    TooLong {
        /// The declared image length.
        image_len: u64,
    },
}

impl core::fmt::Display for StreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            // One wording for "not a ROMFS image", whichever reader found it.
            StreamError::NotAnImage => core::fmt::Display::fmt(&ErrorKind::BadMagic, f),
            StreamError::BadLength(kind) => write!(f, "bad image length: {kind}"),
            StreamError::TooLong { image_len } => {
                write!(f, "stream longer than the declared {image_len} bytes")
            }
        }
    }
}

impl core::error::Error for StreamError {}

/// A top-level record seen in the stream, with the first bytes of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopRecord {
    /// Where it is.
    pub header: RecordHeader,
    payload: [u8; KEPT_PAYLOAD],
    kept: usize,
}

impl TopRecord {
    /// The first bytes of its payload (up to [`KEPT_PAYLOAD`]), as far as
    /// they have arrived.
    pub fn payload_start(&self) -> &[u8] {
        &self.payload[..self.kept]
    }

    /// True when this is one of our extension records with `tag`.
    pub fn is_extension(&self, tag: u8) -> bool {
        self.header.kind == kind::PADDING && ext::extension_tag(self.payload_start()) == Some(tag)
    }

    /// The stored CRC, if this is a complete checksum record.
    pub fn checksum(&self) -> Option<u32> {
        match self.header.kind == kind::PADDING && self.header.len == ext::CHECKSUM_PAYLOAD_LEN {
            true => ext::checksum_value(self.payload_start()),
            false => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Matching `d2 cd 31`: bytes matched so far.
    Magic(usize),
    /// Decoding the image length.
    Length(Decoder),
    /// Decoding a top-level record's kind (the record starts at `.1`).
    Kind(Decoder, u64),
    /// Decoding its length.
    Len(Decoder, u64, u64),
    /// Inside a payload, with this many bytes left.
    Payload(u64),
    /// Past a top-level record that does not decode (MicroPython stops
    /// scanning there): bytes are only counted.
    Opaque,
    /// The whole image arrived.
    End,
}

/// Follows an image's header and top-level records as its bytes arrive.
#[derive(Debug, Clone, Copy)]
pub struct Scanner {
    state: State,
    pos: u64,
    declared: Option<Declared>,
    current: Option<TopRecord>,
    last: Option<TopRecord>,
    before_last: Option<TopRecord>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner at the first byte of an image.
    pub const fn new() -> Self {
        Scanner {
            state: State::Magic(0),
            pos: 0,
            declared: None,
            current: None,
            last: None,
            before_last: None,
        }
    }

    /// Bytes taken so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The header, once its length has arrived.
    pub fn declared(&self) -> Option<Declared> {
        self.declared
    }

    /// True when every byte the header declares has arrived.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// True when the next byte starts a top-level record (or ends the image):
    /// everything taken so far is the header and whole records.
    pub fn at_record_boundary(&self) -> bool {
        matches!(self.state, State::Kind(d, _) if d.is_empty()) || matches!(self.state, State::End)
    }

    /// The last complete top-level record, if the records decoded so far.
    pub fn last_record(&self) -> Option<TopRecord> {
        self.last
    }

    /// The signature record, if the last complete record is one.
    pub fn signature_record(&self) -> Option<TopRecord> {
        self.last.filter(|r| r.is_extension(TAG_SIGNATURE))
    }

    /// The checksum record, if the last complete record is one, or the one
    /// before a final signature record (as [`Reader::checksum_record`](crate::Reader::checksum_record)).
    pub fn checksum_record(&self) -> Option<TopRecord> {
        let rec = match self.signature_record() {
            Some(_) => self.before_last,
            None => self.last,
        };
        rec.filter(|r| r.checksum().is_some())
    }

    /// The record being received, once its header has arrived.
    pub fn current_record(&self) -> Option<TopRecord> {
        self.current
    }

    /// Take bytes from the front of `bytes`; returns how many. It stops early
    /// at a top-level record boundary (see [`Scanner::at_record_boundary`]),
    /// so call it until everything is taken. Taking at least one byte of a
    /// non-empty `bytes` is guaranteed unless it fails.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        let mut taken = 0;
        while taken < bytes.len() {
            if matches!(self.state, State::End) {
                let image_len = self.declared.map_or(0, |d| d.image_len());
                return Err(StreamError::TooLong { image_len });
            }
            if let State::Payload(left) = self.state {
                // Bulk: a payload needs no per-byte decoding past what is kept.
                let n = (bytes.len() - taken).min(left.min(usize::MAX as u64) as usize);
                self.keep(&bytes[taken..taken + n]);
                taken += n;
                self.pos += n as u64;
                self.state = State::Payload(left - n as u64);
                if left == n as u64 {
                    self.end_record();
                    return Ok(taken);
                }
                continue;
            }
            if matches!(self.state, State::Opaque) {
                let end = self.declared.map_or(0, |d| d.image_len());
                let n = (bytes.len() - taken).min((end - self.pos).min(usize::MAX as u64) as usize);
                taken += n;
                self.pos += n as u64;
                if self.pos == end {
                    self.state = State::End;
                }
                continue;
            }
            let byte = bytes[taken];
            taken += 1;
            self.pos += 1;
            self.step(byte)?;
            if self.at_record_boundary() {
                return Ok(taken);
            }
        }
        Ok(taken)
    }

    /// One byte of the header or of a record's kind or length.
    fn step(&mut self, byte: u8) -> Result<(), StreamError> {
        match self.state {
            State::Magic(n) => {
                if HEADER.get(n) != Some(&byte) {
                    return Err(StreamError::NotAnImage);
                }
                self.state = match n + 1 == HEADER.len() {
                    true => State::Length(Decoder::new()),
                    false => State::Magic(n + 1),
                };
            }
            State::Length(mut d) => match d.push(byte) {
                Step::More => self.state = State::Length(d),
                Step::Invalid(kind) => return Err(StreamError::BadLength(kind)),
                Step::Done(payload_len, n) => {
                    self.declared = Some(Declared {
                        payload_offset: HEADER.len() + n,
                        payload_len,
                    });
                    self.state = State::Kind(Decoder::new(), self.pos);
                    self.end_if_complete();
                }
            },
            State::Kind(mut d, start) => match d.push(byte) {
                Step::More => self.state = State::Kind(d, start),
                Step::Done(kind::UNUSED, _) | Step::Invalid(_) => self.go_opaque(),
                Step::Done(k, _) => self.state = State::Len(Decoder::new(), k, start),
            },
            State::Len(mut d, k, start) => match d.push(byte) {
                Step::More => self.state = State::Len(d, k, start),
                Step::Invalid(_) => self.go_opaque(),
                Step::Done(len, _) => {
                    let end = self.declared.map_or(0, |d| d.image_len());
                    if len > end.saturating_sub(self.pos) {
                        self.go_opaque();
                        return Ok(());
                    }
                    self.current = Some(TopRecord {
                        header: RecordHeader {
                            kind: k,
                            offset: start as usize,
                            payload_offset: self.pos as usize,
                            len: len as usize,
                        },
                        payload: [0; KEPT_PAYLOAD],
                        kept: 0,
                    });
                    self.state = State::Payload(len);
                    if len == 0 {
                        self.end_record();
                    }
                }
            },
            State::Payload(_) | State::Opaque | State::End => {}
        }
        // A kind or length cut off by the end of the image is malformed.
        let cut = matches!(self.state, State::Kind(d, _) | State::Len(d, _, _) if !d.is_empty());
        if cut && self.declared.is_some_and(|d| self.pos >= d.image_len()) {
            self.go_opaque();
        }
        Ok(())
    }

    fn keep(&mut self, bytes: &[u8]) {
        if let Some(rec) = &mut self.current {
            let n = bytes.len().min(KEPT_PAYLOAD - rec.kept);
            rec.payload[rec.kept..rec.kept + n].copy_from_slice(&bytes[..n]);
            rec.kept += n;
        }
    }

    fn end_record(&mut self) {
        self.before_last = self.last;
        self.last = self.current.take();
        self.state = State::Kind(Decoder::new(), self.pos);
        self.end_if_complete();
    }

    fn end_if_complete(&mut self) {
        if self.declared.is_some_and(|d| self.pos >= d.image_len()) {
            self.state = State::End;
        }
    }

    /// A record that does not decode (or kind 0): MicroPython stops there,
    /// and no record after it counts as the last one.
    fn go_opaque(&mut self) {
        self.current = None;
        self.last = None;
        self.before_last = None;
        self.state = State::Opaque;
        self.end_if_complete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(image: &[u8], chunk: usize) -> (Scanner, usize) {
        let mut s = Scanner::new();
        let mut boundaries = 0;
        for piece in image.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = s.feed(rest).unwrap();
                assert!(n > 0);
                rest = &rest[n..];
                boundaries += s.at_record_boundary() as usize;
            }
        }
        (s, boundaries)
    }

    #[test]
    fn finds_the_checksum_record_in_any_chunking() {
        // d2 cd 31, len 16: file "a" (5 05 01 'a' 02 00), checksum record.
        let img = [
            0xd2, 0xcd, 0x31, 16, 5, 4, 1, b'a', 2, 0, 1, 8, b'R', b'F', b'S', b'C', 1, 2, 3, 4,
        ];
        for chunk in 1..img.len() + 1 {
            let (s, _) = scan(&img, chunk);
            assert!(s.is_complete());
            assert_eq!(s.last_record().unwrap().checksum(), Some(0x04030201));
            assert_eq!(s.declared().unwrap().image_len(), img.len() as u64);
        }
    }

    #[test]
    fn stops_at_every_top_level_boundary() {
        let img = [0xd2, 0xcd, 0x31, 8, 1, 0, 1, 1, 0, 1, 1, 7];
        // Records start at 4, 6 and 9 (after the header); the image ends at 12.
        let (s, boundaries) = scan(&img, img.len());
        assert!(s.is_complete());
        assert_eq!(boundaries, 4);
        assert_eq!(s.last_record().unwrap().header.offset, 9);
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert_eq!(
            Scanner::new().feed(b"\xd2\xcd\x32"),
            Err(StreamError::NotAnImage)
        );
        let mut s = Scanner::new();
        let long = [0xd2, 0xcd, 0x31, 0x00, 0xff];
        assert_eq!(s.feed(&long), Ok(4));
        assert!(s.is_complete());
        assert_eq!(
            s.feed(&long[4..]),
            Err(StreamError::TooLong { image_len: 4 })
        );
        let overflow = [0xd2, 0xcd, 0x31, 0x90, 0x80, 0x80, 0x80, 0x80];
        assert_eq!(
            Scanner::new().feed(&overflow),
            Err(StreamError::BadLength(ErrorKind::VaruintOverflow))
        );
    }

    #[test]
    fn a_record_past_the_image_hides_the_checksum() {
        // A record claiming more than the image holds, then checksum bytes.
        let img = [
            0xd2, 0xcd, 0x31, 12, 1, 100, b'R', b'F', b'S', b'C', 1, 2, 3, 4, 5, 6,
        ];
        let (s, _) = scan(&img, 3);
        assert!(s.is_complete());
        assert_eq!(s.last_record(), None);
    }
}
