//! Streaming over-the-air updates: A/B (two slots, commit record last) or
//! single-slot (header last), skipping sectors whose contents already match.
//!
//! Feed the new image with [`Updater::write`] in chunks of any size, then
//! call [`Updater::finish`]. Nothing becomes active before `finish` has read
//! the image back and verified it. See FORMAT.md (section 5) for what is
//! written where and in which order.
//!
//! The caller's buffer decides how sectors are written (see `Staging`):
//! with room for a whole sector, a sector is compared with the flash first
//! and left alone when it already holds the new bytes; with less (large
//! sectors, small RAM), each sector is erased when the image reaches it and
//! programmed piece by piece as the stream arrives.
//!
//! One job per module:
//! - `error`, `report`: what an update returns;
//! - `received`: the stream's structure, CRC and identity;
//! - `stream`: the state machine that turns the stream into sector writes
//!   (`write`, `finish`);
//! - `flash_ops`: the counted flash operations (compare, erase, program,
//!   read back);
//! - `ab`, `single`: starting and committing an update of each mode;
//! - `delta`: an A/B update made from a patch and the running image;
//! - `signed` (feature `signed`): the signature check and progress log.

mod ab;
mod delta;
mod error;
mod flash_ops;
mod received;
mod report;
#[cfg(feature = "signed")]
mod signed;
mod single;
mod stream;

pub use delta::DeltaUpdater;
pub use error::UpdateError;
pub use report::{Report, UpdateStats};
#[cfg(feature = "signed")]
pub use signed::{key_id, verify_signature, TrustPolicy};

use embedded_storage::nor_flash::{ErrorType, NorFlash};

use crate::buffered::ReadStats;
use crate::partition::Region;
use crate::slots::{AbLayout, SlotInfo};
use crate::LayoutError;
use received::Received;

/// Size of the on-stack buffer used to compare and read back flash.
const SCRATCH: usize = 256;

/// The smallest piece of a sector the updater stages (with a buffer
/// smaller than a sector): the image header must fit in the first one.
const MIN_CHUNK: usize = 64;

/// What differs between the modes beyond their data, set by the mode's
/// `begin_*`. Function pointers rather than a `match` on the mode, so that
/// a firmware that only ever updates one way links only that way's code.
#[derive(Debug)]
struct Mode<'b, F: ErrorType> {
    /// Whether an image whose header is `head` is header-safe.
    header_safe: fn(&[u8]) -> bool,
    /// Write what is left, verify and commit.
    finish: Finisher<'b, F>,
}

type Finisher<'b, F> =
    fn(&mut Updater<'b, F>, u32, u32, u32) -> Result<Report, UpdateError<<F as ErrorType>::Error>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ab {
        layout: AbLayout,
        index: usize,
        generation: u32,
    },
    Single,
}

/// How the caller's buffer is used: `buf[..chunk]` collects the stream
/// until a piece of a sector is complete; `buf[chunk..chunk + held]` keeps
/// the image's first bytes back until the end (single slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Staging {
    /// Bytes staged before they are written: a whole sector (which can then
    /// be skipped when the flash already holds it), or a multiple of the
    /// write unit when the buffer is smaller than a sector.
    chunk: usize,
    /// Single slot: the whole first sector (a buffer of two sectors), or
    /// only its first write unit (a smaller buffer). A/B: 0.
    held: usize,
}

impl Staging {
    /// How a buffer of `len` bytes serves a flash with `erase`-byte sectors
    /// and `write`-byte units, holding back `held_unit` bytes beyond the
    /// chunk when a whole sector does not fit (0 for A/B). `Err`: the
    /// smallest buffer that works.
    /// Inlined into the generic caller, where `erase` and `write` are
    /// constants (no division routine on cores without a divider).
    #[inline(always)]
    fn new(len: usize, erase: usize, write: usize, single: bool) -> Result<Self, usize> {
        let whole = if single { 2 * erase } else { erase };
        if len >= whole {
            return Ok(Staging {
                chunk: erase,
                held: if single { erase } else { 0 },
            });
        }
        let held = if single { write } else { 0 };
        let chunk = len.saturating_sub(held) / write * write;
        let min = round_up(MIN_CHUNK, write) + held;
        match chunk + held >= min {
            true => Ok(Staging { chunk, held }),
            false => Err(min.min(whole)),
        }
    }

    /// A whole sector fits in the chunk.
    fn whole_sectors(&self, erase: usize) -> bool {
        self.chunk >= erase
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
    staging: Staging,
    /// Where in the image the piece being staged in `buf` starts.
    staged_at: u32,
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
    /// Check the flash geometry and how `buf` can be staged.
    fn staging(buf_len: usize, single: bool) -> Result<Staging, UpdateError<F::Error>> {
        let (e, w) = (F::ERASE_SIZE, F::WRITE_SIZE);
        if e < MIN_CHUNK
            || w == 0
            || e % w != 0
            || F::READ_SIZE > SCRATCH
            || u32::try_from(e).is_err()
        {
            return Err(LayoutError::Geometry.into());
        }
        Staging::new(buf_len, e, w, single).map_err(|needed| UpdateError::BufferTooSmall { needed })
    }

    fn with(
        flash: F,
        target: Target,
        mode: Mode<'b, F>,
        region: Region,
        buf: &'b mut [u8],
        staging: Staging,
    ) -> Self {
        Updater {
            flash,
            target,
            mode,
            #[cfg(feature = "signed")]
            signed_steps: None,
            region,
            buf,
            staging,
            staged_at: 0,
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
        self.set_trial_boots(boots)?;
        Ok(self)
    }

    /// [`trial_boots`](Self::trial_boots) for an updater in a place of the
    /// caller's ([`begin_ab_in`](Self::begin_ab_in)); a refused count ends
    /// the update (later calls return [`UpdateError::Aborted`]).
    pub fn trial_boots_in_place(&mut self, boots: u8) -> Result<(), UpdateError<F::Error>> {
        self.ended_on_error(|up| up.set_trial_boots(boots))
    }

    fn set_trial_boots(&mut self, boots: u8) -> Result<(), UpdateError<F::Error>> {
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
        Ok(())
    }

    /// Single slot: whether the image is header-safe for this flash's
    /// `WRITE_SIZE` (see [`romfs_format::header_is_write_safe`]); `None`
    /// until the image length has arrived. A/B: always `Some(true)` once
    /// known.
    pub fn header_safe(&self) -> Option<bool> {
        self.header_safe
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

    /// Whether sectors are staged whole (and skipped when the flash already
    /// holds them), or erased and programmed piece by piece because the
    /// buffer is smaller than a sector (single slot: two sectors).
    pub fn stages_whole_sectors(&self) -> bool {
        self.staging.whole_sectors(F::ERASE_SIZE)
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
}
