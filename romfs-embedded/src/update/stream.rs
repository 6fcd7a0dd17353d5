//! The stream into sectors: every byte is scanned and hashed as it
//! arrives, staged in the caller's buffer, and written when a piece of a
//! sector is complete.
//!
//! Per sector, the first piece decides: with whole sectors staged, the
//! sector is compared with the flash and skipped when equal; otherwise (and
//! when it differs) the target is invalidated first, the sector erased
//! unless blank, and every piece then programmed as it completes. A piece
//! never spans two sectors.

use embedded_storage::nor_flash::NorFlash;
use romfs_format::ErrorKind;

use super::{round_up, Report, UpdateError, Updater};

impl<F: NorFlash> Updater<'_, F> {
    /// Feed the next chunk of the image (any size, including empty).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UpdateError<F::Error>> {
        self.ended_on_error(|up| up.check_header_safe().and_then(|()| up.write_inner(chunk)))
    }

    /// Run `step`, ending the update if it fails: an updater kept after an
    /// error then answers [`UpdateError::Aborted`] rather than going on
    /// from a state the error left.
    #[inline(always)]
    pub(super) fn ended_on_error<T>(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<T, UpdateError<F::Error>>,
    ) -> Result<T, UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        let r = step(self);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Finish the update: check the length, the image's own checksum
    /// record and (if given) its identity, write the last sector, read
    /// everything back, and commit. `expected_id` is the identity
    /// ([`romfs_format::Reader::identity`], shown by `romfs info`) of the
    /// image the sender meant to send: a server knows it in advance.
    pub fn finish(mut self, expected_id: Option<u32>) -> Result<Report, UpdateError<F::Error>> {
        self.finish_in_place(expected_id)
    }

    /// [`finish`](Self::finish) without moving the updater: for an updater
    /// in a place of the caller's ([`begin_ab_in`](Self::begin_ab_in)), so
    /// that no copy of it is made. It ends the update whatever the outcome:
    /// later calls of `write` or `finish_in_place` return
    /// [`UpdateError::Aborted`].
    pub fn finish_in_place(
        &mut self,
        expected_id: Option<u32>,
    ) -> Result<Report, UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        self.failed = true;
        self.finish_checked(expected_id)
    }

    fn finish_checked(
        &mut self,
        expected_id: Option<u32>,
    ) -> Result<Report, UpdateError<F::Error>> {
        let total = match self.received.total() {
            Some(t) if self.received.scanner.is_complete() => t,
            image_len => {
                return Err(UpdateError::Truncated {
                    received: self.received.position(),
                    image_len,
                })
            }
        };
        let image_id = self
            .received
            .identity()
            .map_err(|(stored, computed)| UpdateError::ChecksumMismatch { stored, computed })?;
        if let Some(expected) = expected_id.filter(|&e| e != image_id) {
            return Err(UpdateError::WrongImage {
                expected,
                received: image_id,
            });
        }
        self.check_header_safe()?;
        let staged = self.staged_at;
        if staged < total {
            self.flush(staged, (total - staged) as usize)?;
        }
        #[cfg(feature = "signed")]
        if let Some(steps) = self.signed_steps {
            (steps.check_signature)(self, total)?;
        }
        let crc = self.received.crc.value();
        let finish = self.mode.finish;
        finish(self, total, crc, image_id)
    }

    pub(super) fn check_header_safe(&self) -> Result<(), UpdateError<F::Error>> {
        if self.require_header_safe && self.header_safe == Some(false) {
            return Err(UpdateError::HeaderNotSafe {
                write_size: F::WRITE_SIZE as u32,
            });
        }
        Ok(())
    }

    pub(super) fn write_inner(&mut self, mut data: &[u8]) -> Result<(), UpdateError<F::Error>> {
        while !data.is_empty() {
            let had_header = self.received.total().is_some();
            let at = self.received.position();
            let n = self.received.scanner.feed(data)?;
            let (piece, rest) = data.split_at(n);
            let header_complete = !had_header && self.received.total().is_some();
            self.received.hash(piece, at);
            self.stage(piece, at, header_complete)?;
            data = rest;
        }
        Ok(())
    }

    /// Check the declared length against the slot, and the header's
    /// safety. The header is in the buffer (it fits the first piece).
    pub(super) fn header_arrived(&mut self) -> Result<(), UpdateError<F::Error>> {
        let Some(declared) = self.received.scanner.declared() else {
            return Ok(());
        };
        if declared.payload_offset > self.staging.chunk {
            return Err(UpdateError::BadHeader(ErrorKind::VaruintOverlong));
        }
        #[cfg(feature = "signed")]
        self.check_declared_len(declared.image_len())?;
        if declared.image_len() > u64::from(self.region.len) {
            return Err(UpdateError::TooLarge {
                image_len: declared.image_len(),
                capacity: self.region.len,
            });
        }
        let head = &self.buf[..declared.payload_offset];
        self.header_safe = Some((self.mode.header_safe)(head));
        self.check_header_safe()
    }

    /// Copy `piece`, which starts at image offset `at`, into the buffer,
    /// writing every piece of a sector it completes. When `piece` completes
    /// the header, the header is checked before anything is written.
    fn stage(
        &mut self,
        mut piece: &[u8],
        mut at: u32,
        mut header_complete: bool,
    ) -> Result<(), UpdateError<F::Error>> {
        let e = F::ERASE_SIZE as u32;
        let chunk = self.staging.chunk as u32;
        while !piece.is_empty() {
            // Pieces start at every multiple of the chunk within a sector.
            let start = self.staged_at;
            let offset = (at - start) as usize;
            let end = (start + chunk).min(start - start % e + e);
            let n = piece.len().min((end - at) as usize);
            self.buf[offset..offset + n].copy_from_slice(&piece[..n]);
            piece = &piece[n..];
            at += n as u32;
            if header_complete && (piece.is_empty() || at == end) {
                header_complete = false;
                self.header_arrived()?;
            }
            if at == end {
                self.flush(start, (end - start) as usize)?;
                self.staged_at = end;
            }
        }
        Ok(())
    }

    /// Write the `n` staged bytes (`buf[..n]`) that belong at image offset
    /// `at`: the first piece of a sector decides whether the sector is
    /// skipped, or erased and programmed (see the module docs).
    pub(super) fn flush(&mut self, at: u32, n: usize) -> Result<(), UpdateError<F::Error>> {
        let (e, w) = (F::ERASE_SIZE, F::WRITE_SIZE);
        let padded = round_up(n, w);
        self.buf[n..padded].fill(0xff);
        // Single slot: the image's first bytes wait until the end.
        let held = self.staging.held.saturating_sub(at as usize).min(padded);
        if held > 0 {
            // The held area follows the chunk: the copy never overlaps
            // (and needs no memmove).
            let (staged, held_area) = self.buf.split_at_mut(self.staging.chunk);
            held_area[at as usize..at as usize + held].copy_from_slice(&staged[..held]);
            if held == padded {
                return Ok(());
            }
        }
        #[cfg(feature = "signed")]
        if let Some(steps) = self.signed_steps {
            (steps.open_progress)(self, ())?;
        }
        let addr = self.region.offset + at;
        if (at as usize).is_multiple_of(e) && !self.open_sector(addr, n, padded)? {
            self.stats.sectors_skipped += 1;
        } else {
            self.program(addr + held as u32, held, padded - held)?;
        }
        #[cfg(feature = "signed")]
        if (at as usize % e) + n == e {
            self.log_progress(at / e as u32)?;
        }
        Ok(())
    }

    /// The first piece of a sector (`n` bytes staged, `padded` to whole
    /// write units) is about to be written at `addr`: make the sector ready
    /// to program, or return false when the flash already holds the whole
    /// sector as staged.
    fn open_sector(
        &mut self,
        addr: u32,
        n: usize,
        padded: usize,
    ) -> Result<bool, UpdateError<F::Error>> {
        let e = F::ERASE_SIZE;
        let mut erased = None;
        if self.staging.whole_sectors(e) {
            let (equal, blank) = self.compare(addr, 0, n, padded)?;
            if equal {
                return Ok(false);
            }
            erased = Some(blank);
        }
        // Single slot: this erases the first sector, perhaps this one.
        self.invalidate()?;
        let erased = match erased {
            Some(blank) => blank,
            // A sector staged in pieces must be blank before the first.
            None => self.all_erased(addr, e)?,
        };
        if !erased {
            self.erase(addr)?;
        }
        self.stats.sectors_programmed += 1;
        Ok(true)
    }
}
