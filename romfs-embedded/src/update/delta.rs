//! Delta updates (FORMAT.md, section 9): the new image is made from a
//! patch, ranges copied from the image that runs and literal bytes, and
//! streamed into the other A/B slot exactly as a full image is: the same
//! staging buffer, sector skipping, read-back, checksum, identity and
//! signature checks, and commit record written last.
//!
//! The patch names the image it applies to (length and identity); that is
//! checked against the running slot, read back in full, before anything is
//! written, and the result's length and identity against the patch's
//! promise before the commit. The running slot is only read, so a power cut or any error
//! leaves it mounted.

use embedded_storage::nor_flash::{ErrorType, NorFlash};
use romfs_format::delta::{Decoder, DeltaError, DeltaHeader, Op};

use super::{Report, Target, UpdateError, UpdateStats, Updater, SCRATCH};
use crate::buffered::BufferedFlash;
use crate::slots::{self, SlotInfo, Verify};

/// Bytes of a copy moved at a time, through a stack buffer: one read of
/// the updater's flash scratch buffer.
const COPY_PIECE: usize = SCRATCH;

/// An A/B update fed a delta patch instead of the image; made by
/// [`Updater::delta`], which it borrows (so the updater is not moved: its
/// size stays off the stack). Feed the patch with [`write`](Self::write)
/// in chunks of any size, then call [`finish`](Self::finish).
#[derive(Debug)]
pub struct DeltaUpdater<'u, 'b, F: ErrorType> {
    update: &'u mut Updater<'b, F>,
    decoder: Decoder,
    /// The running slot, whose image copies read.
    base: SlotInfo,
    /// The patch's header, once it arrived and matched the base.
    header: Option<DeltaHeader>,
}

impl<'b, F: NorFlash> Updater<'b, F> {
    /// Take a delta patch (`romfs diff OLD NEW`) instead of the image: the
    /// new image is made from the image of the running slot (OLD) and the
    /// patch, and written to the other slot like a full image. Call it on a
    /// fresh [`begin_ab`](Self::begin_ab) update, after any
    /// [`trial_boots`](Self::trial_boots), `require_signature` and
    /// `with_manifest`. The updater is spent once the delta update
    /// finishes or fails; take the flash back with
    /// [`into_inner`](Self::into_inner).
    ///
    /// [`UpdateError::NoDeltaBase`] when there is no running image to
    /// apply it to (no committed slot, or a single-slot update);
    /// [`UpdateError::Aborted`] when the update was already fed or resumed.
    pub fn delta(&mut self) -> Result<DeltaUpdater<'_, 'b, F>, UpdateError<F::Error>> {
        let base = match (self.target, self.installed) {
            (Target::Ab { .. }, Some(slot)) => slot,
            _ => return Err(UpdateError::NoDeltaBase),
        };
        if self.failed || self.received.position() > 0 {
            return Err(UpdateError::Aborted);
        }
        Ok(DeltaUpdater {
            update: self,
            decoder: Decoder::new(),
            base,
            header: None,
        })
    }
}

impl<F: NorFlash> DeltaUpdater<'_, '_, F> {
    /// Feed the next chunk of the patch (any size, including empty). The
    /// patch's header is checked against the running image as soon as it
    /// is complete, before anything is written
    /// ([`DeltaError::WrongBase`]).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UpdateError<F::Error>> {
        if self.update.failed {
            return Err(UpdateError::Aborted);
        }
        let r = self.apply(chunk);
        if r.is_err() {
            self.update.failed = true;
        }
        r
    }

    /// Finish the update: the patch must be complete and have made exactly
    /// the image it promises (length and identity, else
    /// [`DeltaError::WrongResult`]); then everything
    /// [`Updater::finish`] checks (the image's checksum record, `expected_id`,
    /// the signature with `signed`), the read-back, and the commit.
    pub fn finish(self, expected_id: Option<u32>) -> Result<Report, UpdateError<F::Error>> {
        let r = self
            .check_result()
            .and_then(|()| self.update.finish_in_place(expected_id));
        // Whatever the outcome, the updater was used for this patch.
        self.update.failed = true;
        r
    }

    fn check_result(&self) -> Result<(), UpdateError<F::Error>> {
        if self.update.failed {
            return Err(UpdateError::Aborted);
        }
        self.decoder.finish().map_err(UpdateError::Delta)?;
        let Some(header) = self.header else {
            return Err(UpdateError::Delta(DeltaError::Truncated));
        };
        // A result whose checksum record does not match is refused by
        // `finish_in_place`, as in a full update.
        let made = &self.update.received;
        if made.position() != header.new_len || made.identity().is_ok_and(|id| id != header.new_id)
        {
            return Err(UpdateError::Delta(DeltaError::WrongResult));
        }
        Ok(())
    }

    /// The patch's header, once it arrived and matched the running image.
    pub fn header(&self) -> Option<DeltaHeader> {
        self.header
    }

    /// Bytes of the new image made so far.
    pub fn produced(&self) -> u32 {
        self.update.received()
    }

    /// The slot being written (0 = A) and the generation it will get.
    pub fn target_slot(&self) -> Option<(usize, u32)> {
        self.update.target_slot()
    }

    /// Costs so far (reads include the base check and the copies).
    pub fn stats(&self) -> UpdateStats {
        self.update.stats()
    }

    fn apply(&mut self, mut patch: &[u8]) -> Result<(), UpdateError<F::Error>> {
        while !patch.is_empty() {
            let (used, op) = self.decoder.feed(patch).map_err(UpdateError::Delta)?;
            patch = patch.get(used..).unwrap_or_default();
            match op {
                Some(Op::Header(header)) => self.check_base(header)?,
                Some(Op::Literal(bytes)) => self.update.write_inner(bytes)?,
                Some(Op::Copy { from, len }) => self.copy(from, len)?,
                None => {}
            }
        }
        Ok(())
    }

    /// The patch must be for the running image: the same length and
    /// identity, with the image read back in full (its checksum too, so a
    /// base that changed in flash since it was committed is refused); and
    /// make an image that fits the target.
    fn check_base(&mut self, header: DeltaHeader) -> Result<(), UpdateError<F::Error>> {
        let Target::Ab { layout, .. } = self.update.target else {
            return Err(UpdateError::NoDeltaBase);
        };
        let mut scratch = [0u8; SCRATCH];
        let mut device = BufferedFlash::new(&mut self.update.flash, &mut scratch[..]);
        let state = slots::slot_state(&mut device, &layout, self.base.index, Verify::Full);
        self.update.reads += device.stats();
        match state? {
            Some(slot) if slot.image_len == header.old_len && slot.image_id == header.old_id => {}
            _ => return Err(UpdateError::Delta(DeltaError::WrongBase)),
        }
        let capacity = self.update.region.len;
        if header.new_len > capacity {
            return Err(UpdateError::TooLarge {
                image_len: header.new_len.into(),
                capacity,
            });
        }
        self.header = Some(header);
        Ok(())
    }

    /// Stream `len` bytes of the running image from offset `from` (inside
    /// it: the decoder checked that against the header, and the header
    /// against the base) into the update.
    fn copy(&mut self, from: u32, len: u32) -> Result<(), UpdateError<F::Error>> {
        let mut piece = [0u8; COPY_PIECE];
        let mut addr = self.base.region.offset + from;
        let end = addr + len;
        while addr < end {
            // Pieces end at multiples of their size: one flash read each.
            let n = ((end - addr) as usize).min(COPY_PIECE - addr as usize % COPY_PIECE);
            let mut filled = 0;
            self.update.visit_flash(addr, n, &mut |bytes| {
                if let Some(dst) = piece.get_mut(filled..filled + bytes.len()) {
                    dst.copy_from_slice(bytes);
                }
                filled += bytes.len();
                true
            })?;
            self.update.write_inner(&piece[..n])?;
            addr += n as u32;
        }
        Ok(())
    }
}
