//! The A/B flash of the delta and signed-update tests: 4 KiB sectors,
//! 4-byte writes, two 64 KiB slots.

use romfs_embedded::sim::{SimError, SimFlash};
use romfs_embedded::slots::AbLayout;
use romfs_embedded::update::UpdateError;
use romfs_embedded::Region;

/// Sector size.
pub const E: usize = 4096;
/// Slot size.
pub const SLOT: u32 = 64 * 1024;
pub type Flash = SimFlash<1, 4, E>;
pub type Result<T> = std::result::Result<T, UpdateError<SimError>>;

/// Slot A then slot B.
pub fn layout() -> AbLayout {
    AbLayout::for_flash::<Flash>(Region::new(0, SLOT), Region::new(SLOT, SLOT)).unwrap()
}
