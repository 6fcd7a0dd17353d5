//! Signing and verifying images: the signature record of FORMAT.md,
//! section 3.4, filled in with SHA-256 and Ed25519.

use romfs_format::ext::{Checksum, CHECKSUM_PAYLOAD_LEN};
use romfs_format::signature::{
    self, Manifest, SignedManifest, KEY_ID_LEN, MANIFEST_LEN, SIGNATURE_LEN, SIGNATURE_RECORD_HEAD,
    SIGNATURE_RECORD_LEN, SIGNED_MANIFEST_LEN,
};
use romfs_format::varuint;
use romfs_format::write;
use romfs_format::{Image, HEADER};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::key::{KeyId, PublicKey, SigningKey};

/// What a manifest vouches for besides the image's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The product (board) identifier: a device for another product refuses the image.
    pub product: String,
    /// The anti-rollback generation: a device refuses images not newer than the one it runs.
    pub generation: u32,
}

/// A signature that verified: who signed the image, and what it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed it.
    pub key_id: KeyId,
    /// The product it is for.
    pub product: String,
    /// Its anti-rollback generation.
    pub generation: u32,
    /// The image's length, signature record included.
    pub image_len: u32,
    /// How many leading bytes the SHA-256 covers (the signature record's offset).
    pub signed_len: u32,
    /// The SHA-256 of the signed bytes, checked against the image.
    pub digest: [u8; 32],
    /// The 160 bytes of manifest and signature: what a sender hands a device
    /// ahead of the image.
    pub signed_manifest: [u8; SIGNED_MANIFEST_LEN],
}

impl Verified {
    fn new(signed: &SignedManifest) -> Verified {
        let m = &signed.manifest;
        Verified {
            key_id: KeyId(m.key_id),
            product: String::from_utf8_lossy(m.product()).into_owned(),
            generation: m.generation,
            image_len: m.image_len,
            signed_len: m.signed_len,
            digest: m.digest,
            signed_manifest: signed.to_bytes(),
        }
    }
}

/// What an image says about its signature, checked as far as possible
/// without the signer's public key (`romfs info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureState {
    /// No signature record ends the image.
    Unsigned,
    /// The record is there but its manifest is malformed, or describes
    /// another extent than the image's.
    Malformed {
        /// Offset of the signature record.
        offset: usize,
        /// What is wrong.
        error: signature::ManifestError,
    },
    /// Laid out by the writer but never signed.
    NotSealed {
        /// Offset of the signature record.
        offset: usize,
        /// The manifest as laid out.
        manifest: Manifest,
    },
    /// Signed: whether the signature verifies needs the public key.
    Signed {
        /// Offset of the signature record.
        offset: usize,
        /// The manifest and signature.
        signed: SignedManifest,
        /// Whether the image's bytes match the manifest's SHA-256.
        digest_matches: bool,
    },
}

/// The image in `bytes`, which must end where its header says.
fn parse_exact(bytes: &[u8]) -> Result<Image<'_>> {
    let image = Image::parse(bytes)?;
    if image.len() != bytes.len() {
        return Err(Error::TrailingBytes {
            end: image.len(),
            extra: bytes.len() - image.len(),
        });
    }
    Ok(image)
}

/// The signature record's offset, if the last top-level record is one.
fn signature_offset(image: &Image<'_>) -> Option<usize> {
    image
        .reader()
        .signature_record()
        .ok()
        .flatten()
        .map(|h| h.offset)
}

/// The image's signed manifest, or why it has none.
fn signed_manifest(image: &Image<'_>) -> Result<(usize, SignedManifest)> {
    let offset = signature_offset(image).ok_or(Error::Unsigned)?;
    match image.signature() {
        None => Err(Error::Unsigned),
        Some(Err(problem)) => Err(Error::BadManifest { offset, problem }),
        Some(Ok(signed)) => Ok((offset, signed)),
    }
}

/// The writer leaves digest, key id and signature zero.
fn is_placeholder(signed: &SignedManifest) -> bool {
    signed.signature == [0; SIGNATURE_LEN] && signed.manifest.key_id == [0; KEY_ID_LEN]
}

fn digest_of(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Refuse an image whose own CRC does not match: it is damaged.
fn check_intact(image: &Image<'_>) -> Result<()> {
    match image.checksum() {
        Checksum::Mismatch { stored, computed } => Err(Error::Checksum {
            offset: image.checksum_record().map_or(0, |(at, _)| at),
            stored,
            computed,
        }),
        Checksum::Valid(_) | Checksum::Absent => Ok(()),
    }
}

/// Check `claims` against the image's metadata record, which is signed too
/// and must not say otherwise.
fn check_metadata(image: &Image<'_>, claims: &Claims) -> Result<()> {
    let Some(md) = image.metadata()? else {
        return Ok(());
    };
    if let Some(product) = md.product.filter(|p| *p != claims.product.as_bytes()) {
        return Err(Error::Conflict {
            field: "product",
            offset: md.offset,
            metadata: format!("{:?}", String::from_utf8_lossy(product)),
            requested: format!("{:?}", claims.product),
        });
    }
    if let Some(generation) = md.generation.filter(|g| *g != u64::from(claims.generation)) {
        return Err(Error::Conflict {
            field: "generation",
            offset: md.offset,
            metadata: generation.to_string(),
            requested: claims.generation.to_string(),
        });
    }
    Ok(())
}

/// The claims to sign `image` with: each one as given, else as its
/// signature record already says (an image laid out by `romfs build
/// --sign`, or signed before), else as its metadata says. An error when
/// the product or generation is nowhere, or contradicts the metadata.
pub fn claims_for(image: &[u8], product: Option<&str>, generation: Option<u32>) -> Result<Claims> {
    let parsed = parse_exact(image)?;
    let manifest = match signature_offset(&parsed) {
        Some(_) => Some(signed_manifest(&parsed)?.1.manifest),
        None => None,
    };
    let metadata = parsed.metadata()?;
    let product = match (product, manifest, metadata.and_then(|m| m.product)) {
        (Some(p), _, _) => p.to_string(),
        (None, Some(m), _) => String::from_utf8_lossy(m.product()).into_owned(),
        (None, None, Some(p)) => String::from_utf8(p.to_vec()).map_err(|_| Error::BadProduct {
            product: String::from_utf8_lossy(p).into_owned(),
        })?,
        (None, None, None) => return Err(Error::NoProduct),
    };
    let generation = match (generation, manifest, metadata.and_then(|m| m.generation)) {
        (Some(g), _, _) => g,
        (None, Some(m), _) => m.generation,
        (None, None, Some(g)) => {
            u32::try_from(g).map_err(|_| Error::GenerationRange { generation: g })?
        }
        (None, None, None) => return Err(Error::NoGeneration),
    };
    let claims = Claims {
        product,
        generation,
    };
    check_metadata(&parsed, &claims)?;
    Ok(claims)
}

/// Sign an image that ends with a signature record (as `romfs build
/// --sign` lays it out, or signed before): store the SHA-256 of the bytes
/// before the record, the key's id and the Ed25519 signature of the
/// manifest. Only the record's last 160 bytes change.
pub fn sign(image: &mut [u8], key: &SigningKey) -> Result<Verified> {
    let offset = {
        let parsed = parse_exact(image)?;
        let (offset, signed) = signed_manifest(&parsed)?;
        check_intact(&parsed)?;
        let claims = Claims {
            product: String::from_utf8_lossy(signed.manifest.product()).into_owned(),
            generation: signed.manifest.generation,
        };
        check_metadata(&parsed, &claims)?;
        offset
    };
    let digest = digest_of(&image[..offset]);
    let manifest = signature::seal(image, digest, key.key_id().0, |m| key.sign(m))
        .map_err(|problem| Error::BadManifest { offset, problem })?;
    let signature: [u8; SIGNATURE_LEN] = image[image.len() - SIGNATURE_LEN..]
        .try_into()
        .expect("a sealed image ends with a signature");
    Ok(Verified::new(&SignedManifest {
        manifest,
        message: manifest.to_bytes(),
        signature,
    }))
}

/// Change the product and generation an image's signature record claims
/// (to sign it again with [`sign`]). The record's signature is stale until then.
pub fn set_claims(image: &mut [u8], claims: &Claims) -> Result<()> {
    let product = product_field(&claims.product)?;
    let (offset, mut manifest) = {
        let parsed = parse_exact(image)?;
        let (offset, signed) = signed_manifest(&parsed)?;
        check_metadata(&parsed, claims)?;
        (offset, signed.manifest)
    };
    manifest.product = product;
    manifest.generation = claims.generation;
    let at = offset + SIGNATURE_RECORD_HEAD.len();
    image[at..at + MANIFEST_LEN].copy_from_slice(&manifest.to_bytes());
    Ok(())
}

fn product_field(product: &str) -> Result<[u8; signature::MAX_PRODUCT_LEN]> {
    Manifest::product_field(product.as_bytes()).ok_or_else(|| Error::BadProduct {
        product: product.to_string(),
    })
}

/// Sign an unsigned default-layout image that ends with a checksum record:
/// returns it with a new trailer (checksum record with a new CRC, then the
/// signature record) and the header's length raised to match. Every byte
/// between header and checksum record stays where it is, so the image's
/// length varuint must hold the new length in its present width; when it
/// cannot, the image has to be rebuilt with `romfs build --sign`.
pub fn add_signature(image: &[u8], key: &SigningKey, claims: &Claims) -> Result<Vec<u8>> {
    let product = product_field(&claims.product)?;
    let parsed = parse_exact(image)?;
    if let Some(offset) = signature_offset(&parsed) {
        return Err(Error::AlreadySigned { offset });
    }
    let (checksum_at, _) = parsed.checksum_record().ok_or(Error::NoChecksum)?;
    check_intact(&parsed)?;
    check_metadata(&parsed, claims)?;

    // The checksum record's length varuint is padded to make the image's size even.
    let padded = (checksum_at + 2 + CHECKSUM_PAYLOAD_LEN + SIGNATURE_RECORD_LEN) % 2 == 1;
    let image_len =
        (checksum_at + 2 + usize::from(padded) + CHECKSUM_PAYLOAD_LEN + SIGNATURE_RECORD_LEN)
            as u64;
    let image_len = u32::try_from(image_len).map_err(|_| Error::TooLarge { size: image_len })?;
    let payload_at = parsed.payload_offset();
    let width = payload_at - HEADER.len();
    let payload_len = u64::from(image_len) - payload_at as u64;
    let needed = varuint::encoded_len(payload_len);
    if needed > width {
        return Err(Error::HeaderTooNarrow { width, needed });
    }

    let mut out = Vec::with_capacity(image_len as usize);
    out.extend_from_slice(&HEADER);
    let mut length = [0u8; varuint::MAX_ENCODED_LEN];
    let n = varuint::encode_padded(payload_len, width, &mut length);
    out.extend_from_slice(&length[..n]);
    out.extend_from_slice(&image[payload_at..checksum_at]);
    write::checksum_record_head(padded, &mut out);
    let crc = romfs_format::crc32::checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    write::signature_record_placeholder(image_len, claims.generation, product, &mut out);
    debug_assert_eq!(out.len(), image_len as usize);
    sign(&mut out, key)?;
    Ok(out)
}

/// Sign `image` whatever state it is in: an unsigned image gets a
/// signature record ([`add_signature`]), a signed or laid-out one is
/// (re)sealed. `product` and `generation` default as [`claims_for`] says.
pub fn sign_image(
    mut image: Vec<u8>,
    key: &SigningKey,
    product: Option<&str>,
    generation: Option<u32>,
) -> Result<(Vec<u8>, Verified)> {
    let claims = claims_for(&image, product, generation)?;
    let has_record = signature_offset(&parse_exact(&image)?).is_some();
    if has_record {
        set_claims(&mut image, &claims)?;
        let verified = sign(&mut image, key)?;
        Ok((image, verified))
    } else {
        let signed = add_signature(&image, key, &claims)?;
        let verified = verify(&signed, &key.public_key())?;
        Ok((signed, verified))
    }
}

/// Check an image's signature with `key`: the manifest is well formed and
/// describes this image, names this key, its Ed25519 signature verifies,
/// the SHA-256 of the signed bytes matches, and the image's own checksum
/// matches. Returns who signed it and what it vouches for. Bytes after the
/// image's declared end (the rest of a flash partition read back) are not
/// part of the image and are ignored, as readers ignore them.
pub fn verify(image: &[u8], key: &PublicKey) -> Result<Verified> {
    let parsed = Image::parse(image)?;
    let image = parsed.bytes();
    let (offset, signed) = signed_manifest(&parsed)?;
    if is_placeholder(&signed) {
        return Err(Error::NotSealed { offset });
    }
    let signed_by = KeyId(signed.manifest.key_id);
    if signed_by != key.key_id() {
        return Err(Error::WrongKey {
            signed_by,
            expected: key.key_id(),
        });
    }
    if !key.verifies(&signed.message, &signed.signature) {
        return Err(Error::BadSignature {
            offset,
            key_id: key.key_id(),
        });
    }
    if digest_of(&image[..offset]) != signed.manifest.digest {
        return Err(Error::DigestMismatch { signed_len: offset });
    }
    check_intact(&parsed)?;
    Ok(Verified::new(&signed))
}

/// The image's signature state, without a key: malformed, laid out, or
/// signed and whether its digest matches.
pub fn inspect(image: &[u8]) -> Result<SignatureState> {
    let parsed = Image::parse(image)?;
    let Some(offset) = signature_offset(&parsed) else {
        return Ok(SignatureState::Unsigned);
    };
    Ok(match parsed.signature() {
        None => SignatureState::Unsigned,
        Some(Err(error)) => SignatureState::Malformed { offset, error },
        Some(Ok(signed)) if is_placeholder(&signed) => SignatureState::NotSealed {
            offset,
            manifest: signed.manifest,
        },
        Some(Ok(signed)) => SignatureState::Signed {
            offset,
            signed,
            digest_matches: digest_of(&parsed.bytes()[..offset]) == signed.manifest.digest,
        },
    })
}
