//! The zero-copy read API: an [`Image`] borrowed from a byte slice, its
//! directories and files, and path lookup with MicroPython's semantics.
//! A thin front end over [`Reader`]: names and contents come back as
//! slices of the image's bytes.

use crate::error::Error;
use crate::header::{header_is_write_safe, Header};
use crate::reader::{self, NodeInfo, Reader};
use crate::record::{Record, Records};

/// A parsed ROMFS image borrowed from the bytes that hold it.
///
/// Parsing checks only the header and declared length, so it is O(1); every
/// other check happens as the image is walked (or all at once in
/// [`Image::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image<'a> {
    bytes: &'a [u8],
    header: Header,
}

impl<'a> Image<'a> {
    /// Parse the image at the start of `buf`. Bytes after the declared length
    /// are ignored, as in a flash partition larger than its image.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut src = buf;
        let header = Header::parse(&mut src)?;
        Ok(Image {
            bytes: &buf[..header.end],
            header,
        })
    }

    /// The generic reader over these bytes.
    pub fn reader(&self) -> Reader<&'a [u8]> {
        Reader::with_header(self.bytes, self.header)
    }

    /// The image's bytes, header to end of payload.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Total image length in bytes (header and length varuint included).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an image whose payload is empty.
    pub fn is_empty(&self) -> bool {
        self.header.payload_len() == 0
    }

    /// True when the image is header-safe for flash write units of
    /// `write_size` bytes (see [`header_is_write_safe`]).
    pub fn is_header_safe(&self, write_size: usize) -> bool {
        header_is_write_safe(self.slice(0..self.header.payload_offset), write_size)
    }

    /// Offset of the payload's first byte; indirect data offsets count from here.
    pub fn payload_offset(&self) -> usize {
        self.header.payload_offset
    }

    /// The payload: the top-level records.
    pub fn payload(&self) -> &'a [u8] {
        self.slice(self.header.payload_offset..self.header.end)
    }

    /// The top-level records, including padding and extension records.
    pub fn records(&self) -> Records<'a> {
        Records::new(self.bytes, self.header.payload_offset, self.header.end)
    }

    /// The root directory.
    pub fn root(&self) -> Dir<'a> {
        Dir {
            image: *self,
            info: self.reader().root(),
        }
    }

    /// The node whose record starts at `id` (see [`Node::id`]); 0 is the root.
    pub fn node(&self, id: usize) -> Result<Node<'a>, Error> {
        Ok(self.wrap(self.reader().node(id)?))
    }

    /// Look a path up exactly as MicroPython's `vfs.VfsRom` does: one optional
    /// leading `/`, names compared byte for byte in stored order, the first
    /// match wins, and a file matched with path left over is not found.
    /// `Ok(None)` means not found; `Err` means the image is corrupt on the way.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<Node<'a>>, Error> {
        Ok(self.reader().lookup(path)?.map(|n| self.wrap(n)))
    }

    /// The node a directory or file record describes, `None` for other kinds.
    pub fn node_from_record(&self, rec: &Record<'a>) -> Result<Option<Node<'a>>, Error> {
        let node = self.reader().node_from_record(&rec.header())?;
        Ok(node.map(|n| self.wrap(n)))
    }

    /// Decode the name of a directory or file record; returns it and the
    /// offset just past it.
    pub(crate) fn name_of(&self, rec: &Record<'a>) -> Result<(&'a [u8], usize), Error> {
        let (start, len) = self.reader().name_of(&rec.header())?;
        Ok((self.slice(start..start + len), start + len))
    }

    /// The node found by the generic reader, with its slices.
    pub fn wrap(&self, info: NodeInfo) -> Node<'a> {
        match info.is_dir() {
            true => Node::Dir(Dir { image: *self, info }),
            false => Node::File(File { image: *self, info }),
        }
    }

    /// `bytes[range]`; ranges come from the reader, which checked them.
    fn slice(&self, range: core::ops::Range<usize>) -> &'a [u8] {
        self.bytes.get(range).unwrap_or(&[])
    }
}

/// A directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node<'a> {
    /// A directory.
    Dir(Dir<'a>),
    /// A file.
    File(File<'a>),
}

impl<'a> Node<'a> {
    /// Where the node is in the image.
    pub fn info(&self) -> NodeInfo {
        match self {
            Node::Dir(d) => d.info,
            Node::File(f) => f.info,
        }
    }

    /// The name as stored (empty for the root).
    pub fn name(&self) -> &'a [u8] {
        match self {
            Node::Dir(d) => d.name(),
            Node::File(f) => f.name(),
        }
    }

    /// A stable identity: the offset of the node's record (0 for the root).
    pub fn id(&self) -> usize {
        self.info().id()
    }

    /// The size MicroPython reports: a file's data length, or a directory's
    /// payload length after its name.
    pub fn size(&self) -> usize {
        self.info().size()
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::Dir(_))
    }

    /// The directory, if this is one.
    pub fn as_dir(&self) -> Option<Dir<'a>> {
        match self {
            Node::Dir(d) => Some(*d),
            Node::File(_) => None,
        }
    }

    /// The file, if this is one.
    pub fn as_file(&self) -> Option<File<'a>> {
        match self {
            Node::File(f) => Some(*f),
            Node::Dir(_) => None,
        }
    }
}

/// A directory in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dir<'a> {
    image: Image<'a>,
    info: NodeInfo,
}

impl<'a> Dir<'a> {
    /// The name as stored (empty for the root).
    pub fn name(&self) -> &'a [u8] {
        self.image.slice(self.info.name_range())
    }

    /// Offset of the directory's record (0 for the root).
    pub fn id(&self) -> usize {
        self.info.id()
    }

    /// True for the root directory.
    pub fn is_root(&self) -> bool {
        self.info.is_root()
    }

    /// The size MicroPython reports for a directory: its payload after the name.
    pub fn size(&self) -> usize {
        self.info.size()
    }

    /// The byte range of the nested records (absolute offsets).
    pub fn body(&self) -> core::ops::Range<usize> {
        self.info.body()
    }

    /// All nested records, entries and others.
    pub fn records(&self) -> Records<'a> {
        let body = self.info.body();
        Records::new(self.image.bytes, body.start, body.end)
    }

    /// The directory's entries in stored order. Padding and unknown records
    /// are skipped; a kind-0 record ends the listing; a corrupt record yields
    /// one error and ends it.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            image: self.image,
            entries: self.image.reader().entries(&self.info),
        }
    }

    /// The first entry named `name` (first match wins, as in MicroPython).
    pub fn find(&self, name: &[u8]) -> Result<Option<Node<'a>>, Error> {
        let found = self.image.reader().find(&self.info, name)?;
        Ok(found.map(|n| self.image.wrap(n)))
    }
}

/// A file in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    image: Image<'a>,
    info: NodeInfo,
}

impl<'a> File<'a> {
    /// The name as stored.
    pub fn name(&self) -> &'a [u8] {
        self.image.slice(self.info.name_range())
    }

    /// Offset of the file's record.
    pub fn id(&self) -> usize {
        self.info.id()
    }

    /// The file's contents, borrowed from the image (zero copy).
    pub fn data(&self) -> &'a [u8] {
        self.image.slice(self.info.data())
    }

    /// Length of the contents.
    pub fn len(&self) -> usize {
        self.info.size()
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset of the contents from the image start (what alignment is about).
    pub fn data_offset(&self) -> usize {
        self.info.data_offset()
    }

    /// True when the contents come through an indirect record (shared data).
    pub fn is_indirect(&self) -> bool {
        self.info.is_indirect()
    }

    /// The file's nested records (its data record, padding, metadata).
    pub fn records(&self) -> Records<'a> {
        let body = self.info.body();
        Records::new(self.image.bytes, body.start, body.end)
    }
}

/// Iterator over a directory's entries; see [`Dir::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    image: Image<'a>,
    entries: reader::Entries,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Node<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut reader = self.image.reader();
        Some(match self.entries.next(&mut reader)? {
            Ok(info) => Ok(self.image.wrap(info)),
            Err(e) => Err(e.into()),
        })
    }
}
