//! The one error type of this crate: each message says what is wrong and
//! where (the file, or the byte offset in the image). Messages are complete
//! and no error returns its cause again from `source()`, so printing an
//! error chain says everything once.

use std::path::PathBuf;

use romfs_format::signature::ManifestError;

use crate::KeyId;

/// Why a key could not be read or written, or an image could not be signed
/// or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a key file failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A password-protected private key.
    #[error(
        "{}: the private key is encrypted; romfs reads unencrypted PKCS#8 keys only \
         (keep the key in a secret store, or decrypt it with `openssl pkey -in KEY -out PLAIN.pem`)",
        path.display()
    )]
    EncryptedKey {
        /// The key file.
        path: PathBuf,
    },
    /// A key of another algorithm.
    #[error(
        "{}: {algorithm} key; romfs signs with Ed25519 only \
         (make one with `romfs keygen` or `openssl genpkey -algorithm ed25519`)",
        path.display()
    )]
    NotEd25519 {
        /// The key file.
        path: PathBuf,
        /// The algorithm the file names.
        algorithm: String,
    },
    /// Not a key romfs can read.
    #[error(
        "{}: not an Ed25519 key in PKCS#8 (PRIVATE KEY) or SPKI (PUBLIC KEY) PEM: {reason}",
        path.display()
    )]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A public key where signing needs the private one.
    #[error(
        "{}: a public key; signing needs the private key (the PRIVATE KEY PEM `romfs keygen` \
         writes as PREFIX.pem)",
        path.display()
    )]
    NeedPrivateKey {
        /// The key file.
        path: PathBuf,
    },
    /// `keygen` would overwrite a file.
    #[error("{}: already exists; keys are never overwritten", path.display())]
    KeyExists {
        /// The file.
        path: PathBuf,
    },
    /// Something is wrong with the image in this file.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The image file.
        path: PathBuf,
        /// What is wrong.
        error: Box<Error>,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),

    /// The bytes are not a romfs image.
    #[error("{0}")]
    Image(romfs_format::Error),
    /// Bytes follow the image's declared end.
    #[error(
        "the image ends at byte {end} (its header says so) but {extra} more bytes follow; \
         a signature covers exactly the image"
    )]
    TrailingBytes {
        /// The image's declared length.
        end: usize,
        /// Bytes after it.
        extra: usize,
    },
    /// No signature record ends the image.
    #[error("the image is not signed (no signature record ends it)")]
    Unsigned,
    /// The image is signed already (to sign it again, seal its record).
    #[error("the image is already signed (signature record at byte {offset})")]
    AlreadySigned {
        /// Offset of its signature record.
        offset: usize,
    },
    /// A signature needs a checksum record to follow.
    #[error(
        "the image has no checksum record to put a signature after (an mpremote-layout or \
         --no-checksum image): rebuild it with `romfs build --sign`"
    )]
    NoChecksum,
    /// The image's own CRC does not match: it was damaged before signing.
    #[error(
        "checksum record at byte {offset}: stored CRC {stored:08x}, computed {computed:08x}; \
         the image is damaged"
    )]
    Checksum {
        /// Offset of the checksum record.
        offset: usize,
        /// The stored value.
        stored: u32,
        /// The value computed over the image.
        computed: u32,
    },
    /// Appending a signature would need a wider length varuint, which
    /// would move every file.
    #[error(
        "signing this image needs a {needed}-byte image length at byte 3, but it has {width} \
         bytes there and its files must not move: rebuild it with `romfs build --sign`"
    )]
    HeaderTooNarrow {
        /// Bytes of the image's length varuint.
        width: usize,
        /// Bytes the signed length needs.
        needed: usize,
    },
    /// The signed image would exceed the format's 4 GiB.
    #[error("the signed image would be {size} bytes; the format allows at most 4 GiB")]
    TooLarge {
        /// The size it would have.
        size: u64,
    },
    /// The signature record does not hold a manifest this crate reads.
    #[error("signature record at byte {offset}: {problem}")]
    BadManifest {
        /// Offset of the signature record.
        offset: usize,
        /// What is wrong with the manifest.
        problem: ManifestError,
    },
    /// A signature record laid out by `romfs build` but never signed.
    #[error(
        "signature record at byte {offset} was laid out for signing but never signed \
         (run `romfs sign IMG --key KEY`)"
    )]
    NotSealed {
        /// Offset of the signature record.
        offset: usize,
    },
    /// Another key signed the image.
    #[error("signed by key {signed_by}, not by the given key {expected}")]
    WrongKey {
        /// The key id in the manifest.
        signed_by: KeyId,
        /// The id of the key given.
        expected: KeyId,
    },
    /// The Ed25519 signature does not verify.
    #[error(
        "signature record at byte {offset}: the signature does not verify with key {key_id} \
         (the manifest or the signature was altered)"
    )]
    BadSignature {
        /// Offset of the signature record.
        offset: usize,
        /// The key it was checked with.
        key_id: KeyId,
    },
    /// The image bytes are not the ones the manifest vouches for.
    #[error(
        "bytes 0..{signed_len} do not match the SHA-256 in the signed manifest \
         (the image was altered after signing)"
    )]
    DigestMismatch {
        /// How many leading bytes the digest covers.
        signed_len: usize,
    },
    /// A product identifier a manifest cannot hold.
    #[error(
        "product {product:?}: at most {max} bytes of UTF-8 without NUL",
        max = romfs_format::signature::MAX_PRODUCT_LEN
    )]
    BadProduct {
        /// The identifier.
        product: String,
    },
    /// Nothing says which product to sign for.
    #[error("no product to sign for: name it (--product NAME); the image's metadata names none")]
    NoProduct,
    /// Nothing says which generation to sign as.
    #[error(
        "no generation to sign as: give the anti-rollback generation (--generation N); \
         the image's metadata has none"
    )]
    NoGeneration,
    /// The metadata's generation does not fit a manifest.
    #[error(
        "the image's metadata says generation {generation}, more than a manifest's 32 bits hold: \
         give --generation N"
    )]
    GenerationRange {
        /// The metadata's generation.
        generation: u64,
    },
    /// The requested claim contradicts the image's signed metadata.
    #[error(
        "the image's metadata record (byte {offset}) says {field} {metadata}, not {requested}; \
         the metadata is signed too, so rebuild the image with the {field} you want"
    )]
    Conflict {
        /// `product` or `generation`.
        field: &'static str,
        /// Offset of the metadata record.
        offset: usize,
        /// The value in the metadata.
        metadata: String,
        /// The value asked for.
        requested: String,
    },
}

impl From<romfs_format::Error> for Error {
    fn from(e: romfs_format::Error) -> Self {
        Error::Image(e)
    }
}

/// This crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_number_generator_failure_keeps_its_error() {
        let e = Error::Random(getrandom::Error::UNSUPPORTED);
        assert!(matches!(e, Error::Random(g) if g == getrandom::Error::UNSUPPORTED));
        assert_eq!(
            e.to_string(),
            format!(
                "the operating system's random number generator failed: {}",
                getrandom::Error::UNSUPPORTED
            )
        );
        // Said once: the message holds the cause, `source()` does not repeat it.
        assert!(std::error::Error::source(&e).is_none());
    }
}
