//! The updater's flash operations, each counted in its stats: reading
//! through a stack buffer, comparing, erasing, programming, invalidating
//! the target, and reading the image back.

use embedded_storage::nor_flash::NorFlash;
use romfs_format::crc32::Hasher;

use super::{round_up, Target, UpdateError, Updater, SCRATCH};
use crate::buffered::BufferedFlash;

impl<F: NorFlash> Updater<'_, F> {
    /// Visit the flash bytes `addr..addr + len` through a stack buffer
    /// (reads counted), until `visit` returns false. One copy of the flash
    /// reading loop serves every caller (`visit` is not generic).
    pub(super) fn visit_flash(
        &mut self,
        addr: u32,
        len: usize,
        visit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<bool, UpdateError<F::Error>> {
        // Borrowed, as the caller's buffer is when slots are read: one
        // copy of the buffered reader's code serves both.
        let mut scratch = [0u8; SCRATCH];
        let mut source = BufferedFlash::new(&mut self.flash, &mut scratch[..]);
        let start = addr as usize;
        let done = romfs_format::source::visit(&mut source, start, start + len, visit);
        self.reads += source.stats();
        Ok(done?)
    }

    /// Compare the `len` flash bytes at `addr` with `buf[buf_at..buf_at + n]`
    /// (`n <= len`; the rest is not compared). Returns (equal, all erased).
    pub(super) fn compare(
        &mut self,
        addr: u32,
        buf_at: usize,
        n: usize,
        len: usize,
    ) -> Result<(bool, bool), UpdateError<F::Error>> {
        let data = core::mem::take(&mut self.buf);
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
        self.buf = data;
        result?;
        Ok((equal, erased))
    }

    pub(super) fn all_erased(
        &mut self,
        addr: u32,
        len: usize,
    ) -> Result<bool, UpdateError<F::Error>> {
        Ok(self.compare(addr, 0, 0, len)?.1)
    }

    pub(super) fn erase(&mut self, addr: u32) -> Result<(), UpdateError<F::Error>> {
        self.flash
            .erase(addr, addr + F::ERASE_SIZE as u32)
            .map_err(UpdateError::Flash)?;
        self.stats.erases += 1;
        Ok(())
    }

    /// Program `bytes` (whole write units) at `addr`, counted.
    #[cfg(feature = "signed")]
    pub(super) fn write_bytes(
        &mut self,
        addr: u32,
        bytes: &[u8],
    ) -> Result<(), UpdateError<F::Error>> {
        self.flash.write(addr, bytes).map_err(UpdateError::Flash)?;
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Program `buf[at..at + len]` at `addr`, leaving runs of all-0xFF
    /// write units of at least 32 bytes unprogrammed (so an all-0xFF unit
    /// reads as, and is, erased; short gaps are programmed along with their
    /// neighbours to keep the number of operations low).
    pub(super) fn program(
        &mut self,
        addr: u32,
        at: usize,
        len: usize,
    ) -> Result<(), UpdateError<F::Error>> {
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
    #[inline]
    pub(super) fn invalidate(&mut self) -> Result<(), UpdateError<F::Error>> {
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

    /// Copy the image bytes at `offset` into `out`: from flash, or from the
    /// first bytes single-slot mode still holds in RAM.
    #[cfg(feature = "signed")]
    pub(super) fn read_image(
        &mut self,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), UpdateError<F::Error>> {
        let (held, held_at) = (self.staging.held, self.staging.chunk);
        for (i, byte) in out.iter_mut().enumerate() {
            let at = offset + i;
            if at < held {
                *byte = self.buf[held_at + at];
            }
        }
        let from = offset.max(held);
        let end = offset + out.len();
        if from < end {
            let mut pos = from - offset;
            let start = self.region.offset + from as u32;
            self.visit_flash(start, end - from, &mut |piece| {
                out[pos..pos + piece.len()].copy_from_slice(piece);
                pos += piece.len();
                true
            })?;
        }
        Ok(())
    }

    /// Resuming: read sector `sector` of the target back, a buffer at a
    /// time, and follow it as if it had just streamed in.
    #[cfg(feature = "signed")]
    pub(super) fn replay_sector(&mut self, sector: u32) -> Result<(), UpdateError<F::Error>> {
        let e = F::ERASE_SIZE;
        let sector_addr = self.region.offset + sector * e as u32;
        let mut piece_at = 0;
        while piece_at < e {
            let len = self.staging.chunk.min(e - piece_at);
            let data = core::mem::take(&mut self.buf);
            let mut pos = 0;
            let read = self.visit_flash(sector_addr + piece_at as u32, len, &mut |piece| {
                data[pos..pos + piece.len()].copy_from_slice(piece);
                pos += piece.len();
                true
            });
            self.buf = data;
            read?;
            let mut done = 0;
            while done < len {
                let had_header = self.received.total().is_some();
                let at = self.received.position();
                let n = self.received.scanner.feed(&self.buf[done..len])?;
                self.received.hash(&self.buf[done..done + n], at);
                if !had_header && self.received.total().is_some() {
                    self.header_arrived()?;
                }
                done += n;
            }
            piece_at += len;
        }
        self.staged_at = self.received.position();
        Ok(())
    }

    /// CRC32 of the image as it now is in flash; the first `skip` bytes are
    /// taken from `buf[skip_at..]` instead (the held-back header).
    pub(super) fn readback_crc(
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
