//! Flash devices for the firmware: [`RamNorFlash`], a NOR flash in RAM
//! that enforces NOR rules, and [`ReadFlash`], read-only flash over bytes
//! that are not mapped for the reader (it must go through `read`).
//!
//! Both refuse what a real part would refuse: a read, write or erase that
//! is misaligned to `READ_SIZE`, `WRITE_SIZE` or `ERASE_SIZE`, or outside
//! the device. On top, [`RamNorFlash`] refuses a write that would have to
//! set a bit (only an erase sets bits) or program a write unit twice
//! between erases, and any change inside a protected region.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Why a flash operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// The offset or length is not a multiple of the operation's size.
    NotAligned {
        /// The offset asked for.
        offset: u32,
        /// The length asked for.
        len: u32,
    },
    /// The operation leaves the device.
    OutOfBounds {
        /// The offset asked for.
        offset: u32,
        /// The length asked for.
        len: u32,
    },
    /// A write would have to turn a 0 bit into 1.
    SetsBits {
        /// The byte that would need it.
        offset: u32,
    },
    /// A write unit programmed twice without an erase in between.
    DoubleWrite {
        /// The unit's offset.
        offset: u32,
    },
    /// A write or erase touched the protected region.
    Protected {
        /// The offset asked for.
        offset: u32,
    },
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// Operation counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Read operations.
    pub reads: u32,
    /// Erase operations.
    pub erases: u32,
    /// Write operations.
    pub writes: u32,
}

fn check(offset: u32, len: usize, unit: usize, capacity: usize) -> Result<(), FlashError> {
    let len32 = len as u32;
    if unit == 0 || !(offset as usize).is_multiple_of(unit) || !len.is_multiple_of(unit) {
        return Err(FlashError::NotAligned { offset, len: len32 });
    }
    match (offset as usize).checked_add(len) {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(FlashError::OutOfBounds { offset, len: len32 }),
    }
}

/// Read-only flash, read in `R`-byte units: `bytes` followed by erased
/// bytes up to the next multiple of `R` (a real part's capacity is one).
#[derive(Debug)]
pub struct ReadFlash<'a, const R: usize> {
    bytes: &'a [u8],
    capacity: usize,
    counts: Counts,
}

impl<'a, const R: usize> ReadFlash<'a, R> {
    /// Flash holding `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        ReadFlash {
            bytes,
            capacity: bytes.len().div_ceil(R.max(1)) * R,
            counts: Counts::default(),
        }
    }

    /// What was done so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

impl<const R: usize> ErrorType for ReadFlash<'_, R> {
    type Error = FlashError;
}

impl<const R: usize> ReadNorFlash for ReadFlash<'_, R> {
    const READ_SIZE: usize = R;

    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), FlashError> {
        check(offset, out.len(), R, self.capacity)?;
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.bytes.get(offset as usize + i).copied().unwrap_or(0xff);
        }
        self.counts.reads += 1;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

/// NOR flash in RAM with `R`-byte reads, `W`-byte writes and `E`-byte
/// sectors. `programmed` has one bit per write unit.
#[derive(Debug)]
pub struct RamNorFlash<'a, const R: usize, const W: usize, const E: usize> {
    bytes: &'a mut [u8],
    programmed: &'a mut [u8],
    protected: Option<(u32, u32)>,
    counts: Counts,
}

impl<'a, const R: usize, const W: usize, const E: usize> RamNorFlash<'a, R, W, E> {
    /// A device over `bytes` (a whole number of sectors), erased.
    /// `programmed` must hold a bit per write unit; `None` when the sizes
    /// do not fit together.
    pub fn new(bytes: &'a mut [u8], programmed: &'a mut [u8]) -> Option<Self> {
        if E == 0
            || W == 0
            || R == 0
            || !E.is_multiple_of(W)
            || !E.is_multiple_of(R)
            || !bytes.len().is_multiple_of(E)
        {
            return None;
        }
        if programmed.len() * 8 < bytes.len() / W {
            return None;
        }
        let mut flash = RamNorFlash {
            bytes,
            programmed,
            protected: None,
            counts: Counts::default(),
        };
        flash.erase_all();
        Some(flash)
    }

    /// Erase everything and forget the counts and the protection.
    pub fn erase_all(&mut self) {
        self.bytes.fill(0xff);
        self.programmed.fill(0);
        self.protected = None;
        self.counts = Counts::default();
    }

    /// The contents, as a memory-mapped part would show them.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    /// Change bytes behind the driver's back (a corruption in the field).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
    }

    /// Refuse every write and erase that touches `offset..offset + len`
    /// (`None`: protect nothing).
    pub fn protect(&mut self, region: Option<(u32, u32)>) {
        self.protected = region;
    }

    /// What was done so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    fn check_protected(&self, offset: u32, len: usize) -> Result<(), FlashError> {
        if let Some((start, plen)) = self.protected {
            let (a0, a1) = (offset as u64, offset as u64 + len as u64);
            let (b0, b1) = (start as u64, start as u64 + plen as u64);
            if a0 < b1 && b0 < a1 {
                return Err(FlashError::Protected { offset });
            }
        }
        Ok(())
    }

    fn unit_programmed(&self, unit: usize) -> bool {
        self.programmed[unit / 8] & (1 << (unit % 8)) != 0
    }
}

impl<const R: usize, const W: usize, const E: usize> ErrorType for RamNorFlash<'_, R, W, E> {
    type Error = FlashError;
}

impl<const R: usize, const W: usize, const E: usize> ReadNorFlash for RamNorFlash<'_, R, W, E> {
    const READ_SIZE: usize = R;

    fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), FlashError> {
        check(offset, out.len(), R, self.bytes.len())?;
        let start = offset as usize;
        out.copy_from_slice(&self.bytes[start..start + out.len()]);
        self.counts.reads += 1;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl<const R: usize, const W: usize, const E: usize> NorFlash for RamNorFlash<'_, R, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = to.checked_sub(from).ok_or(FlashError::OutOfBounds {
            offset: from,
            len: 0,
        })? as usize;
        check(from, len, E, self.bytes.len())?;
        self.check_protected(from, len)?;
        let start = from as usize;
        self.bytes[start..start + len].fill(0xff);
        for unit in start / W..(start + len) / W {
            self.programmed[unit / 8] &= !(1 << (unit % 8));
        }
        self.counts.erases += 1;
        Ok(())
    }

    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        check(offset, data.len(), W, self.bytes.len())?;
        self.check_protected(offset, data.len())?;
        let start = offset as usize;
        for unit in start / W..(start + data.len()) / W {
            if self.unit_programmed(unit) {
                return Err(FlashError::DoubleWrite {
                    offset: (unit * W) as u32,
                });
            }
        }
        for (i, (&old, &new)) in self.bytes[start..].iter().zip(data).enumerate() {
            if old & new != new {
                return Err(FlashError::SetsBits {
                    offset: offset + i as u32,
                });
            }
        }
        self.bytes[start..start + data.len()].copy_from_slice(data);
        for unit in start / W..(start + data.len()) / W {
            self.programmed[unit / 8] |= 1 << (unit % 8);
        }
        self.counts.writes += 1;
        Ok(())
    }
}
