//! Two image slots (A/B) with a commit record each. See FORMAT.md (section 5).
//!
//! A slot is an erase-aligned region. The image starts at the slot's first
//! byte (so the slot is a plain ROMFS partition to any reader, MicroPython's
//! included); the slot's last sector is reserved for the commit record,
//! written after the image was streamed and verified. Mounting picks the
//! valid slot with the highest generation.

use embedded_storage::nor_flash::ReadNorFlash;
use romfs_format::HEADER;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::io::{self, ReadStats, VisitError};
use crate::partition::{Partition, Region};
use crate::reader::FlashFs;

/// First bytes of a commit record.
pub const COMMIT_MAGIC: [u8; 4] = *b"RFSc";
/// The commit record version this crate writes and reads.
pub const COMMIT_VERSION: u8 = 1;
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
    /// [`COMMIT_VERSION`].
    pub version: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Higher is newer; each commit uses the highest valid one plus 1.
    pub generation: U32,
    /// Length of the image at the slot's start, in bytes.
    pub image_len: U32,
    /// CRC32 (IEEE) of those bytes.
    pub image_crc: U32,
    /// Zero (reserved for flags).
    pub flags: U32,
    /// Zero.
    pub reserved2: U32,
    /// CRC32 of the 28 bytes before this field.
    pub record_crc: U32,
}

impl CommitRecord {
    /// A record for an image.
    pub fn new(generation: u32, image_len: u32, image_crc: u32) -> Self {
        let mut r = CommitRecord {
            magic: COMMIT_MAGIC,
            version: COMMIT_VERSION,
            reserved: [0; 3],
            generation: generation.into(),
            image_len: image_len.into(),
            image_crc: image_crc.into(),
            flags: 0.into(),
            reserved2: 0.into(),
            record_crc: 0.into(),
        };
        r.record_crc = r.compute_crc().into();
        r
    }

    fn compute_crc(&self) -> u32 {
        let bytes = self.as_bytes();
        romfs_format::ext::crc32(bytes.get(..COMMIT_LEN - 4).unwrap_or(&[]))
    }

    /// Parse and check a record (magic, version, CRC).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let r = CommitRecord::read_from_bytes(bytes.get(..COMMIT_LEN)?).ok()?;
        (r.magic == COMMIT_MAGIC
            && r.version == COMMIT_VERSION
            && r.record_crc.get() == r.compute_crc())
        .then_some(r)
    }
}

/// How much mounting checks before trusting a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The commit record (its CRC) and the image header. Enough for power
    /// cuts: a commit is only written after the image was read back and
    /// verified. Costs a few dozen bytes of reads.
    CommitOnly,
    /// Also the CRC32 of the whole image (catches later corruption); reads
    /// the whole image.
    Full,
}

/// Why an A/B layout is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// A slot is not erase-aligned.
    NotAligned,
    /// A slot is smaller than two sectors.
    TooSmall,
    /// The slots overlap.
    Overlap,
    /// A slot runs past the end of the device.
    OutOfBounds,
}

/// Two slots in one flash device. Each slot's last sector holds its commit
/// record; the rest holds the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub struct SlotInfo {
    /// 0 for A, 1 for B.
    pub index: usize,
    /// The image's region: the slot minus the commit sector.
    pub region: Region,
    /// The commit's generation.
    pub generation: u32,
    /// Image length.
    pub image_len: u32,
    /// Image CRC32.
    pub image_crc: u32,
}

/// Why scanning slots in flash failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanError<E> {
    /// The flash failed.
    Flash(E),
    /// The scratch buffer is smaller than `READ_SIZE` (or than a commit record).
    BufferTooSmall,
}

impl<E> From<VisitError<E>> for ScanError<E> {
    fn from(e: VisitError<E>) -> Self {
        match e {
            VisitError::Flash(e) => ScanError::Flash(e),
            _ => ScanError::BufferTooSmall,
        }
    }
}

/// Check that `head` (the first bytes of a slot) starts an image of exactly `len` bytes.
fn header_declares(head: &[u8], len: u32) -> bool {
    if head.get(..3) != Some(&HEADER[..]) {
        return false;
    }
    match romfs_format::varuint::decode(head, 3, head.len()) {
        Ok((payload, p)) => p as u64 + payload == len as u64,
        Err(_) => false,
    }
}

const HEAD_LEN: usize = 3 + romfs_format::varuint::MAX_ENCODED_LEN;

/// Slot `i`'s state, read from mapped bytes (`device` offset 0 = layout offset 0).
pub fn slot_mapped(device: &[u8], layout: &AbLayout, i: usize, verify: Verify) -> Option<SlotInfo> {
    let c = layout.commit_offset(i) as usize;
    let rec = CommitRecord::parse(device.get(c..c + COMMIT_LEN)?)?;
    let region = layout.image_region(i);
    let len = rec.image_len.get();
    if len < 4 || len > region.len {
        return None;
    }
    let start = region.offset as usize;
    let image = device.get(start..start + len as usize)?;
    if !header_declares(image.get(..HEAD_LEN.min(image.len()))?, len) {
        return None;
    }
    if verify == Verify::Full && romfs_format::ext::crc32(image) != rec.image_crc.get() {
        return None;
    }
    Some(SlotInfo {
        index: i & 1,
        region,
        generation: rec.generation.get(),
        image_len: len,
        image_crc: rec.image_crc.get(),
    })
}

/// Slot `i`'s state, read from a flash device through `scratch` (at least
/// `READ_SIZE` bytes; a larger one makes [`Verify::Full`] faster).
pub fn slot_flash<F: ReadNorFlash>(
    flash: &mut F,
    layout: &AbLayout,
    i: usize,
    verify: Verify,
    scratch: &mut [u8],
    stats: &mut ReadStats,
) -> Result<Option<SlotInfo>, ScanError<F::Error>> {
    if !layout.fits(flash.capacity()) {
        return Ok(None);
    }
    let mut raw = [0u8; COMMIT_LEN];
    io::read_into(flash, layout.commit_offset(i), &mut raw, scratch, stats)?;
    let Some(rec) = CommitRecord::parse(&raw) else {
        return Ok(None);
    };
    let region = layout.image_region(i);
    let len = rec.image_len.get();
    if len < 4 || len > region.len {
        return Ok(None);
    }
    let mut head = [0u8; HEAD_LEN];
    let n = HEAD_LEN.min(len as usize);
    io::read_into(flash, region.offset, &mut head[..n], scratch, stats)?;
    if !header_declares(&head[..n], len) {
        return Ok(None);
    }
    if verify == Verify::Full
        && io::crc(flash, region.offset, len, scratch, stats)? != rec.image_crc.get()
    {
        return Ok(None);
    }
    Ok(Some(SlotInfo {
        index: i & 1,
        region,
        generation: rec.generation.get(),
        image_len: len,
        image_crc: rec.image_crc.get(),
    }))
}

/// The newer of two slot states (A on a tie, which commits never produce).
pub fn newest(states: [Option<SlotInfo>; 2]) -> Option<SlotInfo> {
    match states {
        [Some(a), Some(b)] => Some(if b.generation > a.generation { b } else { a }),
        [a, b] => a.or(b),
    }
}

/// The slot to mount, from mapped bytes.
pub fn select_mapped(device: &[u8], layout: &AbLayout, verify: Verify) -> Option<SlotInfo> {
    newest([
        slot_mapped(device, layout, 0, verify),
        slot_mapped(device, layout, 1, verify),
    ])
}

/// The slot to mount, from a flash device.
pub fn select<F: ReadNorFlash>(
    flash: &mut F,
    layout: &AbLayout,
    verify: Verify,
    scratch: &mut [u8],
) -> Result<Option<SlotInfo>, ScanError<F::Error>> {
    let mut stats = ReadStats::default();
    let a = slot_flash(flash, layout, 0, verify, scratch, &mut stats)?;
    let b = slot_flash(flash, layout, 1, verify, scratch, &mut stats)?;
    Ok(newest([a, b]))
}

/// Why [`mount_ab`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountError<E> {
    /// No slot holds a valid image.
    NoImage,
    /// The flash failed.
    Flash(E),
    /// The chosen image is malformed.
    Format(romfs_format::Error),
    /// `N` is smaller than `READ_SIZE`.
    BufferTooSmall,
}

/// Mount the newest valid slot of a (non-mapped) flash device with an
/// `N`-byte buffer. Scanning the slots uses a transient `N`-byte stack
/// buffer as well.
#[allow(clippy::type_complexity)]
pub fn mount_ab<F: ReadNorFlash, const N: usize>(
    mut flash: F,
    layout: &AbLayout,
    verify: Verify,
) -> Result<(SlotInfo, FlashFs<Partition<F>, N>), MountError<F::Error>> {
    let mut scratch = [0u8; N];
    let info = match select(&mut flash, layout, verify, &mut scratch) {
        Ok(Some(info)) => info,
        Ok(None) => return Err(MountError::NoImage),
        Err(ScanError::Flash(e)) => return Err(MountError::Flash(e)),
        Err(ScanError::BufferTooSmall) => return Err(MountError::BufferTooSmall),
    };
    let part = Partition::new_read_only(flash, info.region).map_err(|_| MountError::NoImage)?;
    match FlashFs::mount(part) {
        Ok(fs) => Ok((info, fs)),
        Err(crate::Error::Format(e)) => Err(MountError::Format(e)),
        Err(crate::Error::Flash(crate::partition::PartitionError::Flash(e))) => {
            Err(MountError::Flash(e))
        }
        Err(crate::Error::Flash(_)) => Err(MountError::NoImage),
    }
}
