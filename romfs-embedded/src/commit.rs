//! The commit sector: the last sector of an A/B slot. It holds the commit
//! record, then small logs that are only ever *programmed*, never erased
//! one by one, so counting trial boots, confirming an image and recording
//! an update's progress cost one write each and no erase (FORMAT.md,
//! section 5).
//!
//! ```text
//! [record][confirm units x4][boot units x16][resume begin][progress units ...]
//! ```
//!
//! Every area is a whole number of flash write units. A log unit is *blank*
//! (all 0xFF: never programmed), *set* (all 0x00: programmed completely), or
//! *torn* (anything else: a program cut by power loss).

use romfs_format::{ReadError, Source};
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// First bytes of a commit record.
pub const COMMIT_MAGIC: [u8; 4] = *b"RFSc";
/// The commit record version this crate writes.
pub const COMMIT_VERSION: u8 = 2;
/// The first version, still read: its `image_id` field holds the CRC-32 of
/// the whole image, and it has no trial boots or signature fields.
pub const COMMIT_VERSION_1: u8 = 1;
/// Size of a commit record in bytes.
pub const COMMIT_LEN: usize = core::mem::size_of::<CommitRecord>();
/// `flags` bit: the image was installed from a verified signed manifest.
pub const FLAG_SIGNED: u8 = 1;
/// Confirm units: how many times `confirm` can be retried after power cuts.
pub const CONFIRM_UNITS: usize = 4;
/// The most trial boots a commit can allow.
pub const MAX_TRIAL_BOOTS: u8 = 16;
/// Bytes of the record that opens an update's progress log.
pub const RESUME_BEGIN_LEN: usize = 40;
/// First bytes of the progress log's opening record.
pub const RESUME_MAGIC: [u8; 4] = *b"RFSr";

/// The commit record at the start of a slot's last sector (little endian).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout, Unaligned,
)]
#[repr(C)]
pub struct CommitRecord {
    /// [`COMMIT_MAGIC`].
    pub magic: [u8; 4],
    /// [`COMMIT_VERSION`] (or [`COMMIT_VERSION_1`] in slots written before it).
    pub version: u8,
    /// 0: the image is confirmed. `n > 0`: it runs on trial for at most `n`
    /// boots, until the application confirms it.
    pub trial_boots: u8,
    /// [`FLAG_SIGNED`] or 0.
    pub flags: u8,
    /// Zero.
    pub reserved: u8,
    /// Higher is newer; each commit uses the highest valid one plus 1.
    pub generation: U32,
    /// Length of the image at the slot's start, in bytes.
    pub image_len: U32,
    /// The image's identity ([`romfs_format::Reader::identity`]); version 1:
    /// the CRC-32 of the whole image.
    pub image_id: U32,
    /// The signed manifest's anti-rollback generation (0 when unsigned).
    pub image_generation: U32,
    /// Zero.
    pub reserved2: U32,
    /// CRC32 of the 28 bytes before this field.
    pub record_crc: U32,
}

impl CommitRecord {
    /// A record for an image, confirmed and unsigned.
    pub fn new(generation: u32, image_len: u32, image_id: u32) -> Self {
        CommitRecord {
            magic: COMMIT_MAGIC,
            version: COMMIT_VERSION,
            trial_boots: 0,
            flags: 0,
            reserved: 0,
            generation: generation.into(),
            image_len: image_len.into(),
            image_id: image_id.into(),
            image_generation: 0.into(),
            reserved2: 0.into(),
            record_crc: 0.into(),
        }
        .sealed()
    }

    /// The record with its CRC computed (after fields were changed).
    pub fn sealed(mut self) -> Self {
        self.record_crc = self.compute_crc().into();
        self
    }

    fn compute_crc(&self) -> u32 {
        let bytes = self.as_bytes();
        romfs_format::crc32::checksum(bytes.get(..COMMIT_LEN - 4).unwrap_or(&[]))
    }

    /// Parse and check a record (magic, a version this crate reads, CRC).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let r = CommitRecord::read_from_bytes(bytes.get(..COMMIT_LEN)?).ok()?;
        let version_known = matches!(r.version, COMMIT_VERSION | COMMIT_VERSION_1);
        (r.magic == COMMIT_MAGIC && version_known && r.record_crc.get() == r.compute_crc())
            .then_some(r)
    }
}

/// Where each area of a commit sector is, for a flash with `write_size`
/// byte write units and `erase_size` byte sectors (offsets from the
/// sector's start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitAreas {
    unit: usize,
    sector: usize,
}

/// `n` rounded up to a multiple of `to` (> 0), without a division: the
/// write size is a run-time value here, and Cortex-M0 has no divide
/// instruction (the library routine costs more code than this loop).
fn round_up(n: usize, to: usize) -> usize {
    let mut r = 0;
    while r < n {
        r += to;
    }
    r
}

impl CommitAreas {
    /// The areas of a commit sector of this geometry.
    pub fn new(write_size: usize, erase_size: usize) -> Self {
        CommitAreas {
            unit: write_size.max(1),
            sector: erase_size,
        }
    }

    /// Bytes of a log unit (the flash's write size).
    pub fn unit(&self) -> usize {
        self.unit
    }

    /// The commit record, padded to whole write units.
    pub fn record_len(&self) -> usize {
        round_up(COMMIT_LEN, self.unit)
    }

    /// Confirm unit `i` (< [`CONFIRM_UNITS`]).
    pub fn confirm_unit(&self, i: usize) -> usize {
        self.record_len() + i * self.unit
    }

    /// Boot unit `i` (< [`MAX_TRIAL_BOOTS`]).
    pub fn boot_unit(&self, i: usize) -> usize {
        self.confirm_unit(CONFIRM_UNITS) + i * self.unit
    }

    /// The record opening an update's progress log.
    pub fn resume_begin(&self) -> usize {
        self.boot_unit(MAX_TRIAL_BOOTS as usize)
    }

    /// Bytes of the opening record, padded to whole write units.
    pub fn resume_begin_len(&self) -> usize {
        round_up(RESUME_BEGIN_LEN, self.unit)
    }

    /// Progress unit `i`.
    pub fn progress_unit(&self, i: usize) -> usize {
        self.resume_begin() + self.resume_begin_len() + i * self.unit
    }

    /// How many progress units fit in the sector.
    pub fn progress_units(&self) -> usize {
        let (mut units, mut end) = (0, self.progress_unit(1));
        while end <= self.sector {
            units += 1;
            end += self.unit;
        }
        units
    }

    /// True when the sector holds the trial logs (confirm and boot units).
    pub fn has_trial_logs(&self) -> bool {
        self.resume_begin() <= self.sector
    }

    /// True when the sector holds a progress log of at least one unit.
    pub fn has_progress_log(&self) -> bool {
        self.progress_units() > 0
    }
}

/// What a log unit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Never programmed since the sector was erased.
    Blank,
    /// Programmed completely (all 0x00).
    Set,
    /// Anything else: a program cut short.
    Torn,
}

/// Read the log unit of `len` bytes at `at`.
pub fn read_unit<S: Source>(
    device: &mut S,
    at: usize,
    len: usize,
) -> Result<Unit, ReadError<S::Error>> {
    let (mut blank, mut set) = (true, true);
    romfs_format::source::visit(device, at, at + len, |piece| {
        blank &= piece.iter().all(|&b| b == 0xff);
        set &= piece.iter().all(|&b| b == 0);
        blank || set
    })?;
    Ok(match (blank, set) {
        (true, _) => Unit::Blank,
        (_, true) => Unit::Set,
        _ => Unit::Torn,
    })
}

/// Whether an image may be mounted, and for how long, before it is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Trial {
    /// Committed without a trial, or confirmed since.
    Confirmed,
    /// On trial: `used` of `allowed` boots have started.
    Pending {
        /// Boots started (each programmed a boot unit).
        used: u8,
        /// Boots allowed before it is given up.
        allowed: u8,
    },
    /// Every trial boot was used and it was never confirmed: mounting falls
    /// back to the other slot.
    Exhausted,
}

/// The trial state of the commit sector at `at` whose record allows
/// `allowed` trial boots.
pub fn read_trial<S: Source>(
    device: &mut S,
    at: usize,
    areas: &CommitAreas,
    allowed: u8,
) -> Result<Trial, ReadError<S::Error>> {
    if allowed == 0 || !areas.has_trial_logs() {
        return Ok(Trial::Confirmed);
    }
    for i in 0..CONFIRM_UNITS {
        if read_unit(device, at + areas.confirm_unit(i), areas.unit())? == Unit::Set {
            return Ok(Trial::Confirmed);
        }
    }
    let allowed = allowed.min(MAX_TRIAL_BOOTS);
    let mut used = 0;
    while used < allowed {
        // A torn boot unit counts: a cut during a boot still used it.
        if read_unit(device, at + areas.boot_unit(used as usize), areas.unit())? == Unit::Blank {
            break;
        }
        used += 1;
    }
    Ok(match used < allowed {
        true => Trial::Pending { used, allowed },
        false => Trial::Exhausted,
    })
}
