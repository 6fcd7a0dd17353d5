//! Two image slots (A/B) with a commit record each. See FORMAT.md (section 5).
//!
//! A slot is an erase-aligned region. The image starts at the slot's first
//! byte (so the slot is a plain ROMFS partition to any reader, MicroPython's
//! included); the slot's last sector is reserved for the commit record,
//! written after the image was streamed and verified. Mounting picks the
//! valid slot with the highest generation.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use romfs_format::source::{Erased, Stashed, SubSource};
use romfs_format::{decode_header, Header, ReadError, Reader, Source, MAX_HEADER_LEN};

use crate::commit::{read_trial, CommitAreas, FLAG_SIGNED};
pub use crate::commit::{
    CommitRecord, Trial, COMMIT_LEN, COMMIT_MAGIC, COMMIT_VERSION, COMMIT_VERSION_1,
};

use crate::buffered::{BufferedFlash, ReadStats};
use crate::partition::{Partition, Region};
use crate::reader::FlashFs;
use crate::{Error, LayoutError};

/// How much mounting checks before trusting a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Verify {
    /// The commit record (its CRC) and the image header. Enough for power
    /// cuts: a commit is only written after the image was read back and
    /// verified. Costs a few dozen bytes of reads.
    CommitOnly,
    /// Also the image's identity and checksum (catches later corruption);
    /// reads the whole image.
    Full,
}

/// Two slots in one flash device. Each slot's last sector holds its commit
/// record; the rest holds the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AbLayout {
    slots: [Region; 2],
    erase_size: u32,
    write_size: u32,
}

impl AbLayout {
    /// Two slots of a device with sectors of `erase_size` bytes and write
    /// units of `write_size` bytes (the commit sector's logs are made of
    /// write units).
    pub fn new(
        a: Region,
        b: Region,
        erase_size: usize,
        write_size: usize,
    ) -> Result<Self, LayoutError> {
        let e = u32::try_from(erase_size).map_err(|_| LayoutError::NotAligned)?;
        let w = u32::try_from(write_size).map_err(|_| LayoutError::Geometry)?;
        if w == 0 || e % w != 0 {
            return Err(LayoutError::Geometry);
        }
        if e == 0 || !a.is_aligned(erase_size) || !b.is_aligned(erase_size) {
            return Err(LayoutError::NotAligned);
        }
        if a.len < 2 * e || b.len < 2 * e {
            return Err(LayoutError::TooSmall);
        }
        if a.end().is_none() || b.end().is_none() {
            return Err(LayoutError::OutOfBounds);
        }
        if a.overlaps(&b) {
            return Err(LayoutError::Overlap);
        }
        Ok(AbLayout {
            slots: [a, b],
            erase_size: e,
            write_size: w,
        })
    }

    /// Two slots of a flash of type `F` (its sector and write sizes).
    pub fn for_flash<F: NorFlash>(a: Region, b: Region) -> Result<Self, LayoutError> {
        Self::new(a, b, F::ERASE_SIZE, F::WRITE_SIZE)
    }

    /// Slot `i` (0 = A, 1 = B), whole.
    pub fn slot(&self, i: usize) -> Region {
        self.slots[i & 1]
    }

    /// Where slot `i`'s image may go: the slot minus its commit sector.
    pub fn image_region(&self, i: usize) -> Region {
        let s = self.slot(i);
        Region::new(s.offset, s.len - self.erase_size)
    }

    /// Offset of slot `i`'s commit record (its last sector).
    pub fn commit_offset(&self, i: usize) -> u32 {
        let s = self.slot(i);
        s.offset + s.len - self.erase_size
    }

    /// Sector size.
    pub fn erase_size(&self) -> u32 {
        self.erase_size
    }

    /// Write unit size.
    pub fn write_size(&self) -> u32 {
        self.write_size
    }

    /// Where the areas of each commit sector are.
    pub fn commit_areas(&self) -> CommitAreas {
        CommitAreas::new(self.write_size as usize, self.erase_size as usize)
    }

    /// True when every slot lies within a device of `capacity` bytes.
    pub fn fits(&self, capacity: usize) -> bool {
        self.slots.iter().all(|s| s.fits(capacity))
    }
}

/// A valid slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotInfo {
    /// 0 for A, 1 for B.
    pub index: usize,
    /// The image's region: the slot minus the commit sector.
    pub region: Region,
    /// The commit's generation.
    pub generation: u32,
    /// Image length.
    pub image_len: u32,
    /// The image's identity as committed (see [`CommitRecord::image_id`]).
    pub image_id: u32,
    /// The signed manifest's anti-rollback generation (0 when unsigned).
    pub image_generation: u32,
    /// Installed from a verified signed manifest.
    pub signed: bool,
    /// Confirmed, or on trial.
    pub trial: Trial,
}

/// Slot `i`'s state, read from `device` (offset 0 = the layout's offset 0):
/// `Some` when it holds a committed, valid image.
pub fn slot_state<S: Source>(
    device: &mut S,
    layout: &AbLayout,
    i: usize,
    verify: Verify,
) -> Result<Option<SlotInfo>, ReadError<S::Error>> {
    // Read through one error type, so a firmware that reads slots from
    // both mapped memory and a flash driver carries one copy of this code.
    let mut erased = Erased::new(device);
    let state = read_slot(&mut erased, layout, i, verify);
    erased.restore(state)
}

type Device<'d> = dyn Source<Error = Stashed> + 'd;

fn read_slot(
    device: &mut Device<'_>,
    layout: &AbLayout,
    i: usize,
    verify: Verify,
) -> Result<Option<SlotInfo>, ReadError<Stashed>> {
    if !layout.fits(device.len()) {
        return Ok(None);
    }
    let mut raw = [0u8; COMMIT_LEN];
    device.read_exact_at(layout.commit_offset(i) as usize, &mut raw)?;
    let Some(rec) = CommitRecord::parse(&raw) else {
        return Ok(None);
    };
    let region = layout.image_region(i);
    let len = rec.image_len.get();
    if len < 4 || len > region.len {
        return Ok(None);
    }
    // The slot must start with a header declaring exactly the committed length.
    let mut head = [0u8; MAX_HEADER_LEN];
    let head = &mut head[..MAX_HEADER_LEN.min(len as usize)];
    device.read_exact_at(region.offset as usize, head)?;
    let header = match decode_header(&mut &head[..]) {
        Ok(declared) if declared.image_len() == u64::from(len) => Header {
            payload_offset: declared.payload_offset,
            end: len as usize,
        },
        _ => return Ok(None),
    };
    if verify == Verify::Full && !identity_matches(device, region, header, &rec)? {
        return Ok(None);
    }
    let commit = layout.commit_offset(i) as usize;
    let trial = read_trial(
        &mut &mut *device,
        commit,
        &layout.commit_areas(),
        rec.trial_boots,
    )?;
    Ok(Some(SlotInfo {
        index: i & 1,
        region,
        generation: rec.generation.get(),
        image_len: len,
        image_id: rec.image_id.get(),
        image_generation: rec.image_generation.get(),
        signed: rec.flags & FLAG_SIGNED != 0,
        trial,
    }))
}

/// True when the image in `region`, whose header is `header`, is intact
/// and the one `rec` committed.
fn identity_matches(
    device: &mut Device<'_>,
    region: Region,
    header: Header,
    rec: &CommitRecord,
) -> Result<bool, ReadError<Stashed>> {
    let len = header.end;
    let slot = SubSource::new(device, region.offset as usize, len);
    let mut image = Reader::with_header(slot, header);
    let id = rec.image_id.get();
    // Version 1 committed the CRC of the whole image; version 2 the
    // identity, which for a checksummed image is its stored checksum, so
    // one CRC pass checks both that and the image's own integrity.
    match image.stored_checksum()? {
        Some((end, stored)) if rec.version != COMMIT_VERSION_1 => {
            Ok(stored == id && image.crc32(0, end - 4)? == stored)
        }
        _ => Ok(image.crc32(0, len)? == id),
    }
}

/// The slot to mount of two slot states: the newest whose trial is not
/// exhausted (A on a tie, which commits never produce); if every valid slot
/// is an exhausted trial, the newest of them (running it beats having no
/// image).
pub fn newest(states: [Option<SlotInfo>; 2]) -> Option<SlotInfo> {
    let rank = |s: &SlotInfo| (s.trial != Trial::Exhausted, s.generation);
    match states {
        [Some(a), Some(b)] => Some(if rank(&b) > rank(&a) { b } else { a }),
        [a, b] => a.or(b),
    }
}

/// The slot to mount: the newest valid one.
pub fn select<S: Source>(
    device: &mut S,
    layout: &AbLayout,
    verify: Verify,
) -> Result<Option<SlotInfo>, ReadError<S::Error>> {
    let a = slot_state(device, layout, 0, verify)?;
    let b = slot_state(device, layout, 1, verify)?;
    Ok(newest([a, b]))
}

/// Mount the newest valid slot of a (non-mapped) flash device with an
/// `N`-byte buffer. Choosing the slot reads through a transient `N`-byte
/// stack buffer, and those reads are counted in the file system's
/// [`FlashFs::stats`]. (With trial boots, call [`boot`](crate::boot::boot)
/// first and mount its slot with [`mount_slot`].)
#[allow(clippy::type_complexity)]
pub fn mount_ab<F: ReadNorFlash, const N: usize>(
    mut flash: F,
    layout: &AbLayout,
    verify: Verify,
) -> Result<(SlotInfo, FlashFs<Partition<F>, N>), Error<F::Error>> {
    let mut device = BufferedFlash::new(&mut flash, [0u8; N]);
    if !device.buffer_fits() {
        return Err(Error::BufferTooSmall {
            needed: F::READ_SIZE,
        });
    }
    let info = select(&mut device, layout, verify)?.ok_or(Error::NoImage)?;
    let stats: ReadStats = device.stats();
    let fs = mount_counted(flash, &info, stats)?;
    Ok((info, fs))
}

/// Mount the image of `slot` (from [`select`] or [`boot`](crate::boot::boot))
/// with an `N`-byte buffer.
pub fn mount_slot<F: ReadNorFlash, const N: usize>(
    flash: F,
    slot: &SlotInfo,
) -> Result<FlashFs<Partition<F>, N>, Error<F::Error>> {
    mount_counted(flash, slot, ReadStats::default())
}

fn mount_counted<F: ReadNorFlash, const N: usize>(
    flash: F,
    slot: &SlotInfo,
    earlier: ReadStats,
) -> Result<FlashFs<Partition<F>, N>, Error<F::Error>> {
    let part = Partition::new_read_only(flash, slot.region)?;
    FlashFs::mount_counted(part, earlier).map_err(Error::flatten)
}
