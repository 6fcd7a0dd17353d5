//! What an update cost and what it installed.

#[cfg(doc)]
use super::Updater;
use crate::slots::SlotInfo;

/// What an update cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UpdateStats {
    /// Sector erases.
    pub erases: u32,
    /// Write (program) operations.
    pub writes: u32,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Image sectors left alone because they already held the new contents.
    pub sectors_skipped: u32,
    /// Image sectors programmed.
    pub sectors_programmed: u32,
    /// Read operations (comparisons and read-back).
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// The outcome of a successful update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// What it cost.
    pub stats: UpdateStats,
    /// Image length.
    pub image_len: u32,
    /// The image's identity (see [`romfs_format::Reader::identity`]): what
    /// a server can compare with the image it sent.
    pub image_id: u32,
    /// A/B: the newly committed slot. Single slot: `None`.
    pub slot: Option<SlotInfo>,
    /// Single slot: the flash already held exactly this image; nothing was written.
    pub unchanged: bool,
    /// Single slot: the image is header-safe for this flash's write size
    /// (see [`Updater::header_safe`]). A/B: always true (the commit record,
    /// not the image header, decides what mounts).
    pub header_safe: bool,
}
