//! Images in memory-mapped flash (execute in place): files are slices of
//! flash, zero copy, and typed views of them are zero copy too.

use embedded_storage::nor_flash::NorFlash;
use romfs_format::{Image, Node};
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::slots::{self, AbLayout, SlotInfo, Verify};
use crate::{Error, LayoutError};

/// View `data` in place as a slice of `T` (e.g. `u32` when the data is
/// aligned, or `zerocopy::little_endian::U32` at any alignment). Never
/// copies: misaligned or wrongly sized data is an error.
pub fn view<T: FromBytes + Immutable + KnownLayout>(data: &[u8]) -> Result<&[T], Error> {
    let elem = core::mem::size_of::<T>();
    if elem == 0 || !data.len().is_multiple_of(elem) {
        return Err(Error::WrongSize {
            len: data.len(),
            elem,
        });
    }
    <[T]>::ref_from_bytes(data).map_err(|e| view_error::<T, _, _, _>(e, data))
}

/// View `data` in place as one `T` (a header struct, say).
pub fn view_one<T: FromBytes + Immutable + KnownLayout>(data: &[u8]) -> Result<&T, Error> {
    T::ref_from_bytes(data).map_err(|e| view_error::<T, _, _, _>(e, data))
}

/// zerocopy's refusal, as an [`Error`] about `data` viewed as `T`s.
fn view_error<T, A, S, V>(e: zerocopy::ConvertError<A, S, V>, data: &[u8]) -> Error {
    match e {
        zerocopy::ConvertError::Alignment(_) => Error::Misaligned {
            address: data.as_ptr() as usize,
            align: core::mem::align_of::<T>(),
        },
        _ => Error::WrongSize {
            len: data.len(),
            elem: core::mem::size_of::<T>(),
        },
    }
}

/// An image mounted from memory-mapped flash. With `'a = 'static` (a
/// region of the address space) every file is a `&'static [u8]`, which is
/// what a `.mpy` loader wants to reference in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedFs<'a> {
    image: Image<'a>,
}

impl<'a> MappedFs<'a> {
    /// Mount the image at the start of `region` (bytes after it are ignored).
    pub fn mount(region: &'a [u8]) -> Result<Self, Error> {
        Ok(MappedFs {
            image: Image::parse(region)?,
        })
    }

    /// The underlying zero-copy image (listing, stat, metadata, checksum).
    pub fn image(&self) -> Image<'a> {
        self.image
    }

    /// Look a path up with MicroPython's semantics.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<Node<'a>>, Error> {
        Ok(self.image.lookup(path)?)
    }

    /// A file's contents, as a slice of flash.
    pub fn open(&self, path: &[u8]) -> Result<&'a [u8], Error> {
        match self.image.lookup(path)? {
            None => Err(Error::NotFound),
            Some(Node::Dir(_)) => Err(Error::IsDir),
            Some(Node::File(f)) => Ok(f.data()),
        }
    }

    /// A file's contents viewed in place as `[T]`.
    pub fn open_typed<T: FromBytes + Immutable + KnownLayout>(
        &self,
        path: &[u8],
    ) -> Result<&'a [T], Error> {
        view(self.open(path)?)
    }
}

/// One flash partition seen two ways: `mapped` is the partition as it
/// appears in the address space (reads, zero copy), `flash` a
/// [`NorFlash`] driver for the same bytes (erase and write; often a
/// [`Partition`](crate::Partition) of the chip). Offset `x` of one is offset
/// `x` of the other.
///
/// `embedded-storage` cannot lend slices, so reads never go through the
/// driver. Writing through the driver changes bytes that slices handed out
/// earlier may point at: the A/B updater only ever writes the slot that is
/// *not* mounted, so slices of the active slot stay valid until the next
/// update after a reboot into the other slot; in single-slot mode, stop
/// using slices of the image before updating it.
#[derive(Debug)]
pub struct XipFlash<'a, F> {
    mapped: &'a [u8],
    flash: F,
}

impl<'a, F: NorFlash> XipFlash<'a, F> {
    /// Pair a mapped region with the driver of the same partition; their
    /// sizes must agree.
    pub fn new(mapped: &'a [u8], flash: F) -> Result<Self, LayoutError> {
        if mapped.len() != flash.capacity() {
            return Err(LayoutError::SizeMismatch {
                mapped: mapped.len(),
                capacity: flash.capacity(),
            });
        }
        Ok(XipFlash { mapped, flash })
    }

    /// The mapped bytes.
    pub fn mapped(&self) -> &'a [u8] {
        self.mapped
    }

    /// The driver, for an [`Updater`](crate::Updater).
    pub fn flash(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Mount the image at the start of the partition (single-slot layout).
    pub fn mount(&self) -> Result<MappedFs<'a>, Error> {
        MappedFs::mount(self.mapped)
    }

    /// Boot an A/B layout (offsets relative to this partition): choose the
    /// slot with [`boot`](crate::boot::boot), counting a trial boot through
    /// the driver, and mount it from the mapping.
    pub fn boot_ab(
        &mut self,
        layout: &AbLayout,
        verify: Verify,
    ) -> Result<(crate::boot::Booted, MappedFs<'a>), Error<F::Error>> {
        let booted = crate::boot::boot(&mut self.flash, layout, verify)?;
        let fs = mount_slot(self.mapped, &booted.slot).map_err(Error::widen)?;
        Ok((booted, fs))
    }

    /// Confirm the trial image that runs (see [`confirm`](crate::boot::confirm)).
    pub fn confirm(
        &mut self,
        layout: &AbLayout,
        verify: Verify,
    ) -> Result<SlotInfo, Error<F::Error>> {
        crate::boot::confirm(&mut self.flash, layout, verify)
    }

    /// Mount the newest valid slot of an A/B layout (offsets relative to
    /// this partition), reading commit records from the mapping.
    pub fn mount_ab(
        &self,
        layout: &AbLayout,
        verify: Verify,
    ) -> Result<(SlotInfo, MappedFs<'a>), Error> {
        mount_ab(self.mapped, layout, verify)
    }
}

/// Mount the newest valid slot of `layout` in the mapped bytes `device`
/// ([`Error::NoImage`] when no slot holds a committed, valid image). With
/// trial boots, call [`boot`](crate::boot::boot) first and mount its slot
/// with [`mount_slot`].
pub fn mount_ab<'a>(
    device: &'a [u8],
    layout: &AbLayout,
    verify: Verify,
) -> Result<(SlotInfo, MappedFs<'a>), Error> {
    let info = slots::select(&mut &device[..], layout, verify)?.ok_or(Error::NoImage)?;
    Ok((info, mount_slot(device, &info)?))
}

/// Mount the image of `slot` in the mapped bytes `device` (offset 0 = the
/// layout's offset 0).
pub fn mount_slot<'a>(device: &'a [u8], slot: &SlotInfo) -> Result<MappedFs<'a>, Error> {
    let start = slot.region.offset as usize;
    let image = device
        .get(start..start + slot.image_len as usize)
        .ok_or(Error::NoImage)?;
    MappedFs::mount(image)
}
