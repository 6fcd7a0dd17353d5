#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! - [`mapped`]: images in memory-mapped flash; typed zero-copy views.
//! - [`reader`]: images in flash that is not memory mapped ([`FlashFs`]).
//! - [`buffered`]: a flash device read through one buffer ([`BufferedFlash`]).
//! - [`storage`]: byte-addressable storage as a flash ([`StorageFlash`]).
//! - [`partition`]: a region of a flash device as a device of its own.
//! - [`slots`]: two slots (A/B) with a commit record each.
//! - [`update`]: the streaming over-the-air updater.
//! - `sim` (feature `std`): a simulated NOR flash with power cuts, for tests.
//!
//! FORMAT.md (section 5) describes the on-flash layout.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod boot;
pub mod buffered;
pub mod commit;
mod error;
pub mod mapped;
pub mod partition;
pub mod reader;
pub mod slots;
pub mod storage;
pub mod update;

#[cfg(feature = "std")]
pub mod sim;

pub use boot::{boot, confirm, Booted};
pub use buffered::{BufferedFlash, ReadStats};
pub use error::{Error, FlashError, LayoutError};
pub use mapped::{MappedFs, XipFlash};
pub use partition::{Partition, Region};
pub use reader::FlashFs;
pub use slots::{AbLayout, SlotInfo, Trial, Verify};
pub use storage::StorageFlash;
pub use update::{DeltaUpdater, Report, UpdateError, UpdateStats, Updater};

/// The romfs-format crate, whose types this crate's API returns.
pub use romfs_format;
/// Types of romfs-format that appear in this crate's API.
pub use romfs_format::{Checksum, Dir, File, Metadata, Node, NodeInfo};
