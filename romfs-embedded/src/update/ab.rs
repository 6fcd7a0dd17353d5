//! A/B: the image goes to the slot that is not mounted, and a commit record
//! written last makes it the one mounted.

use embedded_storage::nor_flash::NorFlash;

use super::{round_up, Mode, Report, Target, UpdateError, Updater, SCRATCH};
use crate::buffered::BufferedFlash;
use crate::slots::{self, AbLayout, CommitRecord, Trial, Verify, COMMIT_LEN};
use crate::LayoutError;

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Start an A/B update of `flash` (offsets of `layout` are offsets of
    /// `flash`). The target is the slot that mounting with `verify` would
    /// *not* pick; the active slot is never written.
    ///
    /// With a `buf` of one sector (`ERASE_SIZE` bytes) or more, sectors that
    /// already hold the new bytes are left alone. A smaller `buf` (at least
    /// 64 bytes, rounded down to whole write units) works with sectors of
    /// any size: each sector the image covers is erased, then programmed a
    /// buffer at a time as the stream arrives. Either way a power cut leaves
    /// the old image or the new one.
    pub fn begin_ab(
        mut flash: F,
        layout: AbLayout,
        verify: Verify,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        let staging = Self::staging(buf.len(), false)?;
        if layout.erase_size() as usize != F::ERASE_SIZE
            || layout.write_size() as usize != F::WRITE_SIZE
        {
            return Err(LayoutError::Geometry.into());
        }
        if !layout.fits(flash.capacity()) {
            return Err(LayoutError::OutOfBounds.into());
        }
        let mut device = BufferedFlash::new(&mut flash, [0u8; SCRATCH]);
        let states = [
            slots::slot_state(&mut device, &layout, 0, verify)?,
            slots::slot_state(&mut device, &layout, 1, verify)?,
        ];
        let reads = device.stats();
        let active = slots::newest(states);
        if active.is_some_and(|a| matches!(a.trial, Trial::Pending { .. })) {
            return Err(UpdateError::TrialPending);
        }
        let index = active.map_or(0, |a| 1 - a.index);
        let generation = match states.iter().flatten().map(|s| s.generation).max() {
            None => 1,
            Some(g) => g.checked_add(1).ok_or(UpdateError::GenerationExhausted)?,
        };
        let target = Target::Ab {
            layout,
            index,
            generation,
        };
        let mode = Mode {
            // The commit record, not the image header, decides what mounts.
            header_safe: |_| true,
            finish: Self::finish_ab,
        };
        let mut up = Self::with(
            flash,
            target,
            mode,
            layout.image_region(index),
            buf,
            staging,
        );
        up.reads = reads;
        up.installed = active;
        Ok(up)
    }

    /// The commit record of the new image: its trial boots and, for a
    /// signed update, its signature's generation.
    fn commit_record(&self, generation: u32, total: u32, image_id: u32) -> CommitRecord {
        let mut rec = CommitRecord::new(generation, total, image_id);
        rec.trial_boots = self.trial_boots;
        #[cfg(feature = "signed")]
        if let Some(manifest) = self.verified_manifest() {
            rec.flags |= crate::commit::FLAG_SIGNED;
            rec.image_generation = manifest.generation.into();
        }
        rec.sealed()
    }

    /// Read the image back, then program and check the commit record.
    fn finish_ab(
        &mut self,
        total: u32,
        crc: u32,
        image_id: u32,
    ) -> Result<Report, UpdateError<F::Error>> {
        let Target::Ab {
            layout,
            index,
            generation,
        } = self.target
        else {
            return Err(LayoutError::Geometry.into());
        };
        if self.readback_crc(total, 0, 0)? != crc {
            return Err(UpdateError::VerifyFailed);
        }
        let rec = self.commit_record(generation, total, image_id);
        let padded = round_up(COMMIT_LEN, F::WRITE_SIZE);
        if padded > self.buf.len() {
            return Err(LayoutError::Geometry.into());
        }
        // The record goes on blank flash: an old record, or one torn by a
        // cut during an earlier attempt's commit, is erased first.
        let at = layout.commit_offset(index);
        if !self.all_erased(at, padded)? {
            self.erase(at)?;
        }
        self.buf[..padded].fill(0xff);
        self.buf[..COMMIT_LEN].copy_from_slice(zerocopy::IntoBytes::as_bytes(&rec));
        self.program(at, 0, padded)?;
        let mut device = BufferedFlash::new(&mut self.flash, [0u8; SCRATCH]);
        let info = slots::slot_state(&mut device, &layout, index, Verify::CommitOnly);
        self.reads += device.stats();
        match info? {
            Some(info) if info.generation == generation && info.image_id == image_id => {
                Ok(self.report(total, image_id, Some(info), false))
            }
            _ => Err(UpdateError::VerifyFailed),
        }
    }
}
