//! The zero-copy read API: an [`Image`] borrowed from a byte slice, its
//! directories, files, and path lookup with MicroPython's semantics.

use crate::error::{Error, ErrorKind};
use crate::record::{kind, Record, Records};
use crate::varuint;

/// The three bytes every image starts with: record kind 0x14a6b1 ("RM1").
pub const HEADER: [u8; 3] = [0xd2, 0xcd, 0x31];

/// Digits of the image length that a header-safe image (see
/// [`header_is_write_safe`]) puts after its first flash write unit. Any
/// garbage in the first unit then has a weight of at least
/// 128^10 = 2^70: a decoder that accumulates in a 32- or 64-bit word (as
/// MicroPython's does) shifts it out entirely and reads the true length, and
/// a checking decoder (ours) refuses the value as an overflow.
pub const HEADER_SAFE_DIGITS: usize = 10;

/// True when an image starting with `head` (its first bytes, at least up to
/// the end of the image length varuint) is *header-safe* for a flash whose
/// write unit is `write_size` bytes: however a program of its first write
/// unit over erased flash (0xFF, bits only cleared) is interrupted, a reader
/// that checks only what MicroPython checks sees no image (the magic is
/// incomplete) or exactly this image.
///
/// That holds for every image when `write_size <= 3` (the first unit holds
/// only magic bytes). For larger units the first unit must be constant,
/// `d2 cd 31` then `write_size - 3` bytes of `0x80` (length padding), and the
/// length varuint must continue for at least [`HEADER_SAFE_DIGITS`] bytes
/// after it. The writer produces this with
/// [`Options::header_write_size`](crate::write::Options::header_write_size).
pub fn header_is_write_safe(head: &[u8], write_size: usize) -> bool {
    if head.get(..3) != Some(&HEADER[..]) {
        return false;
    }
    if write_size <= HEADER.len() {
        return true;
    }
    let Some(pad) = head.get(HEADER.len()..write_size) else {
        return false;
    };
    if pad.iter().any(|&b| b != 0x80) {
        return false;
    }
    match varuint::decode(head, HEADER.len(), head.len()) {
        Ok((_, end)) => end >= write_size + HEADER_SAFE_DIGITS,
        Err(_) => false,
    }
}

/// A parsed ROMFS image borrowed from the bytes that hold it.
///
/// Parsing checks only the header and declared length, so it is O(1); every
/// other check happens as the image is walked (or all at once in
/// [`Image::verify`](crate::verify)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image<'a> {
    bytes: &'a [u8],
    payload_offset: usize,
}

impl<'a> Image<'a> {
    /// Parse the image at the start of `buf`. Bytes after the declared length
    /// are ignored, as in a flash partition larger than its image.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        if buf.len() < 4 {
            return Err(Error::new(ErrorKind::TooShort, 0));
        }
        if buf[..3] != HEADER {
            return Err(Error::new(ErrorKind::BadMagic, 0));
        }
        let (len, payload_offset) = varuint::decode(buf, 3, buf.len()).map_err(|e| {
            if e.kind == ErrorKind::VaruintTruncated {
                Error::new(
                    ErrorKind::ImagePastEnd {
                        declared: buf.len() as u64 + 1,
                        available: buf.len() as u64,
                    },
                    3,
                )
            } else {
                e
            }
        })?;
        let available = buf.len() - payload_offset;
        if len > available as u64 {
            return Err(Error::new(
                ErrorKind::ImagePastEnd {
                    declared: payload_offset as u64 + len,
                    available: buf.len() as u64,
                },
                3,
            ));
        }
        let end = payload_offset + len as usize;
        Ok(Image {
            bytes: &buf[..end],
            payload_offset,
        })
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
        self.payload_offset == self.bytes.len()
    }

    /// True when the image is header-safe for flash write units of
    /// `write_size` bytes (see [`header_is_write_safe`]).
    pub fn is_header_safe(&self, write_size: usize) -> bool {
        header_is_write_safe(&self.bytes[..self.payload_offset], write_size)
    }

    /// Offset of the payload's first byte; indirect data offsets count from here.
    pub fn payload_offset(&self) -> usize {
        self.payload_offset
    }

    /// The payload: the top-level records.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.payload_offset..]
    }

    /// The top-level records, including padding and extension records.
    pub fn records(&self) -> Records<'a> {
        Records::new(self.bytes, self.payload_offset, self.bytes.len())
    }

    /// The root directory.
    pub fn root(&self) -> Dir<'a> {
        Dir {
            image: *self,
            offset: 0,
            name: &[],
            body_start: self.payload_offset,
            body_end: self.bytes.len(),
        }
    }

    /// The node whose record starts at `id` (see [`Node::id`]); 0 is the root.
    pub fn node(&self, id: usize) -> Result<Node<'a>, Error> {
        if id == 0 {
            return Ok(Node::Dir(self.root()));
        }
        if id < self.payload_offset {
            return Err(Error::new(ErrorKind::NoNodeAtOffset, id));
        }
        match Records::new(self.bytes, id, self.bytes.len()).next() {
            Some(Ok(rec)) => self
                .node_from_record(&rec)?
                .ok_or(Error::new(ErrorKind::NoNodeAtOffset, id)),
            Some(Err(e)) => Err(e),
            None => Err(Error::new(ErrorKind::NoNodeAtOffset, id)),
        }
    }

    /// Look a path up exactly as MicroPython's `vfs.VfsRom` does: one optional
    /// leading `/`, names compared byte for byte in stored order, the first
    /// match wins, and a file matched with path left over is not found.
    /// `Ok(None)` means not found; `Err` means the image is corrupt on the way.
    pub fn lookup(&self, path: &[u8]) -> Result<Option<Node<'a>>, Error> {
        let mut path = path.strip_prefix(b"/").unwrap_or(path);
        let mut current = Node::Dir(self.root());
        let mut records = self.records();
        while !path.is_empty() {
            let rec = match records.next() {
                None => return Ok(None),
                Some(rec) => rec?,
            };
            match rec.kind {
                kind::UNUSED => return Ok(None),
                kind::DIRECTORY | kind::FILE => {
                    let (name, body_start) = self.name_of(&rec)?;
                    let matches = (name.len() == path.len()
                        || (name.len() < path.len() && path[name.len()] == b'/'))
                        && path.starts_with(name);
                    if !matches {
                        continue;
                    }
                    path = &path[name.len()..];
                    if rec.kind == kind::DIRECTORY {
                        path = path.strip_prefix(b"/").unwrap_or(path);
                        let dir = Dir {
                            image: *self,
                            offset: rec.offset,
                            name,
                            body_start,
                            body_end: rec.end(),
                        };
                        records = dir.records();
                        current = Node::Dir(dir);
                    } else if !path.is_empty() {
                        return Ok(None);
                    } else {
                        return self
                            .file(&rec, name, body_start)
                            .map(|f| Some(Node::File(f)));
                    }
                }
                _ => {}
            }
        }
        Ok(Some(current))
    }

    /// Decode the name of a directory or file record; returns it and the
    /// offset just past it.
    pub(crate) fn name_of(&self, rec: &Record<'a>) -> Result<(&'a [u8], usize), Error> {
        let (len, start) = varuint::decode(self.bytes, rec.payload_offset, rec.end())?;
        if len > (rec.end() - start) as u64 {
            return Err(Error::new(ErrorKind::NameLengthPastRecord, rec.offset));
        }
        let end = start + len as usize;
        Ok((&self.bytes[start..end], end))
    }

    /// The node a directory or file record describes, `None` for other kinds.
    pub fn node_from_record(&self, rec: &Record<'a>) -> Result<Option<Node<'a>>, Error> {
        match rec.kind {
            kind::DIRECTORY => {
                let (name, body_start) = self.name_of(rec)?;
                Ok(Some(Node::Dir(Dir {
                    image: *self,
                    offset: rec.offset,
                    name,
                    body_start,
                    body_end: rec.end(),
                })))
            }
            kind::FILE => {
                let (name, body_start) = self.name_of(rec)?;
                self.file(rec, name, body_start)
                    .map(|f| Some(Node::File(f)))
            }
            _ => Ok(None),
        }
    }

    fn file(&self, rec: &Record<'a>, name: &'a [u8], body_start: usize) -> Result<File<'a>, Error> {
        let (data_offset, data_len, indirect) = self.file_data(rec, body_start)?;
        Ok(File {
            image: *self,
            offset: rec.offset,
            name,
            body_start,
            body_end: rec.end(),
            data_offset,
            data_len,
            indirect,
        })
    }

    /// Find a file's data: the first verbatim or indirect record among its
    /// nested records. Returns (absolute offset, length, indirect?).
    fn file_data(
        &self,
        rec: &Record<'a>,
        body_start: usize,
    ) -> Result<(usize, usize, bool), Error> {
        for nested in Records::new(self.bytes, body_start, rec.end()) {
            let nested = nested?;
            match nested.kind {
                kind::UNUSED => break,
                kind::DATA_VERBATIM => {
                    return Ok((nested.payload_offset, nested.payload.len(), false))
                }
                kind::DATA_INDIRECT => {
                    let (size, p) =
                        varuint::decode(self.bytes, nested.payload_offset, nested.end())?;
                    let (offset, _) = varuint::decode(self.bytes, p, nested.end())?;
                    let payload_len = (self.bytes.len() - self.payload_offset) as u64;
                    if offset > payload_len || size > payload_len - offset {
                        return Err(Error::new(ErrorKind::IndirectOutOfRange, nested.offset));
                    }
                    return Ok((self.payload_offset + offset as usize, size as usize, true));
                }
                _ => {}
            }
        }
        Err(Error::new(ErrorKind::FileWithoutData, rec.offset))
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
    /// The name as stored (empty for the root).
    pub fn name(&self) -> &'a [u8] {
        match self {
            Node::Dir(d) => d.name,
            Node::File(f) => f.name,
        }
    }

    /// A stable identity: the offset of the node's record (0 for the root).
    pub fn id(&self) -> usize {
        match self {
            Node::Dir(d) => d.offset,
            Node::File(f) => f.offset,
        }
    }

    /// The size MicroPython reports: a file's data length, or a directory's
    /// payload length after its name.
    pub fn size(&self) -> usize {
        match self {
            Node::Dir(d) => d.size(),
            Node::File(f) => f.len(),
        }
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
    offset: usize,
    name: &'a [u8],
    body_start: usize,
    body_end: usize,
}

impl<'a> Dir<'a> {
    /// The name as stored (empty for the root).
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// Offset of the directory's record (0 for the root).
    pub fn id(&self) -> usize {
        self.offset
    }

    /// True for the root directory.
    pub fn is_root(&self) -> bool {
        self.offset == 0
    }

    /// The size MicroPython reports for a directory: its payload after the name.
    pub fn size(&self) -> usize {
        self.body_end - self.body_start
    }

    /// The byte range of the nested records (absolute offsets).
    pub fn body(&self) -> core::ops::Range<usize> {
        self.body_start..self.body_end
    }

    /// All nested records, entries and others.
    pub fn records(&self) -> Records<'a> {
        Records::new(self.image.bytes, self.body_start, self.body_end)
    }

    /// The directory's entries in stored order. Padding and unknown records
    /// are skipped; a kind-0 record ends the listing; a corrupt record yields
    /// one error and ends it.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            image: self.image,
            records: self.records(),
        }
    }

    /// The first entry named `name` (first match wins, as in MicroPython).
    pub fn find(&self, name: &[u8]) -> Result<Option<Node<'a>>, Error> {
        for entry in self.entries() {
            let entry = entry?;
            if entry.name() == name {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}

/// A file in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    image: Image<'a>,
    offset: usize,
    name: &'a [u8],
    body_start: usize,
    body_end: usize,
    data_offset: usize,
    data_len: usize,
    indirect: bool,
}

impl<'a> File<'a> {
    /// The name as stored.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// Offset of the file's record.
    pub fn id(&self) -> usize {
        self.offset
    }

    /// The file's contents, borrowed from the image (zero copy).
    pub fn data(&self) -> &'a [u8] {
        &self.image.bytes[self.data_offset..self.data_offset + self.data_len]
    }

    /// Length of the contents.
    pub fn len(&self) -> usize {
        self.data_len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.data_len == 0
    }

    /// Offset of the contents from the image start (what alignment is about).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// True when the contents come through an indirect record (shared data).
    pub fn is_indirect(&self) -> bool {
        self.indirect
    }

    /// The file's nested records (its data record, padding, metadata).
    pub fn records(&self) -> Records<'a> {
        Records::new(self.image.bytes, self.body_start, self.body_end)
    }
}

/// Iterator over a directory's entries; see [`Dir::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    image: Image<'a>,
    records: Records<'a>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Node<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rec = match self.records.next()? {
                Ok(rec) => rec,
                Err(e) => return Some(Err(e)),
            };
            if rec.kind == kind::UNUSED {
                return None;
            }
            match self.image.node_from_record(&rec) {
                Ok(Some(node)) => return Some(Ok(node)),
                Ok(None) => continue,
                Err(e) => {
                    self.records = Records::new(&[], 0, 0);
                    return Some(Err(e));
                }
            }
        }
    }
}
