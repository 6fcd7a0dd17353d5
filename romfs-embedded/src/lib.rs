//! A `no_std`, allocation-free ROMFS driver for flash, built on
//! [`embedded-storage`](embedded_storage).
//!
//! - [`mapped`]: images in memory-mapped flash (execute in place). Files come
//!   back as `&'static [u8]` slices of flash, zero copy, and as typed
//!   zero-copy views ([`mapped::view`]). [`mapped::XipFlash`] pairs the mapped
//!   region (reads) with a [`NorFlash`](embedded_storage::nor_flash::NorFlash)
//!   driver of the same partition (writes).
//! - [`reader`]: images in flash that is not memory mapped (SPI NOR): a
//!   [`FlashFs`](reader::FlashFs) looks paths up and reads files through one
//!   fixed buffer whose size the caller chooses.
//! - [`storage`]: the same over any byte-addressable
//!   [`ReadStorage`](embedded_storage::ReadStorage), through
//!   [`StorageFlash`](storage::StorageFlash).
//! - [`partition`]: a region (offset, length) of a flash device.
//! - [`slots`]: two slots (A/B) with a commit record each; mounting picks the
//!   newest valid slot.
//! - [`update`]: a streaming over-the-air updater, A/B or single-slot, that
//!   skips sectors whose contents already match and commits last.
//! - `sim` (feature `std`): a simulated NOR flash with power cuts, for tests.
//!
//! No function in this crate panics on any flash contents; every read is
//! bounds-checked and every malformed image is an error.
//! FORMAT.md (section 5) describes the on-flash layout.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod buffered;
mod error;
pub mod mapped;
pub mod partition;
pub mod reader;
pub mod slots;
pub mod storage;
pub mod update;

#[cfg(feature = "std")]
pub mod sim;

pub use buffered::{BufferedFlash, ReadStats};
pub use error::{Error, FlashError, LayoutError};
pub use mapped::{MappedFs, XipFlash};
pub use partition::{Partition, Region};
pub use reader::FlashFs;
pub use slots::{AbLayout, SlotInfo, Verify};
pub use storage::StorageFlash;
pub use update::{Report, UpdateError, UpdateStats, Updater};

/// The romfs-format crate, whose types this crate's API returns.
pub use romfs_format;
/// Types of romfs-format that appear in this crate's API.
pub use romfs_format::{Checksum, Dir, File, Metadata, Node, NodeInfo};
