//! A partition: a region (offset, length) of a flash device, itself usable
//! as a flash device whose addresses start at 0.

use embedded_storage::nor_flash::{ErrorType, MultiwriteNorFlash, NorFlash, ReadNorFlash};

use crate::{FlashError, LayoutError};

/// A byte range of a flash device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Region {
    /// First byte, from the start of the device.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

impl Region {
    /// The region `offset..offset + len`.
    pub const fn new(offset: u32, len: u32) -> Self {
        Region { offset, len }
    }

    /// One past the last byte, or `None` if that overflows `u32`.
    pub const fn end(&self) -> Option<u32> {
        self.offset.checked_add(self.len)
    }

    /// True when both ends are multiples of `align` (a non-zero size).
    pub fn is_aligned(&self, align: usize) -> bool {
        let a = align as u64;
        a != 0 && (self.offset as u64).is_multiple_of(a) && (self.len as u64).is_multiple_of(a)
    }

    /// True when the two regions share at least one byte.
    pub fn overlaps(&self, other: &Region) -> bool {
        let (a0, a1) = (self.offset as u64, self.offset as u64 + self.len as u64);
        let (b0, b1) = (other.offset as u64, other.offset as u64 + other.len as u64);
        a0 < b1 && b0 < a1
    }

    /// True when the region lies within a device of `capacity` bytes.
    pub fn fits(&self, capacity: usize) -> bool {
        self.offset as u64 + self.len as u64 <= capacity as u64
    }
}

/// A region of a flash device seen as a device of its own: address 0 is the
/// region's first byte, and nothing outside the region can be read, written
/// or erased through it. Several partitions (slots, other data) can share
/// one chip by wrapping `&mut` references to it in turn.
#[derive(Debug)]
pub struct Partition<F> {
    flash: F,
    region: Region,
}

impl<F: ReadNorFlash> Partition<F> {
    /// A read-only view of `region`, which must start and end on
    /// `READ_SIZE` boundaries (so every read through it is aligned on the
    /// device too).
    pub fn new_read_only(flash: F, region: Region) -> Result<Self, LayoutError> {
        if !region.fits(flash.capacity()) {
            return Err(LayoutError::OutOfBounds);
        }
        if !region.is_aligned(F::READ_SIZE.max(1)) {
            return Err(LayoutError::NotAligned);
        }
        Ok(Partition { flash, region })
    }

    /// The region within the device.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The device back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The device.
    pub fn inner(&mut self) -> &mut F {
        &mut self.flash
    }

    fn translate(&self, offset: u32, len: usize) -> Result<u32, FlashError<F::Error>> {
        let end = (offset as u64)
            .checked_add(len as u64)
            .ok_or(FlashError::OutOfBounds)?;
        if end > self.region.len as u64 {
            return Err(FlashError::OutOfBounds);
        }
        self.region
            .offset
            .checked_add(offset)
            .ok_or(FlashError::OutOfBounds)
    }
}

impl<F: NorFlash> Partition<F> {
    /// A writable partition: `region` must be erase-aligned and inside the device.
    pub fn new(flash: F, region: Region) -> Result<Self, LayoutError> {
        if !region.is_aligned(F::ERASE_SIZE) {
            return Err(LayoutError::NotAligned);
        }
        Self::new_read_only(flash, region)
    }
}

impl<F: ReadNorFlash> ErrorType for Partition<F> {
    type Error = FlashError<F::Error>;
}

impl<F: ReadNorFlash> ReadNorFlash for Partition<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.translate(offset, bytes.len())?;
        self.flash.read(at, bytes).map_err(FlashError::Device)
    }

    fn capacity(&self) -> usize {
        self.region.len as usize
    }
}

impl<F: NorFlash> NorFlash for Partition<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to {
            return Err(FlashError::OutOfBounds);
        }
        let start = self.translate(from, (to - from) as usize)?;
        let end = start
            .checked_add(to - from)
            .ok_or(FlashError::OutOfBounds)?;
        self.flash.erase(start, end).map_err(FlashError::Device)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.translate(offset, bytes.len())?;
        self.flash.write(at, bytes).map_err(FlashError::Device)
    }
}

impl<F: MultiwriteNorFlash> MultiwriteNorFlash for Partition<F> {}
