//! The signature record: a signed manifest that binds an image to a
//! product and an anti-rollback generation (FORMAT.md, section 3.4).
//!
//! The record is the image's last top-level record, right after its checksum
//! record; MicroPython skips it like any padding record. Its body is a
//! [`Manifest`] (96 bytes) followed by an Ed25519 signature of exactly those
//! 96 bytes. The manifest holds the SHA-256 of every image byte before the
//! record, so the signature covers the whole image: header, metadata, files
//! and checksum. This crate only lays the bytes out; hashing and signature
//! checks belong to the crates that carry the cryptography (romfs-build on
//! the host, romfs-embedded on devices).

use core::fmt;

use crate::ext::{EXTENSION_PREFIX_LEN, MAGIC};
use crate::record::kind;

/// Tag of the signature extension record.
pub const TAG_SIGNATURE: u8 = b'S';
/// First bytes of a manifest.
pub const MANIFEST_MAGIC: [u8; 4] = *b"RFSm";
/// The manifest version this crate writes and reads.
pub const MANIFEST_VERSION: u8 = 1;
/// Algorithm 1: Ed25519 (RFC 8032) over the manifest, SHA-256 of the image.
pub const ALGORITHM_ED25519_SHA256: u8 = 1;
/// Bytes of a manifest: what is signed.
pub const MANIFEST_LEN: usize = 96;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// A manifest and its signature: the signature record's body, and what a
/// sender can hand a device before the image.
pub const SIGNED_MANIFEST_LEN: usize = MANIFEST_LEN + SIGNATURE_LEN;
/// Payload of a signature record: extension prefix and signed manifest.
pub const SIGNATURE_PAYLOAD_LEN: usize = EXTENSION_PREFIX_LEN + SIGNED_MANIFEST_LEN;
/// The signature record's first bytes: kind 1, its length varuint (164,
/// two bytes), and the extension prefix `RFS` `S`.
pub const SIGNATURE_RECORD_HEAD: [u8; 7] = [
    kind::PADDING as u8,
    0x80 | (SIGNATURE_PAYLOAD_LEN >> 7) as u8,
    (SIGNATURE_PAYLOAD_LEN & 0x7f) as u8,
    MAGIC[0],
    MAGIC[1],
    MAGIC[2],
    TAG_SIGNATURE,
];
/// Bytes of a whole signature record as written: its head and the signed manifest.
pub const SIGNATURE_RECORD_LEN: usize = 3 + SIGNATURE_PAYLOAD_LEN;
/// Longest product identifier (UTF-8 bytes).
pub const MAX_PRODUCT_LEN: usize = 32;
/// Bytes of a key id: the first bytes of the SHA-256 of the public key.
pub const KEY_ID_LEN: usize = 8;

/// What a signature record vouches for. All integers little-endian.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `RFSm` |
/// | 4 | 1 | version 1 |
/// | 5 | 1 | algorithm 1: Ed25519 over these 96 bytes; SHA-256 digest |
/// | 6 | 2 | reserved, 0 |
/// | 8 | 4 | image length, signature record included |
/// | 12 | 4 | signed length: offset of the signature record |
/// | 16 | 4 | generation (anti-rollback): higher is newer |
/// | 20 | 4 | reserved, 0 |
/// | 24 | 32 | product identifier, UTF-8, NUL-padded |
/// | 56 | 32 | SHA-256 of image bytes `0..signed length` |
/// | 88 | 8 | key id: first 8 bytes of SHA-256 of the 32-byte public key |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Manifest {
    /// Length of the whole image, signature record included.
    pub image_len: u32,
    /// Offset of the signature record: the bytes before it are signed.
    pub signed_len: u32,
    /// Anti-rollback generation: higher is newer.
    pub generation: u32,
    /// The product identifier, NUL-padded.
    pub product: [u8; MAX_PRODUCT_LEN],
    /// SHA-256 of the image bytes `0..signed_len`.
    pub digest: [u8; 32],
    /// Which key signed it (see [`KEY_ID_LEN`]).
    pub key_id: [u8; KEY_ID_LEN],
}

/// Why bytes are not a manifest this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ManifestError {
    /// Not the expected number of bytes.
    Length {
        /// Bytes given.
        len: usize,
    },
    /// The magic is not `RFSm`.
    Magic,
    /// A manifest version this crate does not read.
    Version(u8),
    /// An algorithm this crate does not know.
    Algorithm(u8),
    /// A reserved field is not zero.
    Reserved,
    /// The product identifier is not UTF-8, or has bytes after its padding.
    Product,
    /// The signed length is not where a signature record ending the image
    /// would start (`image length - SIGNATURE_RECORD_LEN`).
    Lengths {
        /// Declared image length.
        image_len: u32,
        /// Declared signed length.
        signed_len: u32,
    },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Length { len } => write!(
                f,
                "signed manifest is {len} bytes, expected {SIGNED_MANIFEST_LEN}"
            ),
            ManifestError::Magic => f.write_str("not a romfs manifest (no RFSm magic)"),
            ManifestError::Version(v) => write!(f, "manifest version {v} is not supported"),
            ManifestError::Algorithm(a) => write!(f, "signature algorithm {a} is not supported"),
            ManifestError::Reserved => f.write_str("manifest reserved fields are not zero"),
            ManifestError::Product => {
                f.write_str("manifest product identifier is not NUL-padded UTF-8")
            }
            ManifestError::Lengths {
                image_len,
                signed_len,
            } => write!(
                f,
                "manifest signs {signed_len} of {image_len} bytes, but the signature record \
                 must end the image"
            ),
        }
    }
}

impl core::error::Error for ManifestError {}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Manifest {
    /// The product identifier without its padding.
    pub fn product(&self) -> &[u8] {
        let n = self
            .product
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_PRODUCT_LEN);
        &self.product[..n]
    }

    /// `product` NUL-padded into the manifest's field; `None` when longer
    /// than [`MAX_PRODUCT_LEN`] or holding a NUL.
    pub fn product_field(product: &[u8]) -> Option<[u8; MAX_PRODUCT_LEN]> {
        if product.len() > MAX_PRODUCT_LEN || product.contains(&0) {
            return None;
        }
        let mut field = [0u8; MAX_PRODUCT_LEN];
        field[..product.len()].copy_from_slice(product);
        Some(field)
    }

    /// The manifest's bytes: the message that is signed.
    pub fn to_bytes(&self) -> [u8; MANIFEST_LEN] {
        let mut b = [0u8; MANIFEST_LEN];
        b[0..4].copy_from_slice(&MANIFEST_MAGIC);
        b[4] = MANIFEST_VERSION;
        b[5] = ALGORITHM_ED25519_SHA256;
        b[8..12].copy_from_slice(&self.image_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.signed_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.generation.to_le_bytes());
        b[24..56].copy_from_slice(&self.product);
        b[56..88].copy_from_slice(&self.digest);
        b[88..96].copy_from_slice(&self.key_id);
        b
    }

    /// Decode and check a manifest's 96 bytes.
    pub fn parse(b: &[u8]) -> Result<Manifest, ManifestError> {
        if b.len() != MANIFEST_LEN {
            return Err(ManifestError::Length { len: b.len() });
        }
        if b[0..4] != MANIFEST_MAGIC {
            return Err(ManifestError::Magic);
        }
        if b[4] != MANIFEST_VERSION {
            return Err(ManifestError::Version(b[4]));
        }
        if b[5] != ALGORITHM_ED25519_SHA256 {
            return Err(ManifestError::Algorithm(b[5]));
        }
        if b[6..8] != [0, 0] || b[20..24] != [0; 4] {
            return Err(ManifestError::Reserved);
        }
        let mut m = Manifest {
            image_len: le32(b, 8),
            signed_len: le32(b, 12),
            generation: le32(b, 16),
            product: [0; MAX_PRODUCT_LEN],
            digest: [0; 32],
            key_id: [0; KEY_ID_LEN],
        };
        m.product.copy_from_slice(&b[24..56]);
        m.digest.copy_from_slice(&b[56..88]);
        m.key_id.copy_from_slice(&b[88..96]);
        let product = m.product();
        let padded = m.product[product.len()..].iter().all(|&c| c == 0);
        if !padded || core::str::from_utf8(product).is_err() {
            return Err(ManifestError::Product);
        }
        if u64::from(m.signed_len) + SIGNATURE_RECORD_LEN as u64 != u64::from(m.image_len) {
            return Err(ManifestError::Lengths {
                image_len: m.image_len,
                signed_len: m.signed_len,
            });
        }
        Ok(m)
    }
}

/// A manifest with its signature: the signature record's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedManifest {
    /// The manifest, decoded.
    pub manifest: Manifest,
    /// The manifest's bytes as signed.
    pub message: [u8; MANIFEST_LEN],
    /// The Ed25519 signature of `message`.
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedManifest {
    /// Decode the 160 bytes of a signature record's body (or of a manifest
    /// sent ahead of its image).
    pub fn parse(b: &[u8]) -> Result<SignedManifest, ManifestError> {
        if b.len() != SIGNED_MANIFEST_LEN {
            return Err(ManifestError::Length { len: b.len() });
        }
        let (message, signature) = b.split_at(MANIFEST_LEN);
        let manifest = Manifest::parse(message)?;
        let mut out = SignedManifest {
            manifest,
            message: [0; MANIFEST_LEN],
            signature: [0; SIGNATURE_LEN],
        };
        out.message.copy_from_slice(message);
        out.signature.copy_from_slice(signature);
        Ok(out)
    }

    /// The 160 bytes: manifest, then signature.
    pub fn to_bytes(&self) -> [u8; SIGNED_MANIFEST_LEN] {
        let mut b = [0u8; SIGNED_MANIFEST_LEN];
        b[..MANIFEST_LEN].copy_from_slice(&self.message);
        b[MANIFEST_LEN..].copy_from_slice(&self.signature);
        b
    }
}

/// Sign an image that ends with a signature record (as the writer lays it
/// out with [`Options::signature`](crate::write::Options::signature), or
/// an already signed image, to sign it again): set the manifest's `digest`
/// (the caller's SHA-256 of `image[..signed_len]`, see
/// [`signed_len`]) and `key_id`, then store `sign(manifest)`. Only the
/// record's last 160 bytes change; the checksum and everything before it
/// stay as they are. The cryptography is the caller's.
pub fn seal(
    image: &mut [u8],
    digest: [u8; 32],
    key_id: [u8; KEY_ID_LEN],
    sign: impl FnOnce(&[u8; MANIFEST_LEN]) -> [u8; SIGNATURE_LEN],
) -> Result<Manifest, ManifestError> {
    let body_at = image
        .len()
        .checked_sub(SIGNED_MANIFEST_LEN)
        .ok_or(ManifestError::Length { len: image.len() })?;
    let mut manifest = Manifest::parse(&image[body_at..body_at + MANIFEST_LEN])?;
    if manifest.image_len as usize != image.len() {
        return Err(ManifestError::Lengths {
            image_len: manifest.image_len,
            signed_len: manifest.signed_len,
        });
    }
    manifest.digest = digest;
    manifest.key_id = key_id;
    let message = manifest.to_bytes();
    let signature = sign(&message);
    image[body_at..body_at + MANIFEST_LEN].copy_from_slice(&message);
    image[body_at + MANIFEST_LEN..].copy_from_slice(&signature);
    Ok(manifest)
}

/// How many leading bytes of a signed image its digest covers: the image
/// length minus the signature record. `None` when the image is too short
/// to end with one.
pub fn signed_len(image: &[u8]) -> Option<usize> {
    image.len().checked_sub(SIGNATURE_RECORD_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            image_len: 1000 + SIGNATURE_RECORD_LEN as u32,
            signed_len: 1000,
            generation: 7,
            product: Manifest::product_field(b"demo-board").unwrap(),
            digest: [0xab; 32],
            key_id: [1, 2, 3, 4, 5, 6, 7, 8],
        }
    }

    #[test]
    fn round_trips_and_refuses_what_it_does_not_know() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes), Ok(m));
        assert_eq!(m.product(), b"demo-board");
        assert_eq!(SIGNATURE_RECORD_HEAD[1..3], [0x81, 0x24]);
        assert_eq!(SIGNATURE_RECORD_LEN, 167);
        let bad = |at: usize, v: u8| {
            let mut b = bytes;
            b[at] = v;
            Manifest::parse(&b)
        };
        assert_eq!(bad(0, b'X'), Err(ManifestError::Magic));
        assert_eq!(bad(4, 2), Err(ManifestError::Version(2)));
        assert_eq!(bad(5, 9), Err(ManifestError::Algorithm(9)));
        assert_eq!(bad(7, 1), Err(ManifestError::Reserved));
        assert_eq!(bad(40, b'x'), Err(ManifestError::Product));
        assert_eq!(bad(24, 0xff), Err(ManifestError::Product));
        assert!(matches!(bad(12, 0), Err(ManifestError::Lengths { .. })));
        assert_eq!(
            Manifest::parse(&bytes[..95]),
            Err(ManifestError::Length { len: 95 })
        );
        assert_eq!(Manifest::product_field(&[b'a'; 33]), None);
        assert_eq!(Manifest::product_field(b"a\0b"), None);
    }
}
