//! The documented usage pattern as a user writes it (romfs-embedded's
//! README): one function takes the image from a byte stream into the slot
//! that is not mounted, with `begin_ab_in` (the updater in one place of the
//! caller's), `write` and `finish_in_place`, and nothing between romfs code
//! and the flash driver (no `#[inline(never)]`, no wrapper): whatever the
//! optimizer inlines, it inlines, as in a firmware.

use embedded_storage::nor_flash::NorFlash;
use romfs_embedded::{AbLayout, Report, UpdateError, Updater, Verify};

/// Install the image that `chunks` yields into the inactive slot of
/// `layout`, `buf` being the caller's sector buffer.
pub fn update<'c, F: NorFlash>(
    flash: F,
    layout: AbLayout,
    buf: &mut [u8],
    chunks: impl Iterator<Item = &'c [u8]>,
) -> Result<Report, UpdateError<F::Error>> {
    let mut place = None;
    let update = Updater::begin_ab_in(&mut place, flash, layout, Verify::CommitOnly, buf)?;
    for chunk in chunks {
        update.write(chunk)?;
    }
    update.finish_in_place(None)
}
