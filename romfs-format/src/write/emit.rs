//! Emitting: the planned image written in one forward pass, file contents
//! streamed from a [`Contents`] source, the CRC computed on the way.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::plan::{Data, ItemKind, Trailer};
use super::tree::NodeRef;
use super::Plan;
use crate::ext;
use crate::header::HEADER;
use crate::record::kind;
use crate::signature::{
    Manifest, KEY_ID_LEN, SIGNATURE_LEN, SIGNATURE_RECORD_HEAD, SIGNATURE_RECORD_LEN,
};
use crate::varuint::{self, encoded_len};

pub(super) fn push_varuint(out: &mut Vec<u8>, value: u64) {
    push_varuint_padded(out, value, encoded_len(value));
}

pub(super) fn push_varuint_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut b = [0u8; varuint::MAX_ENCODED_LEN];
    let n = varuint::encode_padded(value, width, &mut b);
    out.extend_from_slice(&b[..n]);
}

/// The bytes of a padding record exactly `total` (>= 2) bytes long.
pub(super) fn padding_record(total: u64, out: &mut Vec<u8>) {
    debug_assert!(total >= 2);
    // kind (1 byte) + length varuint (w bytes) + payload; pad w to fit.
    let mut w = 1;
    while encoded_len(total - 1 - w as u64) > w {
        w += 1;
    }
    let payload = total - 1 - w as u64;
    out.push(kind::PADDING as u8);
    push_varuint_padded(out, payload, w);
    out.resize(out.len() + payload as usize, 0);
}

/// The checksum record up to its CRC (kind, length, magic, tag): the CRC
/// of every byte before it, little-endian, completes it. `padded` writes
/// the length varuint in 2 bytes (to make the image's size even).
pub fn checksum_record_head(padded: bool, out: &mut Vec<u8>) {
    out.push(kind::PADDING as u8);
    push_varuint_padded(out, ext::CHECKSUM_PAYLOAD_LEN as u64, 1 + padded as usize);
    out.extend_from_slice(&ext::MAGIC);
    out.push(ext::TAG_CHECKSUM);
}

/// Store in `image`'s checksum record the CRC-32 of the bytes before its
/// value, after they were changed on purpose (`romfs sign
/// --ignore-checksum` signs an image as it is). Returns the new CRC, or
/// `None`, writing nothing, when the image has no checksum record.
pub fn restamp_checksum(image: &mut [u8]) -> Result<Option<u32>, crate::Error> {
    let Some((end, _)) = crate::Image::parse(image)?.reader().stored_checksum()? else {
        return Ok(None);
    };
    // `end` is just past the record's 4-byte value, inside the image.
    let at = end.saturating_sub(4);
    let crc = crate::crc32::checksum(&image[..at]);
    image[at..end].copy_from_slice(&crc.to_le_bytes());
    Ok(Some(crc))
}

/// A signature record laid out for an image of `image_len` bytes that it
/// ends (FORMAT.md 3.4): the manifest's claims filled in, digest, key id
/// and signature zero, for a signer to seal.
pub fn signature_record_placeholder(
    image_len: u32,
    generation: u32,
    product: [u8; crate::signature::MAX_PRODUCT_LEN],
    out: &mut Vec<u8>,
) {
    let manifest = Manifest {
        image_len,
        signed_len: image_len - SIGNATURE_RECORD_LEN as u32,
        generation,
        product,
        digest: [0; 32],
        key_id: [0; KEY_ID_LEN],
    };
    out.extend_from_slice(&SIGNATURE_RECORD_HEAD);
    out.extend_from_slice(&manifest.to_bytes());
    out.extend_from_slice(&[0; SIGNATURE_LEN]);
}

impl<'t> Plan<'t> {
    /// Write the image to `out`, pulling file contents from `contents`.
    /// Returns the CRC32 of the whole image.
    pub fn emit<O: Output, C: Contents<O::Error>>(
        &self,
        out: &mut O,
        contents: &mut C,
    ) -> Result<u32, EmitError<O::Error>> {
        let mut w = Emitter {
            out,
            crc: crate::crc32::Hasher::new(),
            written: 0,
            buf: Vec::with_capacity(64),
        };
        let payload_len = self.stats.image_len - self.payload_offset;
        w.buf.extend_from_slice(&HEADER);
        push_varuint_padded(&mut w.buf, payload_len, self.top_w);
        w.buf.extend_from_slice(&self.metadata);
        for it in &self.items {
            let name = &self.tree.nodes[it.node].name;
            let (kind_byte, item_kind) = match it.kind {
                ItemKind::Dir => (kind::DIRECTORY, it.kind),
                ItemKind::File { .. } => (kind::FILE, it.kind),
            };
            w.buf.push(kind_byte as u8);
            push_varuint_padded(&mut w.buf, it.len, it.len_w);
            push_varuint(&mut w.buf, name.len() as u64);
            w.buf.extend_from_slice(name);
            if let ItemKind::File { spec, data, .. } = item_kind {
                match data {
                    Data::Verbatim { pad } => {
                        if pad >= 2 {
                            padding_record(pad, &mut w.buf);
                        }
                        w.buf.push(kind::DATA_VERBATIM as u8);
                        push_varuint_padded(
                            &mut w.buf,
                            spec.len,
                            encoded_len(spec.len) + (pad == 1) as usize,
                        );
                        w.flush().map_err(EmitError::Output)?;
                        debug_assert_eq!(w.written, it.data_pos);
                        let mut copied = 0u64;
                        let mut sink = |bytes: &[u8]| -> Result<(), O::Error> {
                            copied += bytes.len() as u64;
                            if copied <= spec.len {
                                w.crc.update(bytes);
                                w.written += bytes.len() as u64;
                                w.out.write_all(bytes)?;
                            }
                            Ok(())
                        };
                        contents
                            .write_contents(spec.source, spec.len, &mut sink)
                            .map_err(EmitError::Output)?;
                        if copied != spec.len {
                            return Err(EmitError::ContentLength {
                                path: self.tree.path_lossy(NodeRef(it.node)),
                                expected: spec.len,
                                actual: copied,
                            });
                        }
                    }
                    Data::Shared {
                        offset_w, offset, ..
                    } => {
                        let payload = encoded_len(spec.len) + offset_w;
                        w.buf.push(kind::DATA_INDIRECT as u8);
                        push_varuint(&mut w.buf, payload as u64);
                        push_varuint(&mut w.buf, spec.len);
                        push_varuint_padded(&mut w.buf, offset, offset_w);
                    }
                }
            }
        }
        match self.trailer {
            Trailer::None => {}
            Trailer::Parity => padding_record(3, &mut w.buf),
            Trailer::Checksum { padded, signed } => {
                checksum_record_head(padded, &mut w.buf);
                w.flush().map_err(EmitError::Output)?;
                let crc = w.crc.value();
                w.out
                    .write_all(&crc.to_le_bytes())
                    .map_err(EmitError::Output)?;
                w.crc.update(&crc.to_le_bytes());
                w.written += 4;
                if let (true, Some((generation, product))) = (signed, self.signature) {
                    let image_len = self.stats.image_len as u32;
                    signature_record_placeholder(image_len, generation, product, &mut w.buf);
                }
            }
        }
        w.flush().map_err(EmitError::Output)?;
        debug_assert_eq!(w.written, self.stats.image_len);
        Ok(w.crc.finalize())
    }
}

/// Where an image is written.
pub trait Output {
    /// The error writing can fail with.
    type Error;
    /// Write all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

impl Output for Vec<u8> {
    type Error = core::convert::Infallible;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Any `std::io::Write` as an [`Output`].
#[cfg(feature = "std")]
pub struct IoOutput<W>(pub W);

#[cfg(feature = "std")]
impl<W: std::io::Write> Output for IoOutput<W> {
    type Error = std::io::Error;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write_all(bytes)
    }
}

/// Where file contents come from while an image is emitted.
pub trait Contents<E> {
    /// Pass the `len` bytes of `source` to `sink`, in as many pieces as
    /// convenient. Passing a different total is reported as an error.
    fn write_contents(
        &mut self,
        source: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E>;
}

/// Why emitting failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError<E> {
    /// The output or the contents source failed.
    Output(E),
    /// A source gave a different number of bytes than planned (the file
    /// changed while the image was being written).
    ContentLength {
        /// Path of the file in the image.
        path: String,
        /// Bytes planned.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
}

impl<E: fmt::Display> fmt::Display for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Output(e) => write!(f, "{e}"),
            EmitError::ContentLength {
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{path:?}: expected {expected} bytes but read {actual} (did it change?)"
                )
            }
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for EmitError<E> {}

struct Emitter<'o, O: Output> {
    out: &'o mut O,
    crc: crate::crc32::Hasher,
    written: u64,
    buf: Vec<u8>,
}

impl<O: Output> Emitter<'_, O> {
    fn flush(&mut self) -> Result<(), O::Error> {
        if !self.buf.is_empty() {
            self.crc.update(&self.buf);
            self.written += self.buf.len() as u64;
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}
