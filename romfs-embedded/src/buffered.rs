//! A flash device read through one buffer: the [`Source`] that every
//! non-mapped read of this crate goes through (mounting, slot selection,
//! updates), so every flash read is `READ_SIZE`-aligned and counted.

use embedded_storage::nor_flash::ReadNorFlash;
use romfs_format::{ReadError, Source};

/// Counts of flash reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReadStats {
    /// Read operations issued to the flash.
    pub reads: u64,
    /// Bytes those operations transferred.
    pub bytes: u64,
}

impl core::ops::AddAssign for ReadStats {
    fn add_assign(&mut self, other: ReadStats) {
        self.reads += other.reads;
        self.bytes += other.bytes;
    }
}

/// A [`ReadNorFlash`] seen as a [`Source`] through the buffer `B` (an owned
/// array or a borrowed slice). A window is one aligned read of as much of
/// the buffer as fits; larger aligned ranges are read straight into the
/// caller's memory.
#[derive(Debug)]
pub struct BufferedFlash<F, B> {
    flash: F,
    buf: B,
    win_start: usize,
    win_len: usize,
    stats: ReadStats,
}

impl<F: ReadNorFlash, B: AsRef<[u8]> + AsMut<[u8]>> BufferedFlash<F, B> {
    /// Read `flash` through `buf`, which should hold at least `READ_SIZE`
    /// bytes (a smaller one reads nothing: every window is empty).
    pub fn new(flash: F, buf: B) -> Self {
        BufferedFlash {
            flash,
            buf,
            win_start: 0,
            win_len: 0,
            stats: ReadStats::default(),
        }
    }

    /// True when the buffer can hold a `READ_SIZE` unit.
    pub fn buffer_fits(&self) -> bool {
        self.buf.as_ref().len() >= F::READ_SIZE.max(1)
    }

    /// Reads so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Count `stats` as reads of this source (reads made before it existed).
    pub fn add_stats(&mut self, stats: ReadStats) {
        self.stats += stats;
    }

    /// Reset the read counters.
    pub fn reset_stats(&mut self) {
        self.stats = ReadStats::default();
    }

    /// Forget the buffered window (the next access reads flash again).
    pub fn invalidate(&mut self) {
        self.win_len = 0;
    }

    /// The flash.
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// The flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    fn read(&mut self, start: usize, out: &mut [u8]) -> Result<(), F::Error> {
        // `start < capacity`, and embedded-storage capacities fit its u32 offsets.
        self.flash.read(start as u32, out)?;
        self.stats.reads += 1;
        self.stats.bytes += out.len() as u64;
        Ok(())
    }
}

impl<F: ReadNorFlash, B: AsRef<[u8]> + AsMut<[u8]>> Source for BufferedFlash<F, B> {
    type Error = F::Error;

    fn len(&self) -> usize {
        self.flash.capacity().min(u32::MAX as usize)
    }

    fn window(&mut self, pos: usize) -> Result<&[u8], F::Error> {
        if pos.wrapping_sub(self.win_start) >= self.win_len {
            let rs = F::READ_SIZE.max(1);
            let start = pos - pos % rs;
            // Whole READ_SIZE units only: a flash whose capacity is not a
            // multiple of READ_SIZE cannot read its last partial unit.
            let n = self
                .buf
                .as_ref()
                .len()
                .min(self.len().saturating_sub(start));
            let n = n - n % rs;
            self.win_len = 0;
            if n == 0 || pos - start >= n {
                return Ok(&[]);
            }
            let dst = &mut self.buf.as_mut()[..n];
            self.flash.read(start as u32, dst)?;
            self.stats.reads += 1;
            self.stats.bytes += n as u64;
            self.win_start = start;
            self.win_len = n;
        }
        let at = pos - self.win_start;
        Ok(&self.buf.as_ref()[at..self.win_len])
    }

    fn read_exact_at(&mut self, pos: usize, out: &mut [u8]) -> Result<(), ReadError<F::Error>> {
        let rs = F::READ_SIZE.max(1);
        let mut done = 0;
        while done < out.len() {
            let at = pos + done;
            let left = out.len() - done;
            let in_window = at.wrapping_sub(self.win_start) < self.win_len;
            let fits = at.checked_add(left).is_some_and(|end| end <= self.len());
            if !in_window && fits && at.is_multiple_of(rs) && left >= self.buf.as_ref().len() {
                // Large and aligned: straight into the caller's memory.
                let n = left - left % rs;
                self.read(at, &mut out[done..done + n])
                    .map_err(ReadError::Source)?;
                done += n;
                continue;
            }
            let w = self.window(at).map_err(ReadError::Source)?;
            if w.is_empty() {
                let available = self.len() as u64;
                return Err(ReadError::Format(romfs_format::Error {
                    kind: romfs_format::ErrorKind::ImagePastEnd {
                        declared: at as u64 + 1,
                        available,
                    },
                    offset: at,
                }));
            }
            let n = w.len().min(left);
            out[done..done + n].copy_from_slice(&w[..n]);
            done += n;
        }
        Ok(())
    }
}
