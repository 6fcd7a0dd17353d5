//! The errors of this crate: [`Error`] for mounting and reading,
//! [`UpdateError`](crate::UpdateError) for updates, [`FlashError`] for the
//! flash adapters ([`Partition`](crate::Partition),
//! [`StorageFlash`](crate::StorageFlash)), and [`LayoutError`] for a layout
//! that does not suit the flash.

use core::convert::Infallible;
use core::fmt;

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};
use romfs_format::ReadError;

/// Why mounting or reading an image failed. `E` is the flash driver's
/// error; for memory-mapped flash it is [`Infallible`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E = Infallible> {
    /// The flash driver failed.
    Flash(E),
    /// The image is malformed (what, and at which offset from its start).
    Format(romfs_format::Error),
    /// No valid image: no slot is committed, or the partition holds none.
    NoImage,
    /// No such path in the image.
    NotFound,
    /// The path names a directory where a file was wanted.
    IsDir,
    /// A file's data is not at an address `T` can be viewed at in place.
    Misaligned {
        /// The data's address.
        address: usize,
        /// The alignment `T` needs.
        align: usize,
    },
    /// A file's length is not a multiple of `T`'s size.
    WrongSize {
        /// The data's length.
        len: usize,
        /// `T`'s size.
        elem: usize,
    },
    /// A caller-provided buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Regions, slots or buffers that do not suit the flash.
    Layout(LayoutError),
}

impl<E> From<romfs_format::Error> for Error<E> {
    fn from(e: romfs_format::Error) -> Self {
        Error::Format(e)
    }
}

impl<E> From<ReadError<E>> for Error<E> {
    fn from(e: ReadError<E>) -> Self {
        match e {
            ReadError::Format(e) => Error::Format(e),
            ReadError::Source(e) => Error::Flash(e),
        }
    }
}

impl<E> From<LayoutError> for Error<E> {
    fn from(e: LayoutError) -> Self {
        Error::Layout(e)
    }
}

impl<E> Error<E> {
    /// The same error, with a flash error replaced by what `f` makes of it.
    fn map_flash<G>(self, f: impl FnOnce(E) -> Error<G>) -> Error<G> {
        match self {
            Error::Flash(e) => f(e),
            Error::Format(e) => Error::Format(e),
            Error::NoImage => Error::NoImage,
            Error::NotFound => Error::NotFound,
            Error::IsDir => Error::IsDir,
            Error::Misaligned { address, align } => Error::Misaligned { address, align },
            Error::WrongSize { len, elem } => Error::WrongSize { len, elem },
            Error::BufferTooSmall { needed } => Error::BufferTooSmall { needed },
            Error::Layout(e) => Error::Layout(e),
        }
    }
}

impl Error {
    /// A memory read's error as the error of any flash (memory reads
    /// cannot fail on flash).
    pub fn widen<E>(self) -> Error<E> {
        self.map_flash(|never| match never {})
    }
}

impl<E> Error<FlashError<E>> {
    /// Errors read through a [`Partition`](crate::Partition) or
    /// [`StorageFlash`](crate::StorageFlash), with the device's error
    /// unwrapped (an access the adapter refused is a layout error).
    pub fn flatten(self) -> Error<E> {
        self.map_flash(|e| match e {
            FlashError::Device(e) => Error::Flash(e),
            FlashError::NotAligned => Error::Layout(LayoutError::NotAligned),
            FlashError::OutOfBounds => Error::Layout(LayoutError::OutOfBounds),
        })
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Flash(e) => write!(f, "flash error: {e:?}"),
            Error::Format(e) => write!(f, "{e}"),
            Error::NoImage => f.write_str("no valid image"),
            Error::NotFound => f.write_str("no such file or directory"),
            Error::IsDir => f.write_str("is a directory"),
            Error::Misaligned { address, align } => {
                write!(f, "data at {address:#x} is not aligned to {align} bytes")
            }
            Error::WrongSize { len, elem } => {
                write!(f, "{len} bytes are not a whole number of {elem}-byte items")
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            Error::Layout(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Why regions, slots or buffers do not suit a flash device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LayoutError {
    /// A region, slot or access is not aligned to the erase (or read) size.
    NotAligned,
    /// A slot is smaller than two sectors.
    TooSmall,
    /// The slots overlap.
    Overlap,
    /// A region runs past the end of the device.
    OutOfBounds,
    /// A mapped region and a flash driver of different sizes.
    SizeMismatch {
        /// Length of the mapped region.
        mapped: usize,
        /// Capacity of the flash driver.
        capacity: usize,
    },
    /// The flash's geometry is unusable (sectors under 64 bytes, a write
    /// size that does not divide the sector, a read size over the buffer).
    Geometry,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NotAligned => f.write_str("region not aligned to the flash's sectors"),
            LayoutError::TooSmall => f.write_str("slot smaller than two sectors"),
            LayoutError::Overlap => f.write_str("slots overlap"),
            LayoutError::OutOfBounds => f.write_str("region runs past the end of the flash"),
            LayoutError::SizeMismatch { mapped, capacity } => write!(
                f,
                "mapped region of {mapped} bytes but a flash of {capacity} bytes"
            ),
            LayoutError::Geometry => f.write_str("flash geometry not supported"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// The error of the flash adapters: the access was refused before reaching
/// the device, or the device failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FlashError<E> {
    /// The access is not aligned to the device's read, write or erase size.
    NotAligned,
    /// The access leaves the region or the device.
    OutOfBounds,
    /// The device failed.
    Device(E),
}

impl<E: fmt::Debug> NorFlashError for FlashError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::Device(_) => NorFlashErrorKind::Other,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for FlashError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::NotAligned => f.write_str("flash access not aligned"),
            FlashError::OutOfBounds => f.write_str("flash access out of bounds"),
            FlashError::Device(e) => write!(f, "flash device error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashError<E> {}
