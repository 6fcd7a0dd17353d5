//! Streaming over-the-air updates: A/B (two slots, commit record last) or
//! single-slot (header last), skipping sectors whose contents already match.
//!
//! Feed the new image with [`Updater::write`] in chunks of any size, then
//! call [`Updater::finish`]. Nothing becomes active before `finish` has read
//! the image back and verified it. See FORMAT.md (section 5) for what is
//! written where and in which order.
//!
//! This module streams the image into sectors and holds the flash
//! operations both modes share; `ab.rs` and `single.rs` start and finish an
//! update of their mode.

mod ab;
#[cfg(feature = "signed")]
mod signed;
mod single;

#[cfg(feature = "signed")]
pub use signed::{key_id, verify_signature, TrustPolicy};

use embedded_storage::nor_flash::{ErrorType, NorFlash};
use romfs_format::crc32::Hasher;
use romfs_format::record::kind;
use romfs_format::signature::{ManifestError, KEY_ID_LEN};
use romfs_format::stream::{Scanner, StreamError};
use romfs_format::{ErrorKind, ReadError};

use crate::buffered::{BufferedFlash, ReadStats};
use crate::partition::Region;
use crate::slots::{AbLayout, SlotInfo};
use crate::LayoutError;

/// Size of the on-stack buffer used to compare and read back flash.
const SCRATCH: usize = 256;

/// What an update cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UpdateStats {
    /// Sector erases.
    pub erases: u32,
    /// Write (program) operations.
    pub writes: u32,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Image sectors left alone because they already held the new contents.
    pub sectors_skipped: u32,
    /// Image sectors programmed.
    pub sectors_programmed: u32,
    /// Read operations (comparisons and read-back).
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

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
    /// The buffer is too small: it must hold one sector (A/B) or two (single slot).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The layout does not suit the flash.
    Layout(LayoutError),
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
    /// An earlier error ended this update.
    Aborted,
}

impl<E> From<ReadError<E>> for UpdateError<E> {
    fn from(e: ReadError<E>) -> Self {
        match e {
            ReadError::Source(e) => UpdateError::Flash(e),
            // Reading the flash's own regions never meets a malformed image.
            ReadError::Format(_) => UpdateError::Layout(LayoutError::OutOfBounds),
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
            UpdateError::NotAnImage => f.write_str("not a ROMFS image (expected header d2 cd 31)"),
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
            UpdateError::Aborted => f.write_str("update aborted by an earlier error"),
        }
    }
}

impl<E: core::fmt::Debug> core::error::Error for UpdateError<E> {}

/// The outcome of a successful update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// What it cost.
    pub stats: UpdateStats,
    /// Image length.
    pub image_len: u32,
    /// The image's identity (see [`romfs_format::Reader::identity`]): what
    /// a server can compare with the image it sent.
    pub image_id: u32,
    /// A/B: the newly committed slot. Single slot: `None`.
    pub slot: Option<SlotInfo>,
    /// Single slot: the flash already held exactly this image; nothing was written.
    pub unchanged: bool,
    /// Single slot: the image is header-safe for this flash's write size
    /// (see [`Updater::header_safe`]). A/B: always true (the commit record,
    /// not the image header, decides what mounts).
    pub header_safe: bool,
}

/// What differs between the modes beyond their data, set by the mode's
/// `begin_*`: a firmware that only ever updates one way links only that
/// way's code.
type Finisher<'b, F> =
    fn(&mut Updater<'b, F>, u32, u32, u32) -> Result<Report, UpdateError<<F as ErrorType>::Error>>;

struct Mode<'b, F: ErrorType> {
    /// Whether an image whose header is `head` is header-safe.
    header_safe: fn(&[u8]) -> bool,
    /// Write what is left, verify and commit.
    finish: Finisher<'b, F>,
}

impl<F: ErrorType> Clone for Mode<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: ErrorType> Copy for Mode<'_, F> {}

impl<F: ErrorType> core::fmt::Debug for Mode<'_, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Mode")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ab {
        layout: AbLayout,
        index: usize,
        generation: u32,
    },
    Single,
}

/// The image as it streamed past: its structure and CRCs.
#[derive(Debug, Clone)]
struct Received {
    scanner: Scanner,
    /// CRC of every byte so far.
    crc: Hasher,
    /// For the last two checksum-shaped records: their offset and the CRC
    /// of every byte before their value (the identity, if one of them turns
    /// out to be the image's checksum record).
    before_value: [Option<(usize, Hasher)>; 2],
    /// The signature check's running state.
    #[cfg(feature = "signed")]
    signed: Option<signed::SignedStream>,
}

impl Received {
    fn new() -> Self {
        Received {
            scanner: Scanner::new(),
            crc: Hasher::new(),
            before_value: [None, None],
            #[cfg(feature = "signed")]
            signed: None,
        }
    }

    /// The declared image length, once the header arrived.
    fn total(&self) -> Option<u32> {
        // The updater refuses lengths over the slot, which is a u32.
        self.scanner.declared().map(|d| d.image_len() as u32)
    }

    fn position(&self) -> u32 {
        self.scanner.position() as u32
    }

    /// Hash `piece`, which the scanner just took and which starts at `at`.
    /// A piece never spans two top-level records (the scanner stops at
    /// every boundary), so the record it belongs to says whether it holds
    /// a checksum value.
    fn hash(&mut self, piece: &[u8], at: u32) {
        let record = match self.scanner.at_record_boundary() {
            true => self.scanner.last_record(),
            false => self.scanner.current_record(),
        };
        let value_start = record
            .filter(|r| r.header.kind == kind::PADDING)
            .filter(|r| r.header.len == romfs_format::ext::CHECKSUM_PAYLOAD_LEN)
            .map(|r| (r.header.offset, r.header.end() - 4));
        match value_start {
            Some((offset, start)) if (at as usize..at as usize + piece.len()).contains(&start) => {
                let (before, after) = piece.split_at(start - at as usize);
                self.crc.update(before);
                self.before_value = [
                    self.before_value[1].take(),
                    Some((offset, self.crc.clone())),
                ];
                self.crc.update(after);
            }
            _ => self.crc.update(piece),
        }
        #[cfg(feature = "signed")]
        if let Some(signed) = &mut self.signed {
            let boundary = self.scanner.at_record_boundary();
            (signed.hash)(signed, piece, boundary);
        }
    }

    /// The image's identity, or a checksum record's stored value that does
    /// not match what arrived: (stored, computed).
    fn identity(&self) -> Result<u32, (u32, u32)> {
        let Some(record) = self.scanner.checksum_record() else {
            return Ok(self.crc.value());
        };
        let stored = record.checksum().unwrap_or(0);
        let computed = self
            .before_value
            .iter()
            .flatten()
            .find(|(offset, _)| *offset == record.header.offset)
            .map_or(0, |(_, crc)| crc.value());
        match computed == stored {
            true => Ok(stored),
            false => Err((stored, computed)),
        }
    }
}

/// A streaming image update in progress; see the module docs.
///
/// The updater takes the flash by value. To keep using the flash
/// afterwards, pass `&mut flash` (every `&mut NorFlash` is a `NorFlash`),
/// or take it back with [`Updater::into_inner`]:
///
/// ```
/// use romfs_embedded::sim::SimFlash;
/// use romfs_embedded::{Region, Updater};
///
/// let mut flash = SimFlash::<1, 4, 4096>::new(64 * 1024);
/// let mut buf = [0u8; 2 * 4096];
/// let image = [0xd2, 0xcd, 0x31, 0x00]; // the empty image
/// let mut up = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut buf)?;
/// up.write(&image)?;
/// up.finish(None)?;
/// // The updater borrowed the flash; it is still ours.
/// assert_eq!(&flash.contents()[..4], &image);
/// # Ok::<(), romfs_embedded::UpdateError<romfs_embedded::sim::SimError>>(())
/// ```
#[derive(Debug)]
pub struct Updater<'b, F: ErrorType> {
    flash: F,
    target: Target,
    mode: Mode<'b, F>,
    /// What a signed update adds, set by `require_signature` (so that a
    /// firmware that never asks for signatures links none of it).
    #[cfg(feature = "signed")]
    signed_steps: Option<signed::SignedSteps<'b, F>>,
    region: Region,
    buf: &'b mut [u8],
    received: Received,
    header_safe: Option<bool>,
    require_header_safe: bool,
    /// A/B: trial boots the commit allows (0: committed confirmed).
    trial_boots: u8,
    /// The image that runs (A/B: the slot mounting picks) when the update began.
    installed: Option<SlotInfo>,
    invalidated: bool,
    failed: bool,
    reads: ReadStats,
    stats: UpdateStats,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl<'b, F: NorFlash> Updater<'b, F> {
    fn check_geometry(buf_len: usize, sectors: usize) -> Result<(), UpdateError<F::Error>> {
        let (e, w) = (F::ERASE_SIZE, F::WRITE_SIZE);
        if e < 64 || w == 0 || e % w != 0 || F::READ_SIZE > SCRATCH || u32::try_from(e).is_err() {
            return Err(LayoutError::Geometry.into());
        }
        if buf_len < sectors * e {
            return Err(UpdateError::BufferTooSmall {
                needed: sectors * e,
            });
        }
        Ok(())
    }

    fn with(
        flash: F,
        target: Target,
        mode: Mode<'b, F>,
        region: Region,
        buf: &'b mut [u8],
    ) -> Self {
        Updater {
            flash,
            target,
            mode,
            #[cfg(feature = "signed")]
            signed_steps: None,
            region,
            buf,
            received: Received::new(),
            header_safe: None,
            require_header_safe: false,
            trial_boots: 0,
            installed: None,
            invalidated: false,
            failed: false,
            reads: ReadStats::default(),
            stats: UpdateStats::default(),
        }
    }

    /// Single slot: refuse ([`UpdateError::HeaderNotSafe`], before anything
    /// is written) an image that is not header-safe for this flash's
    /// `WRITE_SIZE`. Call it before the first [`write`](Self::write). With
    /// `WRITE_SIZE <= 3` every image is header-safe; A/B updates ignore it.
    ///
    /// Without it such an image is still written (last unit last, verified),
    /// but a power cut during the final program of its first write unit can
    /// leave a state that MicroPython, which checks nothing beyond the magic
    /// and the declared length, mounts with a wrong length. Our own readers
    /// refuse that state when the image has a checksum record.
    pub fn require_header_safe(mut self) -> Self {
        self.require_header_safe = true;
        self
    }

    /// A/B: commit the new image on trial for at most `boots` boots (up to
    /// [`MAX_TRIAL_BOOTS`](crate::commit::MAX_TRIAL_BOOTS)): it runs until
    /// the application [`confirm`](crate::boot::confirm)s it, and if it never
    /// does, mounting falls back to the image that runs now (see
    /// [`boot`](mod@crate::boot)). 0 (the default) commits it confirmed. Single
    /// slot cannot roll back: there is no other image to fall back to, so it
    /// refuses this ([`UpdateError::BadTrialBoots`]).
    pub fn trial_boots(mut self, boots: u8) -> Result<Self, UpdateError<F::Error>> {
        let fits = match self.target {
            Target::Ab { layout, .. } => layout.commit_areas().has_trial_logs(),
            Target::Single => boots == 0,
        };
        if boots > crate::commit::MAX_TRIAL_BOOTS
            || !fits
            || F::WRITE_SIZE > crate::boot::MAX_LOG_UNIT
        {
            return Err(UpdateError::BadTrialBoots { boots });
        }
        self.trial_boots = boots;
        Ok(self)
    }

    /// Single slot: whether the image is header-safe for this flash's
    /// `WRITE_SIZE` (see [`romfs_format::header_is_write_safe`]); `None`
    /// until the image length has arrived. A/B: always `Some(true)` once
    /// known.
    pub fn header_safe(&self) -> Option<bool> {
        self.header_safe
    }

    fn check_header_safe(&self) -> Result<(), UpdateError<F::Error>> {
        if self.require_header_safe && self.header_safe == Some(false) {
            return Err(UpdateError::HeaderNotSafe {
                write_size: F::WRITE_SIZE as u32,
            });
        }
        Ok(())
    }

    /// The region the image is being written to.
    pub fn target_region(&self) -> Region {
        self.region
    }

    /// A/B: the slot being written (0 = A) and the generation it will get.
    pub fn target_slot(&self) -> Option<(usize, u32)> {
        match self.target {
            Target::Ab {
                index, generation, ..
            } => Some((index, generation)),
            Target::Single => None,
        }
    }

    /// Costs so far.
    pub fn stats(&self) -> UpdateStats {
        UpdateStats {
            reads: self.reads.reads,
            bytes_read: self.reads.bytes,
            ..self.stats
        }
    }

    /// The flash back (e.g. after an error).
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Bytes received so far.
    pub fn received(&self) -> u32 {
        self.received.position()
    }

    /// The declared image length, once the header has arrived.
    pub fn image_len(&self) -> Option<u32> {
        self.received.total()
    }

    /// Feed the next chunk of the image (any size, including empty).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        let r = self
            .check_header_safe()
            .and_then(|()| self.write_inner(chunk));
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Where sector `sector`'s bytes are buffered: single slot keeps sector
    /// 0 in the second half of the buffer until the end.
    fn sector_buf_start(&self, sector: u32) -> usize {
        if self.target == Target::Single && sector == 0 {
            F::ERASE_SIZE
        } else {
            0
        }
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<(), UpdateError<F::Error>> {
        while !data.is_empty() {
            let had_header = self.received.total().is_some();
            let at = self.received.position();
            let n = self.received.scanner.feed(data)?;
            let (piece, rest) = data.split_at(n);
            let header_complete = !had_header && self.received.total().is_some();
            self.received.hash(piece, at);
            self.buffer(piece, at, header_complete)?;
            data = rest;
        }
        Ok(())
    }

    /// Check the declared length against the slot, and the header's safety.
    fn header_arrived(&mut self) -> Result<(), UpdateError<F::Error>> {
        let Some(declared) = self.received.scanner.declared() else {
            return Ok(());
        };
        // The header is checked from the sector buffer, so it must fit a sector.
        if declared.payload_offset > F::ERASE_SIZE {
            return Err(UpdateError::BadHeader(ErrorKind::VaruintOverlong));
        }
        #[cfg(feature = "signed")]
        self.check_declared_len(declared.image_len())?;
        if declared.image_len() > u64::from(self.region.len) {
            return Err(UpdateError::TooLarge {
                image_len: declared.image_len(),
                capacity: self.region.len,
            });
        }
        let start = self.sector_buf_start(0);
        let head = &self.buf[start..start + declared.payload_offset];
        self.header_safe = Some((self.mode.header_safe)(head));
        self.check_header_safe()
    }

    /// Copy `piece`, which starts at image offset `at`, into the sector
    /// buffer, writing every sector it completes. When `piece` completes the
    /// header, the header is checked before anything is written.
    fn buffer(
        &mut self,
        mut piece: &[u8],
        mut at: u32,
        mut header_complete: bool,
    ) -> Result<(), UpdateError<F::Error>> {
        let e = F::ERASE_SIZE as u32;
        while !piece.is_empty() {
            let sector = at / e;
            let offset = (at % e) as usize;
            let n = piece.len().min(e as usize - offset);
            let base = self.sector_buf_start(sector) + offset;
            self.buf[base..base + n].copy_from_slice(&piece[..n]);
            piece = &piece[n..];
            at += n as u32;
            if header_complete && (piece.is_empty() || at.is_multiple_of(e)) {
                header_complete = false;
                self.header_arrived()?;
            }
            if at.is_multiple_of(e) {
                self.flush(sector, e as usize)?;
            }
        }
        Ok(())
    }

    /// Finish the update: check the length, the image's own checksum
    /// record and (if given) its identity, write the last sector, read
    /// everything back, and commit. `expected_id` is the identity
    /// ([`romfs_format::Reader::identity`], shown by `romfs info`) of the
    /// image the sender meant to send: a server knows it in advance.
    pub fn finish(mut self, expected_id: Option<u32>) -> Result<Report, UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        let total = match self.received.total() {
            Some(t) if self.received.scanner.is_complete() => t,
            image_len => {
                return Err(UpdateError::Truncated {
                    received: self.received.position(),
                    image_len,
                })
            }
        };
        let image_id = self
            .received
            .identity()
            .map_err(|(stored, computed)| UpdateError::ChecksumMismatch { stored, computed })?;
        if let Some(expected) = expected_id.filter(|&e| e != image_id) {
            return Err(UpdateError::WrongImage {
                expected,
                received: image_id,
            });
        }
        self.check_header_safe()?;
        let e = F::ERASE_SIZE as u32;
        if total % e != 0 {
            self.flush(total / e, (total % e) as usize)?;
        }
        #[cfg(feature = "signed")]
        if let Some(steps) = self.signed_steps {
            (steps.check_signature)(&mut self, total)?;
        }
        let crc = self.received.crc.value();
        (self.mode.finish)(&mut self, total, crc, image_id)
    }

    fn report(
        &self,
        image_len: u32,
        image_id: u32,
        slot: Option<SlotInfo>,
        unchanged: bool,
    ) -> Report {
        Report {
            stats: self.stats(),
            image_len,
            image_id,
            slot,
            unchanged,
            header_safe: self.header_safe.unwrap_or(false),
        }
    }

    /// Visit the flash bytes `addr..addr + len` through a stack buffer
    /// (reads counted), until `visit` returns false. One copy of the flash
    /// reading loop serves every caller (`visit` is not generic).
    fn visit_flash(
        &mut self,
        addr: u32,
        len: usize,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, UpdateError<F::Error>> {
        let mut source = BufferedFlash::new(&mut self.flash, [0u8; SCRATCH]);
        let start = addr as usize;
        let done = romfs_format::source::visit(&mut source, start, start + len, visit);
        self.reads += source.stats();
        Ok(done?)
    }

    /// Compare the `len` flash bytes at `addr` with `buf[buf_at..buf_at + n]`
    /// (`n <= len`; the rest is not compared). Returns (equal, all erased).
    fn compare(
        &mut self,
        addr: u32,
        buf_at: usize,
        n: usize,
        len: usize,
    ) -> Result<(bool, bool), UpdateError<F::Error>> {
        let mut data = core::mem::take(&mut self.buf);
        let want = &data[buf_at..buf_at + n];
        let (mut equal, mut erased, mut off) = (true, true, 0usize);
        let result = self.visit_flash(addr, len, &mut |piece| {
            for (i, &b) in piece.iter().enumerate() {
                equal &= want.get(off + i).is_none_or(|&w| w == b);
                erased &= b == 0xff;
            }
            off += piece.len();
            equal || erased
        });
        core::mem::swap(&mut self.buf, &mut data);
        result?;
        Ok((equal, erased))
    }

    fn all_erased(&mut self, addr: u32, len: usize) -> Result<bool, UpdateError<F::Error>> {
        Ok(self.compare(addr, 0, 0, len)?.1)
    }

    fn erase(&mut self, addr: u32) -> Result<(), UpdateError<F::Error>> {
        self.flash
            .erase(addr, addr + F::ERASE_SIZE as u32)
            .map_err(UpdateError::Flash)?;
        self.stats.erases += 1;
        Ok(())
    }

    /// Program `bytes` (whole write units) at `addr`, counted.
    #[cfg(feature = "signed")]
    fn write_bytes(&mut self, addr: u32, bytes: &[u8]) -> Result<(), UpdateError<F::Error>> {
        self.flash.write(addr, bytes).map_err(UpdateError::Flash)?;
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Program `buf[at..at + len]` at `addr`, leaving runs of all-0xFF
    /// write units of at least 32 bytes unprogrammed (so an all-0xFF unit
    /// reads as, and is, erased; short gaps are programmed along with their
    /// neighbours to keep the number of operations low).
    fn program(&mut self, addr: u32, at: usize, len: usize) -> Result<(), UpdateError<F::Error>> {
        let w = F::WRITE_SIZE;
        let min_gap = round_up(32, w);
        let blank = |buf: &[u8], k: usize| buf[at + k..at + k + w].iter().all(|&b| b == 0xff);
        let mut u = 0;
        while u < len {
            if blank(self.buf, u) {
                u += w;
                continue;
            }
            // Extend over non-blank units and blank gaps shorter than min_gap.
            let mut v = u + w;
            loop {
                let mut g = v;
                while g < len && blank(self.buf, g) && g - v < min_gap {
                    g += w;
                }
                if g < len && g - v < min_gap && !blank(self.buf, g) {
                    v = g + w;
                } else {
                    break;
                }
            }
            self.flash
                .write(addr + u as u32, &self.buf[at + u..at + v])
                .map_err(UpdateError::Flash)?;
            self.stats.writes += 1;
            self.stats.bytes_written += (v - u) as u64;
            u = v;
        }
        Ok(())
    }

    /// Make sure no reader will accept the target while it is modified:
    /// A/B erases the target's commit record, single-slot the first sector.
    fn invalidate(&mut self) -> Result<(), UpdateError<F::Error>> {
        if self.invalidated {
            return Ok(());
        }
        let (addr, check) = match self.target {
            Target::Ab { layout, index, .. } => (
                layout.commit_offset(index),
                round_up(crate::slots::COMMIT_LEN, F::WRITE_SIZE),
            ),
            Target::Single => (self.region.offset, F::ERASE_SIZE),
        };
        if !self.all_erased(addr, check)? {
            self.erase(addr)?;
        }
        self.invalidated = true;
        Ok(())
    }

    /// Write sector `sector` of the image (its first `n` bytes are in the
    /// buffer) unless the flash already holds them.
    fn flush(&mut self, sector: u32, n: usize) -> Result<(), UpdateError<F::Error>> {
        if self.target == Target::Single && sector == 0 {
            return Ok(()); // Kept in RAM until the end.
        }
        #[cfg(feature = "signed")]
        if let Some(steps) = self.signed_steps {
            (steps.open_progress)(self, ())?;
        }
        let addr = self.region.offset + sector * F::ERASE_SIZE as u32;
        let at = self.sector_buf_start(sector);
        let padded = round_up(n, F::WRITE_SIZE);
        self.buf[at + n..at + padded].fill(0xff);
        let (equal, erased) = self.compare(addr, at, n, padded)?;
        if equal {
            self.stats.sectors_skipped += 1;
        } else {
            self.invalidate()?;
            if !erased {
                self.erase(addr)?;
            }
            self.program(addr, at, padded)?;
            self.stats.sectors_programmed += 1;
        }
        #[cfg(feature = "signed")]
        if n == F::ERASE_SIZE {
            self.log_progress(sector)?;
        }
        Ok(())
    }

    /// Copy the image bytes at `offset` into `out`: from flash, or from the
    /// first sector single-slot mode still holds in RAM.
    #[cfg(feature = "signed")]
    fn read_image(&mut self, offset: usize, out: &mut [u8]) -> Result<(), UpdateError<F::Error>> {
        let held = match self.target {
            Target::Single => F::ERASE_SIZE,
            Target::Ab { .. } => 0,
        };
        for (i, byte) in out.iter_mut().enumerate() {
            let at = offset + i;
            if at < held {
                *byte = self.buf[held + at];
            }
        }
        let from = offset.max(held);
        let end = offset + out.len();
        if from < end {
            let mut pos = from - offset;
            let start = self.region.offset + from as u32;
            let mut data = core::mem::take(&mut self.buf);
            let result = self.visit_flash(start, end - from, &mut |piece| {
                out[pos..pos + piece.len()].copy_from_slice(piece);
                pos += piece.len();
                true
            });
            core::mem::swap(&mut self.buf, &mut data);
            result?;
        }
        Ok(())
    }

    /// Resuming: read sector `sector` of the target back and follow it as
    /// if it had just streamed in.
    #[cfg(feature = "signed")]
    fn replay_sector(&mut self, sector: u32) -> Result<(), UpdateError<F::Error>> {
        let e = F::ERASE_SIZE;
        let addr = self.region.offset + sector * e as u32;
        let mut data = core::mem::take(&mut self.buf);
        let mut pos = 0;
        let read = self.visit_flash(addr, e, &mut |piece| {
            data[pos..pos + piece.len()].copy_from_slice(piece);
            pos += piece.len();
            true
        });
        core::mem::swap(&mut self.buf, &mut data);
        read?;
        let mut done = 0;
        while done < e {
            let had_header = self.received.total().is_some();
            let at = self.received.position();
            let n = self.received.scanner.feed(&self.buf[done..e])?;
            self.received.hash(&self.buf[done..done + n], at);
            if !had_header && self.received.total().is_some() {
                self.header_arrived()?;
            }
            done += n;
        }
        Ok(())
    }

    /// CRC32 of the image as it now is in flash; the first `skip` bytes are
    /// taken from `buf[skip_at..]` instead (the held-back header).
    fn readback_crc(
        &mut self,
        total: u32,
        skip: usize,
        skip_at: usize,
    ) -> Result<u32, UpdateError<F::Error>> {
        let skip = skip.min(total as usize);
        let mut h = Hasher::new();
        h.update(&self.buf[skip_at..skip_at + skip]);
        let from = self.region.offset + skip as u32;
        self.visit_flash(from, total as usize - skip, &mut |piece| {
            h.update(piece);
            true
        })?;
        Ok(h.finalize())
    }
}
