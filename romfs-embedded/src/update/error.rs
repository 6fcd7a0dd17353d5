//! Why an update failed: one error type for every mode and step.

use romfs_format::delta::DeltaError;
use romfs_format::signature::{ManifestError, KEY_ID_LEN};
use romfs_format::stream::StreamError;
use romfs_format::{ErrorKind, ReadError};

#[cfg(doc)]
use super::Updater;
use crate::LayoutError;

/// Why an update failed. In A/B mode the active image is untouched by any
/// failure; in single-slot mode a failure after the first modified sector
/// leaves no image (never a corrupt one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum UpdateError<E> {
    /// The flash failed.
    Flash(E),
    /// The stream does not start with the ROMFS header `d2 cd 31`.
    NotAnImage,
    /// The image's length varuint is malformed (or longer than a sector).
    BadHeader(ErrorKind),
    /// The image does not fit the slot.
    TooLarge {
        /// Declared image length.
        image_len: u64,
        /// Bytes available in the slot.
        capacity: u32,
    },
    /// More bytes arrived than the image declares.
    TooLong {
        /// The declared length.
        image_len: u32,
    },
    /// The stream ended before the image did.
    Truncated {
        /// Bytes received.
        received: u32,
        /// Declared length, if the header arrived.
        image_len: Option<u32>,
    },
    /// The image's own checksum record does not match what arrived.
    ChecksumMismatch {
        /// The CRC the image stores.
        stored: u32,
        /// The CRC computed over what arrived.
        computed: u32,
    },
    /// The image that arrived is not the one expected (its identity, see
    /// [`romfs_format::Reader::identity`], differs from the caller's).
    WrongImage {
        /// The identity the caller expected.
        expected: u32,
        /// The identity of what arrived.
        received: u32,
    },
    /// Reading the written image (or commit) back gave different bytes.
    VerifyFailed,
    /// The buffer is too small for this flash (see [`Updater::begin_ab`]
    /// and [`Updater::begin_single`] for what each mode needs).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The layout does not suit the flash.
    Layout(LayoutError),
    /// What the flash holds where the updater reads its own records (a
    /// slot's image or commit record, the image being verified) is
    /// malformed: what, and at which offset.
    Format(romfs_format::Error),
    /// The generation counter is exhausted.
    GenerationExhausted,
    /// Single slot with [`Updater::require_header_safe`]: the image's first
    /// write unit is not constant (see
    /// [`romfs_format::header_is_write_safe`]), so a power cut while it is
    /// programmed could show MicroPython a wrong image length. Build the
    /// image with `romfs build --flash-write-size W`. Nothing was written.
    HeaderNotSafe {
        /// The flash write size.
        write_size: u32,
    },
    /// The slot that runs holds a trial image that was not confirmed yet:
    /// updating now would overwrite the only image to fall back to.
    /// Confirm it (or let it roll back) first.
    TrialPending,
    /// More trial boots than [`MAX_TRIAL_BOOTS`](crate::commit::MAX_TRIAL_BOOTS),
    /// or a commit sector too small for the trial logs.
    BadTrialBoots {
        /// The number asked for.
        boots: u8,
    },
    /// A signature is required and the image has none.
    Unsigned,
    /// The signature record or the manifest sent ahead is malformed.
    BadManifest(ManifestError),
    /// The manifest was signed by another key (its key id).
    WrongKey {
        /// The key id in the manifest.
        key_id: [u8; KEY_ID_LEN],
    },
    /// The signature does not verify: the manifest or the signature was altered.
    BadSignature,
    /// The image is for another product.
    WrongProduct,
    /// The image is not newer than the one installed.
    Rollback {
        /// The image's generation.
        generation: u32,
        /// The installed image's generation.
        installed: u32,
    },
    /// The image's generation is below the device's minimum.
    BelowMinimum {
        /// The image's generation.
        generation: u32,
        /// The lowest generation the device accepts.
        minimum: u32,
    },
    /// The image that arrived is not the one the manifest describes (another
    /// length, digest or signature record).
    ManifestMismatch,
    /// A delta patch cannot be applied: it is malformed or cut (with the
    /// patch offset), is for another image than the one that runs
    /// ([`DeltaError::WrongBase`], before anything is written), or did not
    /// make the image it promises ([`DeltaError::WrongResult`]).
    Delta(DeltaError),
    /// A delta needs the image of the running A/B slot to apply to, and
    /// there is none (no committed slot, or a single-slot update).
    NoDeltaBase,
    /// An earlier error, or the end of this update
    /// ([`Updater::finish_in_place`](crate::Updater::finish_in_place)),
    /// ended it.
    Aborted,
}

impl<E> From<ReadError<E>> for UpdateError<E> {
    fn from(e: ReadError<E>) -> Self {
        match e {
            ReadError::Source(e) => UpdateError::Flash(e),
            ReadError::Format(e) => UpdateError::Format(e),
        }
    }
}

impl<E> From<LayoutError> for UpdateError<E> {
    fn from(e: LayoutError) -> Self {
        UpdateError::Layout(e)
    }
}

impl<E> From<StreamError> for UpdateError<E> {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::NotAnImage => UpdateError::NotAnImage,
            StreamError::BadLength(kind) => UpdateError::BadHeader(kind),
            StreamError::TooLong { image_len } => UpdateError::TooLong {
                image_len: image_len.min(u64::from(u32::MAX)) as u32,
            },
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for UpdateError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpdateError::Flash(e) => write!(f, "flash error: {e:?}"),
            UpdateError::NotAnImage => core::fmt::Display::fmt(&ErrorKind::BadMagic, f),
            UpdateError::BadHeader(k) => write!(f, "bad image header: {k}"),
            UpdateError::TooLarge {
                image_len,
                capacity,
            } => write!(
                f,
                "image of {image_len} bytes does not fit the slot's {capacity} bytes"
            ),
            UpdateError::TooLong { image_len } => {
                write!(f, "stream longer than the declared {image_len} bytes")
            }
            UpdateError::Truncated {
                received,
                image_len: Some(len),
            } => write!(f, "stream ended after {received} of {len} bytes"),
            UpdateError::Truncated { received, .. } => {
                write!(
                    f,
                    "stream ended after {received} bytes, before the image length"
                )
            }
            UpdateError::ChecksumMismatch { stored, computed } => write!(
                f,
                "image checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            UpdateError::WrongImage { expected, received } => write!(
                f,
                "wrong image: expected identity {expected:#010x}, received {received:#010x}"
            ),
            UpdateError::VerifyFailed => f.write_str("read-back verification failed"),
            UpdateError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            UpdateError::Layout(e) => write!(f, "{e}"),
            UpdateError::Format(e) => write!(f, "malformed data in flash: {e}"),
            UpdateError::GenerationExhausted => f.write_str("generation counter exhausted"),
            UpdateError::HeaderNotSafe { write_size } => write!(
                f,
                "image header is not safe for {write_size}-byte flash writes in a single slot \
                 (build it with --flash-write-size {write_size})"
            ),
            UpdateError::TrialPending => f.write_str(
                "the running image is on trial and not confirmed: confirm it before updating",
            ),
            UpdateError::BadTrialBoots { boots } => write!(
                f,
                "{boots} trial boots: at most {} on a commit sector that holds the trial logs",
                crate::commit::MAX_TRIAL_BOOTS
            ),
            UpdateError::Unsigned => f.write_str("the image is not signed"),
            UpdateError::BadManifest(e) => write!(f, "{e}"),
            UpdateError::WrongKey { key_id } => {
                f.write_str("signed by another key (key id ")?;
                for b in key_id {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(")")
            }
            UpdateError::BadSignature => f.write_str("the signature does not verify"),
            UpdateError::WrongProduct => f.write_str("the image is for another product"),
            UpdateError::Rollback {
                generation,
                installed,
            } => write!(
                f,
                "generation {generation} is not newer than the installed {installed}"
            ),
            UpdateError::BelowMinimum {
                generation,
                minimum,
            } => write!(
                f,
                "generation {generation} is below the minimum {minimum} this device accepts"
            ),
            UpdateError::ManifestMismatch => {
                f.write_str("the image does not match its signed manifest")
            }
            UpdateError::Delta(e) => write!(f, "{e}"),
            UpdateError::NoDeltaBase => f.write_str(
                "a delta applies to the image of the running A/B slot, and there is none",
            ),
            UpdateError::Aborted => {
                f.write_str("update already ended (by an earlier error or its finish)")
            }
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for UpdateError<E> {}
