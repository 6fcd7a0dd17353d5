//! A/B: the image goes to the slot that is not mounted, and a commit record
//! written last makes it the one mounted.

use embedded_storage::nor_flash::NorFlash;

use super::{round_up, Mode, Report, Staging, Target, UpdateError, Updater, SCRATCH};
use crate::buffered::{BufferedFlash, ReadStats};
use crate::slots::{self, AbLayout, CommitRecord, SlotInfo, Trial, Verify, COMMIT_LEN};
use crate::LayoutError;

/// The part of the caller's buffer that slots are read through: no more
/// than the stack buffer other reads use, so that a large sector buffer
/// does not turn the reads of a commit record into reads of whole sectors.
fn read_window(buf: &mut [u8]) -> &mut [u8] {
    let n = buf.len().min(SCRATCH);
    &mut buf[..n]
}

/// What reading the slots decided for a new A/B update.
struct AbTarget {
    /// The slot to write.
    index: usize,
    /// The generation its commit record gets.
    generation: u32,
    /// The slot mounting picks now.
    active: Option<SlotInfo>,
    reads: ReadStats,
}

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Start an A/B update of `flash` (offsets of `layout` are offsets of
    /// `flash`). The target is the slot that mounting with `verify` would
    /// *not* pick; the active slot is never written.
    ///
    /// With a `buf` of one sector (`ERASE_SIZE` bytes) or more, sectors that
    /// already hold the new bytes are left alone. A smaller `buf` (at least
    /// 64 bytes and one `READ_SIZE` unit, rounded down to whole write
    /// units) works with sectors of any size: each sector the image covers
    /// is erased, then programmed a buffer at a time as the stream arrives.
    /// Either way a power cut leaves the old image or the new one.
    ///
    /// The updater comes back by value; [`begin_ab_in`](Self::begin_ab_in)
    /// starts it in a place of the caller's instead, which keeps it out of
    /// the frames of the calls that return and move it (less stack).
    pub fn begin_ab(
        mut flash: F,
        layout: AbLayout,
        verify: Verify,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        let staging = Self::check_ab(&flash, &layout, buf.len())?;
        let start = Self::choose_target(&mut flash, &layout, verify, buf)?;
        Ok(Self::started_ab(flash, layout, buf, staging, start))
    }

    /// [`begin_ab`](Self::begin_ab) into `place`, which the caller declares
    /// once (`let mut place = None;`); the updater is returned borrowed
    /// from it, to drive with [`write`](Self::write) and
    /// [`finish_in_place`](Self::finish_in_place). The updater then exists
    /// in that one place only, never as a value returned or moved through
    /// other frames: this is the form with the least stack. An updater
    /// already in `place` is replaced on success and left on error.
    ///
    /// ```
    /// use romfs_embedded::sim::SimFlash;
    /// use romfs_embedded::{AbLayout, Region, Updater, Verify};
    ///
    /// let mut flash = SimFlash::<1, 4, 4096>::new(128 * 1024);
    /// let layout = AbLayout::new(Region::new(0, 64 * 1024), Region::new(64 * 1024, 64 * 1024), 4096, 4)?;
    /// let mut sector = [0u8; 4096];
    /// let mut place = None;
    /// let update = Updater::begin_ab_in(&mut place, &mut flash, layout, Verify::CommitOnly, &mut sector)?;
    /// update.write(&[0xd2, 0xcd, 0x31, 0x00])?; // the empty image
    /// let report = update.finish_in_place(None)?;
    /// assert_eq!(report.slot.map(|s| s.generation), Some(1));
    /// # Ok::<(), romfs_embedded::UpdateError<romfs_embedded::sim::SimError>>(())
    /// ```
    pub fn begin_ab_in<'p>(
        place: &'p mut Option<Self>,
        mut flash: F,
        layout: AbLayout,
        verify: Verify,
        buf: &'b mut [u8],
    ) -> Result<&'p mut Self, UpdateError<F::Error>> {
        let staging = Self::check_ab(&flash, &layout, buf.len())?;
        let start = Self::choose_target(&mut flash, &layout, verify, buf)?;
        Ok(place.insert(Self::started_ab(flash, layout, buf, staging, start)))
    }

    /// Check the flash geometry against `layout` and how a buffer of
    /// `buf_len` bytes is staged (it also reads the slots: at least one
    /// `READ_SIZE` unit).
    fn check_ab(
        flash: &F,
        layout: &AbLayout,
        buf_len: usize,
    ) -> Result<Staging, UpdateError<F::Error>> {
        let staging = Self::staging(buf_len, false)?;
        if layout.erase_size() as usize != F::ERASE_SIZE
            || layout.write_size() as usize != F::WRITE_SIZE
        {
            return Err(LayoutError::Geometry.into());
        }
        if !layout.fits(flash.capacity()) {
            return Err(LayoutError::OutOfBounds.into());
        }
        if buf_len < F::READ_SIZE {
            return Err(UpdateError::BufferTooSmall {
                needed: F::READ_SIZE,
            });
        }
        Ok(staging)
    }

    /// Read both slots and choose the target: the slot mounting would not
    /// pick, and the generation it gets. The slots are read through the
    /// caller's `buf` (nothing is staged yet) rather than a stack buffer.
    fn choose_target(
        flash: &mut F,
        layout: &AbLayout,
        verify: Verify,
        buf: &mut [u8],
    ) -> Result<AbTarget, UpdateError<F::Error>> {
        let mut device = BufferedFlash::new(flash, read_window(buf));
        let states = [
            slots::slot_state(&mut device, layout, 0, verify)?,
            slots::slot_state(&mut device, layout, 1, verify)?,
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
        Ok(AbTarget {
            index,
            generation,
            active,
            reads,
        })
    }

    /// The updater of an A/B update that `choose_target` aimed.
    #[inline(always)]
    fn started_ab(
        flash: F,
        layout: AbLayout,
        buf: &'b mut [u8],
        staging: Staging,
        start: AbTarget,
    ) -> Self {
        let target = Target::Ab {
            layout,
            index: start.index,
            generation: start.generation,
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
            layout.image_region(start.index),
            buf,
            staging,
        );
        up.reads = start.reads;
        up.installed = start.active;
        up
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
        match self.committed_slot(&layout, index)? {
            Some(info) if info.generation == generation && info.image_id == image_id => {
                Ok(self.report(total, image_id, Some(info), false))
            }
            _ => Err(UpdateError::VerifyFailed),
        }
    }

    /// The slot `index` as its commit record now says, read through the
    /// caller's buffer (whose contents are written by now) rather than a
    /// stack buffer.
    fn committed_slot(
        &mut self,
        layout: &AbLayout,
        index: usize,
    ) -> Result<Option<SlotInfo>, UpdateError<F::Error>> {
        let mut device = BufferedFlash::new(&mut self.flash, read_window(self.buf));
        let info = slots::slot_state(&mut device, layout, index, Verify::CommitOnly);
        self.reads += device.stats();
        Ok(info?)
    }
}
