//! Mounting over byte-addressable storage: any
//! [`embedded_storage::ReadStorage`] (no alignment rules, e.g. an EEPROM, a
//! file, a memory region, or a flash driver that only offers this trait).
//!
//! [`StorageFlash`] presents a `ReadStorage` as a [`ReadNorFlash`] with
//! `READ_SIZE = 1`, so everything that reads through `ReadNorFlash`
//! ([`FlashFs`](crate::FlashFs), [`Partition`](crate::Partition),
//! [`slots::mount_ab`](crate::slots::mount_ab)) works over it unchanged:
//!
//! ```
//! # use romfs_embedded::storage::StorageFlash;
//! # use romfs_embedded::FlashFs;
//! # struct Eeprom([u8; 6]);
//! # impl embedded_storage::ReadStorage for Eeprom {
//! #     type Error = ();
//! #     fn read(&mut self, off: u32, b: &mut [u8]) -> Result<(), ()> {
//! #         let s = self.0.get(off as usize..off as usize + b.len()).ok_or(())?;
//! #         b.copy_from_slice(s);
//! #         Ok(())
//! #     }
//! #     fn capacity(&self) -> usize { self.0.len() }
//! # }
//! let eeprom = Eeprom([0xd2, 0xcd, 0x31, 0x00, 0xff, 0xff]); // an empty image
//! let mut fs = FlashFs::<_, 32>::mount(StorageFlash::new(eeprom)).unwrap();
//! assert_eq!(fs.image_len(), 4);
//! assert!(fs.lookup(b"").unwrap().unwrap().is_dir());
//! ```

use embedded_storage::nor_flash::{ErrorType, ReadNorFlash};
use embedded_storage::ReadStorage;

use crate::FlashError;

/// A [`ReadStorage`] seen as a [`ReadNorFlash`] with `READ_SIZE = 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFlash<S> {
    storage: S,
}

impl<S> StorageFlash<S> {
    /// Wrap `storage`.
    pub fn new(storage: S) -> Self {
        StorageFlash { storage }
    }

    /// The storage back.
    pub fn into_inner(self) -> S {
        self.storage
    }

    /// The wrapped storage.
    pub fn storage(&mut self) -> &mut S {
        &mut self.storage
    }
}

impl<S: ReadStorage> ErrorType for StorageFlash<S>
where
    S::Error: core::fmt::Debug,
{
    type Error = FlashError<S::Error>;
}

impl<S: ReadStorage> ReadNorFlash for StorageFlash<S>
where
    S::Error: core::fmt::Debug,
{
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let end = (offset as usize).checked_add(bytes.len());
        if end.is_none_or(|end| end > self.storage.capacity()) {
            return Err(FlashError::OutOfBounds);
        }
        self.storage.read(offset, bytes).map_err(FlashError::Device)
    }

    fn capacity(&self) -> usize {
        self.storage.capacity()
    }
}
