//! ROMFS variable-length unsigned integers.
//!
//! Big-endian base-128: every byte but the last has bit 7 set. Leading `0x80`
//! bytes are padding and change nothing (mpremote and our writer use them to
//! make sizes even and data aligned).

use crate::error::{Error, ErrorKind};
use crate::source::{ReadError, Source};

/// The longest encoding we accept, padding included. Padding beyond this is
/// refused as overlong. MicroPython's builder pads a varuint by at most one
/// byte; our writer pads record lengths by a few bytes, and the image length
/// by up to 39 bytes when the header is made safe for a flash write size of
/// up to 32 bytes (see [`crate::write::Options::header_write_size`]).
pub const MAX_ENCODED_LEN: usize = 64;

/// The largest value we accept. MicroPython accumulates varuints in a machine
/// word, so on 32-bit devices (nearly all of them) a larger value would wrap;
/// refusing it keeps every value meaning the same on every reader.
pub const MAX_VALUE: u64 = u32::MAX as u64;

/// A varuint decoded one byte at a time: the one decoder behind
/// [`decode`], [`decode_at`] and the streaming scanner an updater runs over
/// an image as it arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoder {
    value: u64,
    len: usize,
}

/// What one more byte did to a [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The varuint goes on.
    More,
    /// The varuint ended: its value and encoded length.
    Done(u64, usize),
    /// The value exceeds [`MAX_VALUE`] or the encoding [`MAX_ENCODED_LEN`].
    Invalid(ErrorKind),
}

impl Decoder {
    /// A decoder at the start of a varuint.
    pub const fn new() -> Self {
        Decoder { value: 0, len: 0 }
    }

    /// Bytes taken so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True before the first byte.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Take the next byte. After `Done` or `Invalid` the decoder starts over.
    pub fn push(&mut self, byte: u8) -> Step {
        if self.len >= MAX_ENCODED_LEN {
            *self = Decoder::new();
            return Step::Invalid(ErrorKind::VaruintOverlong);
        }
        self.len += 1;
        self.value = (self.value << 7) | u64::from(byte & 0x7f);
        if self.value > MAX_VALUE {
            *self = Decoder::new();
            return Step::Invalid(ErrorKind::VaruintOverflow);
        }
        if byte & 0x80 != 0 {
            return Step::More;
        }
        let done = Step::Done(self.value, self.len);
        *self = Decoder::new();
        done
    }
}

/// Decode a varuint starting at `pos` of `src`, reading no further than
/// `end`. Returns the value and the offset just past it; errors carry
/// `pos`, the varuint's first byte.
#[inline]
pub fn decode_at<S: Source>(
    src: &mut S,
    pos: usize,
    end: usize,
) -> Result<(u64, usize), ReadError<S::Error>> {
    let end = end.min(src.len());
    if pos < end {
        // Most varuints are one byte: decode those without the state machine.
        if let Some(&byte) = src.window(pos).map_err(ReadError::Source)?.first() {
            if byte & 0x80 == 0 {
                return Ok((u64::from(byte), pos + 1));
            }
        }
    }
    decode_long(src, pos, end)
}

fn decode_long<S: Source>(
    src: &mut S,
    pos: usize,
    end: usize,
) -> Result<(u64, usize), ReadError<S::Error>> {
    let mut decoder = Decoder::new();
    let mut at = pos;
    loop {
        if at >= end {
            return Err(Error::new(ErrorKind::VaruintTruncated, pos).into());
        }
        let window = src.window(at).map_err(ReadError::Source)?;
        let usable = window.len().min(end - at);
        if usable == 0 {
            return Err(Error::new(ErrorKind::VaruintTruncated, pos).into());
        }
        for &byte in &window[..usable] {
            at += 1;
            match decoder.push(byte) {
                Step::More => {}
                Step::Done(value, _) => return Ok((value, at)),
                Step::Invalid(kind) => return Err(Error::new(kind, pos).into()),
            }
        }
    }
}

/// Decode a varuint starting at `buf[pos]`, where `pos` is an absolute
/// offset used for error reporting and `end` bounds the read.
/// Returns the value and the offset just past it.
pub fn decode(buf: &[u8], pos: usize, end: usize) -> Result<(u64, usize), Error> {
    let mut src = buf;
    Ok(decode_at(&mut src, pos, end)?)
}

/// Number of bytes of the shortest encoding of `value`.
pub const fn encoded_len(value: u64) -> usize {
    let mut n = 1;
    let mut v = value >> 7;
    while v != 0 {
        n += 1;
        v >>= 7;
    }
    n
}

/// Encode `value` into exactly `width` bytes (padding with leading `0x80`),
/// writing into `out[..width]`. `width` must be at least `encoded_len(value)`
/// and `out` at least `width` long; returns `width`.
pub fn encode_padded(value: u64, width: usize, out: &mut [u8]) -> usize {
    let min = encoded_len(value);
    debug_assert!(width >= min && out.len() >= width);
    let pad = width - min;
    for b in out.iter_mut().take(pad) {
        *b = 0x80;
    }
    let mut v = value;
    for k in (0..min).rev() {
        let cont = if k == min - 1 { 0 } else { 0x80 };
        out[pad + k] = (v & 0x7f) as u8 | cont;
        v >>= 7;
    }
    width
}

/// Encode `value` in its shortest form into `out`; returns the length.
pub fn encode(value: u64, out: &mut [u8]) -> usize {
    encode_padded(value, encoded_len(value), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_boundaries() {
        for v in [
            0u64,
            1,
            127,
            128,
            16383,
            16384,
            2_097_151,
            2_097_152,
            u32::MAX as u64,
        ] {
            let mut buf = [0u8; 16];
            let n = encode(v, &mut buf);
            assert_eq!(n, encoded_len(v));
            assert_eq!(decode(&buf, 0, n).unwrap(), (v, n));
        }
    }

    #[test]
    fn padding_is_transparent() {
        let mut buf = [0u8; 8];
        encode_padded(5, 4, &mut buf);
        assert_eq!(&buf[..4], &[0x80, 0x80, 0x80, 0x05]);
        assert_eq!(decode(&buf, 0, 4).unwrap(), (5, 4));
    }

    #[test]
    fn rejects_bad_encodings() {
        assert_eq!(
            decode(&[0x81], 0, 1).unwrap_err().kind,
            ErrorKind::VaruintTruncated
        );
        // 2^35 overflows the 32-bit limit.
        let big = [0x81, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            decode(&big, 0, 6).unwrap_err().kind,
            ErrorKind::VaruintOverflow
        );
        let overlong = [0x80u8; 80];
        assert_eq!(
            decode(&overlong, 0, 80).unwrap_err().kind,
            ErrorKind::VaruintOverlong
        );
        // Exactly at the limit is accepted, one byte more is overlong.
        let mut longest = [0x80u8; MAX_ENCODED_LEN + 1];
        longest[MAX_ENCODED_LEN - 1] = 0x05;
        assert_eq!(
            decode(&longest, 0, MAX_ENCODED_LEN + 1).unwrap(),
            (5, MAX_ENCODED_LEN)
        );
        longest[MAX_ENCODED_LEN - 1] = 0x80;
        longest[MAX_ENCODED_LEN] = 0x05;
        assert_eq!(
            decode(&longest, 0, MAX_ENCODED_LEN + 1).unwrap_err().kind,
            ErrorKind::VaruintOverlong
        );
    }
}
