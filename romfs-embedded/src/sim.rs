//! A simulated NOR flash for tests (feature `std`).
//!
//! It enforces NOR rules: erase sets a whole sector to 0xFF; a write can only
//! clear bits; a write unit may be programmed once between erases (unless
//! multi-write is allowed); every access is checked for alignment and bounds.
//! It can lose power at any erase or write: the interrupted operation is left
//! partially applied as chosen by [`Partial`], and every later access fails
//! until [`SimFlash::reboot`]. It can mirror its contents to a file.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Errors of the simulated flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimError {
    /// Misaligned offset or length.
    NotAligned,
    /// Outside the device.
    OutOfBounds,
    /// A write unit programmed twice without an erase in between.
    DoubleWrite {
        /// Offset of the unit.
        offset: u32,
    },
    /// Power was cut (during this operation or before).
    PowerLost,
    /// The backing file failed.
    Io,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// How much of the interrupted operation lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partial {
    /// None of it.
    Nothing,
    /// The first `num/den` of its bytes, fully; the rest not at all.
    Prefix {
        /// Numerator.
        num: u32,
        /// Denominator.
        den: u32,
    },
    /// Each bit that the operation would change changes with probability
    /// 1/2 (a deterministic pseudo-random pattern from the seed).
    RandomBits(u64),
    /// All of it (but power is lost before the operation reports success).
    Everything,
}

/// Operation counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Read operations.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Erase operations.
    pub erases: u64,
    /// Sectors erased.
    pub sectors_erased: u64,
    /// Write operations.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// A NOR flash in memory with `R`-byte reads, `W`-byte writes and
/// `E`-byte sectors.
#[derive(Debug)]
pub struct SimFlash<const R: usize, const W: usize, const E: usize> {
    data: Vec<u8>,
    programmed: Vec<bool>,
    multiwrite: bool,
    ops: u64,
    cut: Option<(u64, Partial)>,
    dead: bool,
    stats: SimStats,
    file: Option<File>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<const R: usize, const W: usize, const E: usize> Clone for SimFlash<R, W, E> {
    /// A copy of the device's state (not mirrored to any file).
    fn clone(&self) -> Self {
        SimFlash {
            data: self.data.clone(),
            programmed: self.programmed.clone(),
            multiwrite: self.multiwrite,
            ops: self.ops,
            cut: self.cut,
            dead: self.dead,
            stats: self.stats,
            file: None,
        }
    }
}

impl<const R: usize, const W: usize, const E: usize> SimFlash<R, W, E> {
    /// An erased device of `capacity` bytes (a multiple of `E`).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_multiple_of(E) && E.is_multiple_of(W) && E.is_multiple_of(R),
            "bad simulated geometry"
        );
        SimFlash {
            data: vec![0xff; capacity],
            programmed: vec![false; capacity / W],
            multiwrite: false,
            ops: 0,
            cut: None,
            dead: false,
            stats: SimStats::default(),
            file: None,
        }
    }

    /// A device whose contents are mirrored to `path` after every change
    /// (created erased, or loaded if it exists with the right size).
    pub fn file_backed(path: &Path, capacity: usize) -> std::io::Result<Self> {
        let mut sim = Self::new(capacity);
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == capacity => {
                sim.data = bytes;
                sim.reboot();
            }
            _ => std::fs::write(path, &sim.data)?,
        }
        sim.file = Some(std::fs::OpenOptions::new().write(true).open(path)?);
        Ok(sim)
    }

    /// Allow programming a unit more than once (the result is the AND).
    pub fn allow_multiwrite(&mut self, allow: bool) {
        self.multiwrite = allow;
    }

    /// Lose power during the erase/write with index `op` (counting from 0
    /// over the device's life since the last [`reboot`](Self::reboot)),
    /// leaving it applied as `partial`.
    pub fn cut_power_at(&mut self, op: u64, partial: Partial) {
        self.cut = Some((op, partial));
    }

    /// Power back on: clears the cut, resets the operation counter, and
    /// treats every unit that reads all-0xFF as unprogrammed.
    pub fn reboot(&mut self) {
        self.cut = None;
        self.dead = false;
        self.ops = 0;
        for (u, p) in self.programmed.iter_mut().enumerate() {
            *p = self.data[u * W..(u + 1) * W].iter().any(|&b| b != 0xff);
        }
    }

    /// Erase and write operations since the last reboot.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// True once power has been cut.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Reset the counters.
    pub fn reset_stats(&mut self) {
        self.stats = SimStats::default();
    }

    /// The whole contents.
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    /// Overwrite the contents directly (no rules; for setting up tests).
    pub fn load(&mut self, offset: usize, bytes: &[u8]) {
        self.data[offset..offset + bytes.len()].copy_from_slice(bytes);
        self.reboot();
        self.sync(offset, bytes.len()).ok();
    }

    fn sync(&mut self, offset: usize, len: usize) -> Result<(), SimError> {
        if let Some(f) = self.file.as_mut() {
            f.seek(SeekFrom::Start(offset as u64))
                .map_err(|_| SimError::Io)?;
            f.write_all(&self.data[offset..offset + len])
                .map_err(|_| SimError::Io)?;
        }
        Ok(())
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<(usize, usize), SimError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(SimError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(SimError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(SimError::NotAligned);
        }
        Ok((start, end))
    }

    /// Count a mutating operation; `Some(partial)` if power dies during it.
    fn begin_op(&mut self) -> Result<Option<Partial>, SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        let op = self.ops;
        self.ops += 1;
        match self.cut {
            Some((at, partial)) if at == op => {
                self.dead = true;
                Ok(Some(partial))
            }
            _ => Ok(None),
        }
    }
}

impl<const R: usize, const W: usize, const E: usize> ErrorType for SimFlash<R, W, E> {
    type Error = SimError;
}

impl<const R: usize, const W: usize, const E: usize> ReadNorFlash for SimFlash<R, W, E> {
    const READ_SIZE: usize = R;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        let (start, end) = self.check(offset, bytes.len(), R)?;
        bytes.copy_from_slice(&self.data[start..end]);
        self.stats.reads += 1;
        self.stats.bytes_read += bytes.len() as u64;
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const R: usize, const W: usize, const E: usize> NorFlash for SimFlash<R, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        if from > to {
            return Err(SimError::OutOfBounds);
        }
        let (start, end) = self.check(from, (to - from) as usize, E)?;
        let partial = self.begin_op()?;
        let n = end - start;
        match partial {
            None | Some(Partial::Everything) => self.data[start..end].fill(0xff),
            Some(Partial::Nothing) => {}
            Some(Partial::Prefix { num, den }) => {
                let k = n * num as usize / den.max(1) as usize;
                self.data[start..start + k].fill(0xff);
            }
            Some(Partial::RandomBits(seed)) => {
                let mut s = seed;
                for b in &mut self.data[start..end] {
                    *b |= splitmix(&mut s) as u8;
                }
            }
        }
        for u in start / W..end / W {
            self.programmed[u] = false;
        }
        self.sync(start, n)?;
        if partial.is_some() {
            return Err(SimError::PowerLost);
        }
        self.stats.erases += 1;
        self.stats.sectors_erased += (n / E) as u64;
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let (start, end) = self.check(offset, bytes.len(), W)?;
        if !self.multiwrite {
            if let Some(u) = (start / W..end / W).find(|&u| self.programmed[u]) {
                return Err(SimError::DoubleWrite {
                    offset: (u * W) as u32,
                });
            }
        }
        let partial = self.begin_op()?;
        let n = end - start;
        let cut = match partial {
            None | Some(Partial::Everything) => n,
            Some(Partial::Nothing) => 0,
            Some(Partial::Prefix { num, den }) => n * num as usize / den.max(1) as usize,
            Some(Partial::RandomBits(_)) => n,
        };
        let mut s = match partial {
            Some(Partial::RandomBits(seed)) => Some(seed),
            _ => None,
        };
        for (i, &b) in bytes[..cut].iter().enumerate() {
            let cell = &mut self.data[start + i];
            match s.as_mut() {
                // Bits to clear land with probability 1/2.
                Some(st) => *cell &= b | splitmix(st) as u8,
                None => *cell &= b,
            }
        }
        for u in start / W..end / W {
            self.programmed[u] = true;
        }
        self.sync(start, n)?;
        if partial.is_some() {
            return Err(SimError::PowerLost);
        }
        self.stats.writes += 1;
        self.stats.bytes_written += n as u64;
        Ok(())
    }
}
