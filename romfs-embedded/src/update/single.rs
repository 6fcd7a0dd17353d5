//! Single slot: the image replaces itself in place (MicroPython's layout,
//! one ROM partition), its first sector kept in RAM and its header unit
//! programmed last.

use embedded_storage::nor_flash::NorFlash;

use super::{round_up, Mode, Report, Target, UpdateError, Updater};
use crate::partition::Region;
use crate::LayoutError;

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Start a single-slot update of the image at the start of `region`
    /// (MicroPython's layout: one ROM partition). `buf` must hold two
    /// sectors: the first sector's new contents are kept until the end,
    /// when the header is written last.
    pub fn begin_single(
        flash: F,
        region: Region,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        Self::check_geometry(buf.len(), 2)?;
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
        ))
    }

    /// Write sector 0 (all but its header unit), verify the whole image in
    /// flash, then program the header unit.
    fn finish_single(
        &mut self,
        total: u32,
        crc: u32,
        image_id: u32,
    ) -> Result<Report, UpdateError<F::Error>> {
        let e = F::ERASE_SIZE;
        let w = F::WRITE_SIZE;
        let n0 = (total as usize).min(e);
        let padded0 = round_up(n0, w);
        let s0 = e;
        self.buf[s0 + n0..s0 + padded0].fill(0xff);
        if !self.invalidated {
            let (equal, _) = self.compare(self.region.offset, s0, n0, padded0)?;
            if equal {
                self.stats.sectors_skipped += 1;
                return Ok(self.report(total, image_id, None, true));
            }
        }
        self.invalidate()?;
        // Everything but the header's write unit, then verify, then the header.
        let hold = w.min(padded0);
        self.program(self.region.offset + hold as u32, s0 + hold, padded0 - hold)?;
        self.stats.sectors_programmed += 1;
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
