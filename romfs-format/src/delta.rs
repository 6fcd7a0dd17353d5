//! Delta patches between two images (FORMAT.md, section 9): ranges copied
//! from the old image plus literal bytes, decoded as a stream in chunks of
//! any size with a fixed-size state (no allocation), so a device can apply
//! one while it receives it.

use core::fmt;

/// The patch's first bytes.
pub const MAGIC: [u8; 4] = *b"RFSd";
/// The format version this crate writes and reads (1 carried the CRC-32 of
/// the whole file, which is the same for every checksummed image).
pub const VERSION: u8 = 2;
/// Bytes of the header: magic, version, old length and identity, new length
/// and identity.
pub const HEADER_LEN: usize = 4 + 1 + 16;

/// What a patch is for: the exact old image it applies to and the new
/// image it makes, each by length and [`identity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeltaHeader {
    /// Length of the old image.
    pub old_len: u32,
    /// [`identity`] of the old image.
    pub old_id: u32,
    /// Length of the new image.
    pub new_len: u32,
    /// [`identity`] of the new image.
    pub new_id: u32,
}

impl DeltaHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5..9].copy_from_slice(&self.old_len.to_le_bytes());
        b[9..13].copy_from_slice(&self.old_id.to_le_bytes());
        b[13..17].copy_from_slice(&self.new_len.to_le_bytes());
        b[17..21].copy_from_slice(&self.new_id.to_le_bytes());
        b
    }

    fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, DeltaError> {
        if b[..4] != MAGIC {
            return Err(DeltaError::BadMagic);
        }
        if b[4] != VERSION {
            return Err(DeltaError::BadVersion(b[4]));
        }
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(DeltaHeader {
            old_len: word(5),
            old_id: word(9),
            new_len: word(13),
            new_id: word(17),
        })
    }
}

/// Why a patch cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeltaError {
    /// Not a patch.
    BadMagic,
    /// A version this decoder does not know.
    BadVersion(u8),
    /// A number longer than 5 bytes or above 2^32 - 1, at this patch offset.
    BadNumber(u64),
    /// A copy from outside the old image, at this patch offset.
    CopyOutOfRange(u64),
    /// An operation that makes more bytes than the new image has, at this
    /// patch offset.
    TooLong(u64),
    /// An empty operation, at this patch offset.
    EmptyOp(u64),
    /// The patch ended before the new image was complete.
    Truncated,
    /// Bytes after the end of the patch, at this patch offset.
    TrailingBytes(u64),
    /// The patch is for another old image (length or identity differ).
    WrongBase,
    /// The result's length or identity is not the one the header promises.
    WrongResult,
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::BadMagic => f.write_str("not a romfs delta (bad magic)"),
            DeltaError::BadVersion(v) => write!(f, "delta version {v} is not supported"),
            DeltaError::BadNumber(at) => write!(f, "bad number at delta offset {at}"),
            DeltaError::CopyOutOfRange(at) => {
                write!(f, "copy outside the old image at delta offset {at}")
            }
            DeltaError::TooLong(at) => {
                write!(f, "operation past the new image's end at delta offset {at}")
            }
            DeltaError::EmptyOp(at) => write!(f, "empty operation at delta offset {at}"),
            DeltaError::Truncated => f.write_str("the delta ends before the new image does"),
            DeltaError::TrailingBytes(at) => {
                write!(f, "bytes after the delta's end at offset {at}")
            }
            DeltaError::WrongBase => f.write_str("the delta is for another old image"),
            DeltaError::WrongResult => {
                f.write_str("the image the delta made is not the one it promises")
            }
        }
    }
}

impl core::error::Error for DeltaError {}

/// What binds a patch to an image: for a file that is exactly one valid
/// image, its identity ([`crate::Reader::identity`]: the CRC-32 of the
/// bytes before its checksum record's value, or of the whole image when it
/// has none); for any other file, the CRC-32 of all of it. (The CRC-32 of
/// a whole checksummed image is the CRC residue, the same for all.)
pub fn identity(file: &[u8]) -> u32 {
    match crate::Image::parse(file) {
        Ok(image) if image.len() == file.len() => image.identity(),
        _ => crate::crc32::checksum(file),
    }
}

/// One step of the new image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// The header was read: what the patch is for.
    Header(DeltaHeader),
    /// Append `len` bytes of the old image from offset `from`.
    Copy {
        /// Offset in the old image.
        from: u32,
        /// Bytes to copy.
        len: u32,
    },
    /// Append these bytes (a piece of a literal run; runs arrive in as many
    /// pieces as the input was cut into).
    Literal(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Tag,
    CopyFrom { len: u32 },
    Literal { left: u32 },
    Done,
}

/// A streaming patch decoder: feed it the patch in chunks of any size; it
/// hands back one operation at a time. Its state is a few words.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    header: [u8; HEADER_LEN],
    have: usize,
    /// The number being read: value and bytes so far.
    num: u64,
    num_len: u8,
    /// Where the next copy starts if its offset delta is 0.
    old_pos: u64,
    old_len: u64,
    made: u64,
    new_len: u64,
    /// Patch bytes consumed.
    at: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Longest LEB128 encoding of a 32-bit value.
const MAX_NUM_LEN: u8 = 5;

impl Decoder {
    /// A decoder at the start of a patch.
    pub const fn new() -> Self {
        Decoder {
            state: State::Header,
            header: [0; HEADER_LEN],
            have: 0,
            num: 0,
            num_len: 0,
            old_pos: 0,
            old_len: 0,
            made: 0,
            new_len: 0,
            at: 0,
        }
    }

    /// New-image bytes made so far.
    pub fn produced(&self) -> u64 {
        self.made
    }

    /// True when the whole new image has been described.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Call at the end of the patch.
    pub fn finish(&self) -> Result<(), DeltaError> {
        if self.is_done() {
            Ok(())
        } else {
            Err(DeltaError::Truncated)
        }
    }

    /// Read from `input`: returns the bytes consumed and, when one is
    /// complete, an operation. Call again with the rest of the input until
    /// it is consumed (an operation may come with 0 bytes consumed only
    /// never: every call consumes at least one byte of a non-empty input).
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Op<'a>>), DeltaError> {
        let mut used = 0;
        while used < input.len() {
            let byte = input[used];
            match self.state {
                State::Done => return Err(DeltaError::TrailingBytes(self.at)),
                State::Header => {
                    self.header[self.have] = byte;
                    self.have += 1;
                    used += 1;
                    self.at += 1;
                    if self.have == HEADER_LEN {
                        let h = DeltaHeader::parse(&self.header)?;
                        self.old_len = u64::from(h.old_len);
                        self.new_len = u64::from(h.new_len);
                        self.state = if h.new_len == 0 {
                            State::Done
                        } else {
                            State::Tag
                        };
                        return Ok((used, Some(Op::Header(h))));
                    }
                }
                State::Literal { left } => {
                    let n = (left as usize).min(input.len() - used);
                    let piece = &input[used..used + n];
                    used += n;
                    self.at += n as u64;
                    self.made += n as u64;
                    let left = left - n as u32;
                    self.state = if left > 0 {
                        State::Literal { left }
                    } else {
                        self.after_op()
                    };
                    return Ok((used, Some(Op::Literal(piece))));
                }
                State::Tag | State::CopyFrom { .. } => {
                    used += 1;
                    let start = self.at;
                    self.at += 1;
                    let Some(value) = self.number(byte, start)? else {
                        continue;
                    };
                    match self.state {
                        State::Tag => {
                            let len = (value >> 1) as u32;
                            if len == 0 {
                                return Err(DeltaError::EmptyOp(start));
                            }
                            if self.made + u64::from(len) > self.new_len {
                                return Err(DeltaError::TooLong(start));
                            }
                            self.state = if value & 1 == 1 {
                                State::Literal { left: len }
                            } else {
                                State::CopyFrom { len }
                            };
                        }
                        State::CopyFrom { len } => {
                            // Zigzag: the offset's distance from where the
                            // last copy ended.
                            let delta = (value >> 1) as i64 ^ -((value & 1) as i64);
                            let from = self.old_pos as i64 + delta;
                            if from < 0 || from as u64 + u64::from(len) > self.old_len {
                                return Err(DeltaError::CopyOutOfRange(start));
                            }
                            self.old_pos = from as u64 + u64::from(len);
                            self.made += u64::from(len);
                            self.state = self.after_op();
                            return Ok((
                                used,
                                Some(Op::Copy {
                                    from: from as u32,
                                    len,
                                }),
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok((used, None))
    }

    fn after_op(&self) -> State {
        if self.made == self.new_len {
            State::Done
        } else {
            State::Tag
        }
    }

    /// Add a LEB128 byte; the value when complete.
    fn number(&mut self, byte: u8, at: u64) -> Result<Option<u64>, DeltaError> {
        if self.num_len == MAX_NUM_LEN {
            return Err(DeltaError::BadNumber(at));
        }
        self.num |= u64::from(byte & 0x7f) << (7 * self.num_len);
        self.num_len += 1;
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        let value = self.num;
        self.num = 0;
        self.num_len = 0;
        if value > u64::from(u32::MAX) {
            return Err(DeltaError::BadNumber(at));
        }
        Ok(Some(value))
    }
}

#[cfg(feature = "alloc")]
pub use encode::{apply, diff};

#[cfg(feature = "alloc")]
mod encode {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    /// Bytes compared to find a match in the old image.
    const WINDOW: usize = 16;
    /// Shortest copy worth an operation.
    const MIN_COPY: usize = 12;

    fn push_num(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn key(w: &[u8]) -> u64 {
        // FNV-1a over the window.
        w.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// The patch that makes `new` from `old` (both at most 4 GiB).
    pub fn diff(old: &[u8], new: &[u8]) -> Vec<u8> {
        let header = DeltaHeader {
            old_len: old.len() as u32,
            old_id: identity(old),
            new_len: new.len() as u32,
            new_id: identity(new),
        };
        let mut out = header.to_bytes().to_vec();
        // Every window start in the old image, by contents hash (the first
        // one wins).
        let mut index: BTreeMap<u64, u32> = BTreeMap::new();
        if old.len() >= WINDOW {
            for i in 0..=old.len() - WINDOW {
                index.entry(key(&old[i..i + WINDOW])).or_insert(i as u32);
            }
        }
        let match_len = |o: usize, n: usize| {
            old[o..]
                .iter()
                .zip(&new[n..])
                .take(u32::MAX as usize >> 1)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let mut lit_start = 0;
        let mut old_pos = 0usize; // where the last copy ended
        let mut i = 0;
        let emit_literal = |out: &mut Vec<u8>, from: usize, to: usize| {
            let mut s = from;
            while s < to {
                let n = (to - s).min(u32::MAX as usize >> 1);
                push_num(out, ((n as u64) << 1) | 1);
                out.extend_from_slice(&new[s..s + n]);
                s += n;
            }
        };
        while i < new.len() {
            // The same place, then where the last copy continues, then the index.
            let mut best = (0usize, 0usize);
            let mut consider = |o: usize| {
                if o < old.len() {
                    let l = match_len(o, i);
                    if l > best.1 {
                        best = (o, l);
                    }
                }
            };
            consider(i);
            consider(old_pos + (i - lit_start));
            if i + WINDOW <= new.len() {
                if let Some(&o) = index.get(&key(&new[i..i + WINDOW])) {
                    consider(o as usize);
                }
            }
            if best.1 >= MIN_COPY {
                emit_literal(&mut out, lit_start, i);
                let (from, len) = best;
                push_num(&mut out, (len as u64) << 1);
                let delta = from as i64 - old_pos as i64;
                push_num(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
                old_pos = from + len;
                i += len;
                lit_start = i;
            } else {
                i += 1;
            }
        }
        emit_literal(&mut out, lit_start, new.len());
        out
    }

    /// Apply `patch` to `old` in memory (host side; a device streams it).
    pub fn apply(old: &[u8], patch: &[u8]) -> Result<Vec<u8>, DeltaError> {
        let mut dec = Decoder::new();
        let mut out = Vec::new();
        let mut rest = patch;
        let mut header = None;
        while !rest.is_empty() {
            let (n, op) = dec.feed(rest)?;
            rest = &rest[n..];
            match op {
                Some(Op::Header(h)) => {
                    if h.old_len as usize != old.len() || h.old_id != identity(old) {
                        return Err(DeltaError::WrongBase);
                    }
                    header = Some(h);
                }
                Some(Op::Copy { from, len }) => {
                    out.extend_from_slice(&old[from as usize..(from + len) as usize])
                }
                Some(Op::Literal(b)) => out.extend_from_slice(b),
                None => {}
            }
        }
        dec.finish()?;
        match header {
            Some(h) if out.len() == h.new_len as usize && identity(&out) == h.new_id => Ok(out),
            Some(_) => Err(DeltaError::WrongResult),
            None => Err(DeltaError::Truncated),
        }
    }
}
