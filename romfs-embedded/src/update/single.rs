//! Single slot: the image replaces itself in place (MicroPython's layout,
//! one ROM partition), its first sector (or, with a buffer smaller than two
//! sectors, its first write unit) kept in RAM and its header unit
//! programmed last.

use embedded_storage::nor_flash::NorFlash;

use super::{round_up, Mode, Report, Target, UpdateError, Updater};
use crate::partition::Region;
use crate::LayoutError;

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Start a single-slot update of the image at the start of `region`
    /// (MicroPython's layout: one ROM partition). The image's first write
    /// unit, which holds its header, is programmed last, after the rest was
    /// verified: a power cut leaves the old image, no image, or the new one,
    /// never a corrupt one.
    ///
    /// With a `buf` of two sectors or more, the first sector's new contents
    /// are kept in RAM until the end: sectors that already hold the new
    /// bytes are left alone, and the old image survives until the first
    /// sector that differs. A smaller `buf` (at least 64 bytes and one write
    /// unit) works with sectors of any size, e.g. the 128 KiB sectors of
    /// STM32 internal flash, but cannot compare before erasing: the first
    /// sector is erased as soon as the image arrives (the old image is gone
    /// from then on; until the update completes there is no image), every
    /// sector is rewritten, and an identical image is written again. Where
    /// that window matters, use A/B.
    pub fn begin_single(
        flash: F,
        region: Region,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        let staging = Self::staging(buf.len(), true)?;
        if !region.is_aligned(F::ERASE_SIZE) {
            return Err(LayoutError::NotAligned.into());
        }
        if !region.fits(flash.capacity()) || region.len == 0 {
            return Err(LayoutError::OutOfBounds.into());
        }
        Ok(Self::with(
            flash,
            Target::Single,
            Mode {
                header_safe: |head| romfs_format::header_is_write_safe(head, F::WRITE_SIZE),
                finish: Self::finish_single,
            },
            region,
            buf,
            staging,
        ))
    }

    /// Write what is held of sector 0 (all but its header unit), verify the
    /// whole image in flash, then program the header unit.
    fn finish_single(
        &mut self,
        total: u32,
        crc: u32,
        image_id: u32,
    ) -> Result<Report, UpdateError<F::Error>> {
        let w = F::WRITE_SIZE;
        let n0 = (total as usize).min(F::ERASE_SIZE);
        let padded0 = round_up(n0, w);
        // What is held (padded when the image ends in it), at `s0`.
        let held = self.staging.held.min(padded0);
        let s0 = self.staging.chunk;
        if !self.invalidated {
            let (equal, _) = self.compare(self.region.offset, s0, n0.min(held), held)?;
            if equal {
                self.stats.sectors_skipped += 1;
                return Ok(self.report(total, image_id, None, true));
            }
        }
        self.invalidate()?;
        // Everything but the header's write unit, then verify, then the header.
        let hold = w.min(padded0);
        if self.stages_whole_sectors() {
            self.program(self.region.offset + hold as u32, s0 + hold, held - hold)?;
            self.stats.sectors_programmed += 1;
        }
        if self.readback_crc(total, hold, s0)? != crc {
            return Err(UpdateError::VerifyFailed);
        }
        self.program(self.region.offset, s0, hold)?;
        if self.readback_crc(total, 0, s0)? != crc {
            return Err(UpdateError::VerifyFailed);
        }
        Ok(self.report(total, image_id, None, false))
    }
}
