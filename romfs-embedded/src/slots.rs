//! Two image slots (A/B) with a commit record each. See FORMAT.md (section 5).
//!
//! A slot is an erase-aligned region. The image starts at the slot's first
//! byte (so the slot is a plain ROMFS partition to any reader, MicroPython's
//! included); the slot's last sector is reserved for the commit record,
//! written after the image was streamed and verified. Mounting picks the
//! valid slot with the highest generation.

use embedded_storage::nor_flash::ReadNorFlash;
use romfs_format::source::SubSource;
use romfs_format::{decode_header, Checksum, ReadError, Reader, Source, MAX_HEADER_LEN};
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::buffered::{BufferedFlash, ReadStats};
use crate::partition::{Partition, Region};
use crate::reader::FlashFs;
use crate::{Error, LayoutError};

/// First bytes of a commit record.
pub const COMMIT_MAGIC: [u8; 4] = *b"RFSc";
/// The commit record version this crate writes.
pub const COMMIT_VERSION: u8 = 2;
/// The first version, still read: its `image_id` field holds the CRC-32 of
/// the whole image.
pub const COMMIT_VERSION_1: u8 = 1;
/// Size of a commit record in bytes.
pub const COMMIT_LEN: usize = core::mem::size_of::<CommitRecord>();

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
    /// Zero.
    pub reserved: [u8; 3],
    /// Higher is newer; each commit uses the highest valid one plus 1.
    pub generation: U32,
    /// Length of the image at the slot's start, in bytes.
    pub image_len: U32,
    /// The image's identity ([`romfs_format::Reader::identity`]); version 1:
    /// the CRC-32 of the whole image.
    pub image_id: U32,
    /// Zero (reserved for flags).
    pub flags: U32,
    /// Zero.
    pub reserved2: U32,
    /// CRC32 of the 28 bytes before this field.
    pub record_crc: U32,
}

impl CommitRecord {
    /// A record for an image.
    pub fn new(generation: u32, image_len: u32, image_id: u32) -> Self {
        let mut r = CommitRecord {
            magic: COMMIT_MAGIC,
            version: COMMIT_VERSION,
            reserved: [0; 3],
            generation: generation.into(),
            image_len: image_len.into(),
            image_id: image_id.into(),
            flags: 0.into(),
            reserved2: 0.into(),
            record_crc: 0.into(),
        };
        r.record_crc = r.compute_crc().into();
        r
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
}

impl AbLayout {
    /// Two slots of a device with sectors of `erase_size` bytes.
    pub fn new(a: Region, b: Region, erase_size: usize) -> Result<Self, LayoutError> {
        let e = u32::try_from(erase_size).map_err(|_| LayoutError::NotAligned)?;
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
        })
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
}

/// Slot `i`'s state, read from `device` (offset 0 = the layout's offset 0):
/// `Some` when it holds a committed, valid image.
pub fn slot_state<S: Source>(
    device: &mut S,
    layout: &AbLayout,
    i: usize,
    verify: Verify,
) -> Result<Option<SlotInfo>, ReadError<S::Error>> {
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
    match decode_header(&mut &head[..]) {
        Ok(declared) if declared.image_len() == u64::from(len) => {}
        _ => return Ok(None),
    }
    if verify == Verify::Full && !identity_matches(device, region, &rec)? {
        return Ok(None);
    }
    Ok(Some(SlotInfo {
        index: i & 1,
        region,
        generation: rec.generation.get(),
        image_len: len,
        image_id: rec.image_id.get(),
    }))
}

/// True when the image in `region` is intact and the one `rec` committed.
fn identity_matches<S: Source>(
    device: &mut S,
    region: Region,
    rec: &CommitRecord,
) -> Result<bool, ReadError<S::Error>> {
    let len = rec.image_len.get() as usize;
    let slot = SubSource::new(device, region.offset as usize, len);
    let mut image = match Reader::new(slot) {
        Ok(image) => image,
        Err(ReadError::Format(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    if rec.version == COMMIT_VERSION_1 {
        return Ok(image.crc32(0, len)? == rec.image_id.get());
    }
    let intact = !matches!(image.checksum()?, Checksum::Mismatch { .. });
    Ok(intact && image.identity()? == rec.image_id.get())
}

/// The newer of two slot states (A on a tie, which commits never produce).
pub fn newest(states: [Option<SlotInfo>; 2]) -> Option<SlotInfo> {
    match states {
        [Some(a), Some(b)] => Some(if b.generation > a.generation { b } else { a }),
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
/// [`FlashFs::stats`].
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
    let part = Partition::new_read_only(flash, info.region)?;
    let fs = FlashFs::mount_counted(part, stats).map_err(Error::flatten)?;
    Ok((info, fs))
}
