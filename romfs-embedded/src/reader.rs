//! Images in flash that is not memory mapped (e.g. SPI NOR): look paths up,
//! list directories and read files through one fixed-size buffer.
//!
//! [`FlashFs`] is a front end: the parsing is romfs-format's
//! [`Reader`], the same code [`romfs_format::Image`] runs, over a
//! [`BufferedFlash`]. It adds only what flash needs: names and contents
//! copied into the caller's memory, and read counts.

use embedded_storage::nor_flash::ReadNorFlash;
use romfs_format::ext::{self, Checksum, Metadata, TAG_METADATA};
use romfs_format::reader::{self, NodeInfo, Reader};
use romfs_format::Source;

use crate::buffered::{BufferedFlash, ReadStats};
use crate::Error;

/// An image in a `ReadNorFlash` (usually a [`Partition`](crate::Partition)
/// whose first byte is the image's first byte), read through an `N`-byte
/// buffer. RAM use is the buffer plus a few words; every read the flash sees
/// is `READ_SIZE`-aligned and counted in [`FlashFs::stats`].
#[derive(Debug)]
pub struct FlashFs<F, const N: usize> {
    reader: Reader<BufferedFlash<F, [u8; N]>>,
}

impl<F: ReadNorFlash, const N: usize> FlashFs<F, N> {
    const BUFFER_FITS: () = assert!(
        N >= F::READ_SIZE && N > 0,
        "FlashFs buffer must hold READ_SIZE bytes"
    );

    /// Mount the image at the start of `flash`. Fails as
    /// [`romfs_format::Image::parse`] would on the flash's whole contents.
    pub fn mount(flash: F) -> Result<Self, Error<F::Error>> {
        Self::mount_counted(flash, ReadStats::default())
    }

    /// [`FlashFs::mount`], counting `earlier` reads (e.g. choosing a slot) as its own.
    pub(crate) fn mount_counted(flash: F, earlier: ReadStats) -> Result<Self, Error<F::Error>> {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUFFER_FITS;
        let mut source = BufferedFlash::new(flash, [0; N]);
        source.add_stats(earlier);
        Ok(FlashFs {
            reader: Reader::new(source)?,
        })
    }

    /// The flash back.
    pub fn into_inner(self) -> F {
        self.reader.into_source().into_inner()
    }

    /// Image length in bytes (header included).
    pub fn image_len(&self) -> usize {
        self.reader.header().end
    }

    /// Offset of the payload (indirect data offsets count from here).
    pub fn payload_offset(&self) -> usize {
        self.reader.header().payload_offset
    }

    /// Every flash read since mounting (mounting itself included).
    pub fn stats(&mut self) -> ReadStats {
        self.reader.source().stats()
    }

    /// Reset the read counters.
    pub fn reset_stats(&mut self) {
        self.reader.source().reset_stats();
    }

    /// Forget the buffered window (the next access reads flash again).
    pub fn invalidate_cache(&mut self) {
        self.reader.source().invalidate();
    }

    /// The root directory.
    pub fn root(&self) -> NodeInfo {
        self.reader.root()
    }

    /// Look a path up exactly as [`romfs_format::Image::lookup`] (and
    /// MicroPython) does. `Ok(None)`: not found.
    pub fn lookup(&mut self, path: &[u8]) -> Result<Option<NodeInfo>, Error<F::Error>> {
        Ok(self.reader.lookup(path)?)
    }

    /// The file at `path`: [`Error::NotFound`] or [`Error::IsDir`] otherwise.
    pub fn open(&mut self, path: &[u8]) -> Result<NodeInfo, Error<F::Error>> {
        match self.lookup(path)? {
            None => Err(Error::NotFound),
            Some(n) if n.is_dir() => Err(Error::IsDir),
            Some(n) => Ok(n),
        }
    }

    /// A directory's entries in stored order (as
    /// [`romfs_format::Dir::entries`]); empty for a file.
    pub fn entries(&mut self, dir: &NodeInfo) -> Entries<'_, F, N> {
        Entries {
            entries: self.reader.entries(dir),
            fs: self,
        }
    }

    /// The first entry of `dir` named `name`.
    pub fn find(
        &mut self,
        dir: &NodeInfo,
        name: &[u8],
    ) -> Result<Option<NodeInfo>, Error<F::Error>> {
        Ok(self.reader.find(dir, name)?)
    }

    /// True when `node`'s name is `name` (compared in flash, no copy).
    pub fn name_is(&mut self, node: &NodeInfo, name: &[u8]) -> Result<bool, Error<F::Error>> {
        Ok(self.reader.name_is(node, name)?)
    }

    /// Copy a node's name into `out`; returns it (truncated to `out`).
    pub fn read_name<'o>(
        &mut self,
        node: &NodeInfo,
        out: &'o mut [u8],
    ) -> Result<&'o [u8], Error<F::Error>> {
        let n = out.len().min(node.name_len());
        let name = &mut out[..n];
        self.reader
            .source()
            .read_exact_at(node.name_range().start, name)?;
        Ok(name)
    }

    /// Read a file's contents from `offset` into `out`; returns the number of
    /// bytes read (0 at or past the end, and for directories).
    pub fn read_file(
        &mut self,
        file: &NodeInfo,
        offset: usize,
        out: &mut [u8],
    ) -> Result<usize, Error<F::Error>> {
        if file.is_dir() || offset >= file.size() {
            return Ok(0);
        }
        let n = out.len().min(file.size() - offset);
        self.reader
            .source()
            .read_exact_at(file.data_offset() + offset, &mut out[..n])?;
        Ok(n)
    }

    /// CRC-32 of the image bytes `start..end` (clamped to the image).
    pub fn crc32(&mut self, start: usize, end: usize) -> Result<u32, Error<F::Error>> {
        Ok(self.reader.crc32(start, end)?)
    }

    /// The image's own integrity check (as [`romfs_format::Image::checksum`]).
    pub fn checksum(&mut self) -> Result<Checksum, Error<F::Error>> {
        Ok(self.reader.checksum()?)
    }

    /// The image's metadata record (label, generation, ...), copied into
    /// `buf`: [`Error::BufferTooSmall`] when it does not fit.
    pub fn metadata<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Metadata<'b>>, Error<F::Error>> {
        let Some(rec) = self.reader.extension_record(TAG_METADATA)? else {
            return Ok(None);
        };
        let body_offset = rec.payload_offset + ext::EXTENSION_PREFIX_LEN;
        let needed = rec.len - ext::EXTENSION_PREFIX_LEN;
        let body = buf
            .get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed })?;
        self.reader.source().read_exact_at(body_offset, body)?;
        Ok(Some(ext::parse_metadata(body, rec.offset, body_offset)?))
    }
}

/// A directory's entries; see [`FlashFs::entries`].
#[derive(Debug)]
pub struct Entries<'f, F, const N: usize> {
    fs: &'f mut FlashFs<F, N>,
    entries: reader::Entries,
}

impl<F: ReadNorFlash, const N: usize> Entries<'_, F, N> {
    /// The file system, e.g. to read an entry's name while listing.
    pub fn fs(&mut self) -> &mut FlashFs<F, N> {
        self.fs
    }
}

impl<F: ReadNorFlash, const N: usize> Iterator for Entries<'_, F, N> {
    type Item = Result<NodeInfo, Error<F::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.entries.next(&mut self.fs.reader)?.map_err(Error::from))
    }
}
