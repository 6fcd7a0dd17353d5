//! The one implementation of reading an image: names, lookup, listing, data
//! resolution, checksum and metadata lookup, over any [`Source`].
//!
//! [`Image`](crate::Image) is the zero-copy front end over a byte slice;
//! romfs-embedded's flash reader is a front end over a buffered flash
//! device. Both call this code, so they answer every question alike.

use crate::error::{Error, ErrorKind};
use crate::ext::{self, Checksum};
use crate::header::Header;
use crate::record::{kind, Cursor, RecordHeader};
use crate::signature::TAG_SIGNATURE;
use crate::source::{bytes_equal, visit, ReadError, Source};
use crate::varuint;

/// A directory or a file of an image, as offsets into it: what
/// [`Reader::lookup`] and [`Entries`] find. It stays valid for the image it
/// came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    is_dir: bool,
    indirect: bool,
    offset: usize,
    name_start: usize,
    name_len: usize,
    body_start: usize,
    body_end: usize,
    data_offset: usize,
    data_len: usize,
}

impl NodeInfo {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// True for a file.
    pub fn is_file(&self) -> bool {
        !self.is_dir
    }

    /// A stable identity: the offset of the node's record (0 for the root).
    pub fn id(&self) -> usize {
        self.offset
    }

    /// True for the root directory.
    pub fn is_root(&self) -> bool {
        self.offset == 0
    }

    /// Where the name is: its offset from the image start and its length.
    pub fn name_range(&self) -> core::ops::Range<usize> {
        self.name_start..self.name_start + self.name_len
    }

    /// Length of the name in bytes.
    pub fn name_len(&self) -> usize {
        self.name_len
    }

    /// The byte range of the nested records (entries of a directory; data,
    /// padding and other records of a file).
    pub fn body(&self) -> core::ops::Range<usize> {
        self.body_start..self.body_end
    }

    /// The size MicroPython reports: a file's data length, or a directory's
    /// payload length after its name.
    pub fn size(&self) -> usize {
        if self.is_dir {
            self.body_end - self.body_start
        } else {
            self.data_len
        }
    }

    /// Where a file's contents are, from the image start (empty for a directory).
    pub fn data(&self) -> core::ops::Range<usize> {
        self.data_offset..self.data_offset + self.data_len
    }

    /// Offset of a file's contents from the image start (0 for a directory).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// True when a file's contents come through an indirect record (shared data).
    pub fn is_indirect(&self) -> bool {
        self.indirect
    }

    /// `stat` as MicroPython gives it: (mode, size).
    pub fn stat(&self) -> (u32, usize) {
        (if self.is_dir { 0x4000 } else { 0x8000 }, self.size())
    }
}

/// An image in a [`Source`]: its header, checked, and the source.
#[derive(Debug, Clone, Copy)]
pub struct Reader<S> {
    src: S,
    header: Header,
}

type Result<T, S> = core::result::Result<T, ReadError<<S as Source>::Error>>;

fn format_error<E>(kind: ErrorKind, offset: usize) -> ReadError<E> {
    ReadError::Format(Error::new(kind, offset))
}

impl<S: Source> Reader<S> {
    /// Read the header at the start of `src` (see [`Header::parse`]).
    pub fn new(mut src: S) -> core::result::Result<Self, ReadError<S::Error>> {
        let header = Header::parse(&mut src)?;
        Ok(Reader { src, header })
    }

    /// A reader of an image whose header was already checked against `src`.
    pub fn with_header(src: S, header: Header) -> Self {
        Reader { src, header }
    }

    /// The image's header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The source.
    pub fn source(&mut self) -> &mut S {
        &mut self.src
    }

    /// The source back.
    pub fn into_source(self) -> S {
        self.src
    }

    /// The root directory.
    pub fn root(&self) -> NodeInfo {
        NodeInfo {
            is_dir: true,
            indirect: false,
            offset: 0,
            name_start: 0,
            name_len: 0,
            body_start: self.header.payload_offset,
            body_end: self.header.end,
            data_offset: 0,
            data_len: 0,
        }
    }

    /// The top-level records, including padding and extension records.
    pub fn records(&self) -> Cursor {
        Cursor::new(self.header.payload_offset, self.header.end)
    }

    /// The next record of `cursor`.
    pub fn next_record(&mut self, cursor: &mut Cursor) -> Option<Result<RecordHeader, S>> {
        cursor.next(&mut self.src)
    }

    /// The name of a directory or file record: its offset and length (the
    /// nested records start just past it).
    pub fn name_of(&mut self, rec: &RecordHeader) -> Result<(usize, usize), S> {
        let (len, start) = varuint::decode_at(&mut self.src, rec.payload_offset, rec.end())?;
        if len > (rec.end() - start) as u64 {
            return Err(format_error(ErrorKind::NameLengthPastRecord, rec.offset));
        }
        Ok((start, len as usize))
    }

    /// The node a directory or file record describes; `None` for other kinds.
    pub fn node_from_record(&mut self, rec: &RecordHeader) -> Result<Option<NodeInfo>, S> {
        let is_dir = match rec.kind {
            kind::DIRECTORY => true,
            kind::FILE => false,
            _ => return Ok(None),
        };
        let (name_start, name_len) = self.name_of(rec)?;
        let body_start = name_start + name_len;
        let mut node = NodeInfo {
            is_dir,
            indirect: false,
            offset: rec.offset,
            name_start,
            name_len,
            body_start,
            body_end: rec.end(),
            data_offset: 0,
            data_len: 0,
        };
        if !is_dir {
            self.resolve_data(&mut node)?;
        }
        Ok(Some(node))
    }

    /// Find a file's data: the first verbatim or indirect record among its
    /// nested records.
    fn resolve_data(&mut self, node: &mut NodeInfo) -> Result<(), S> {
        let mut nested = Cursor::new(node.body_start, node.body_end);
        while let Some(rec) = nested.next(&mut self.src) {
            let rec = rec?;
            match rec.kind {
                kind::UNUSED => break,
                kind::DATA_VERBATIM => {
                    node.data_offset = rec.payload_offset;
                    node.data_len = rec.len;
                    return Ok(());
                }
                kind::DATA_INDIRECT => {
                    let src = &mut self.src;
                    let (size, p) = varuint::decode_at(src, rec.payload_offset, rec.end())?;
                    let (offset, _) = varuint::decode_at(src, p, rec.end())?;
                    let payload_len = self.header.payload_len() as u64;
                    if offset > payload_len || size > payload_len - offset {
                        return Err(format_error(ErrorKind::IndirectOutOfRange, rec.offset));
                    }
                    node.data_offset = self.header.payload_offset + offset as usize;
                    node.data_len = size as usize;
                    node.indirect = true;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(format_error(ErrorKind::FileWithoutData, node.offset))
    }

    /// The node whose record starts at `id` (see [`NodeInfo::id`]); 0 is the root.
    pub fn node(&mut self, id: usize) -> Result<NodeInfo, S> {
        if id == 0 {
            return Ok(self.root());
        }
        if id < self.header.payload_offset {
            return Err(format_error(ErrorKind::NoNodeAtOffset, id));
        }
        match Cursor::new(id, self.header.end).next(&mut self.src) {
            Some(rec) => self
                .node_from_record(&rec?)?
                .ok_or(format_error(ErrorKind::NoNodeAtOffset, id)),
            None => Err(format_error(ErrorKind::NoNodeAtOffset, id)),
        }
    }

    /// True when `node`'s name is `name`.
    pub fn name_is(&mut self, node: &NodeInfo, name: &[u8]) -> Result<bool, S> {
        Ok(node.name_len == name.len() && bytes_equal(&mut self.src, node.name_start, name)?)
    }

    /// Look a path up exactly as MicroPython's `vfs.VfsRom` does: one optional
    /// leading `/`, names compared byte for byte in stored order, the first
    /// match wins, and a file matched with path left over is not found.
    /// `Ok(None)` means not found; `Err` means the image is corrupt on the way.
    pub fn lookup(&mut self, path: &[u8]) -> Result<Option<NodeInfo>, S> {
        let mut path = path.strip_prefix(b"/").unwrap_or(path);
        let mut current = self.root();
        let mut records = self.records();
        while !path.is_empty() {
            let rec = match records.next(&mut self.src) {
                None => return Ok(None),
                Some(rec) => rec?,
            };
            match rec.kind {
                kind::UNUSED => return Ok(None),
                kind::DIRECTORY | kind::FILE => {
                    let (name_start, n) = self.name_of(&rec)?;
                    let ends_here = n == path.len() || path.get(n) == Some(&b'/');
                    if !ends_here || !bytes_equal(&mut self.src, name_start, &path[..n])? {
                        continue;
                    }
                    path = &path[n..];
                    if rec.kind == kind::FILE {
                        return match path.is_empty() {
                            true => self.node_from_record(&rec),
                            false => Ok(None),
                        };
                    }
                    path = path.strip_prefix(b"/").unwrap_or(path);
                    current = NodeInfo {
                        is_dir: true,
                        indirect: false,
                        offset: rec.offset,
                        name_start,
                        name_len: n,
                        body_start: name_start + n,
                        body_end: rec.end(),
                        data_offset: 0,
                        data_len: 0,
                    };
                    records = Cursor::new(current.body_start, current.body_end);
                }
                _ => {}
            }
        }
        Ok(Some(current))
    }

    /// A directory's entries in stored order; none for a file.
    pub fn entries(&self, dir: &NodeInfo) -> Entries {
        Entries {
            records: match dir.is_dir {
                true => Cursor::new(dir.body_start, dir.body_end),
                false => Cursor::empty(),
            },
        }
    }

    /// The first entry of `dir` named `name` (first match wins, as in MicroPython).
    pub fn find(&mut self, dir: &NodeInfo, name: &[u8]) -> Result<Option<NodeInfo>, S> {
        let mut entries = self.entries(dir);
        while let Some(entry) = entries.next(self) {
            let entry = entry?;
            if self.name_is(&entry, name)? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// CRC-32 of the image bytes `start..end` (clamped to the image).
    pub fn crc32(&mut self, start: usize, end: usize) -> Result<u32, S> {
        let mut h = crate::crc32::Hasher::new();
        visit(&mut self.src, start, end.min(self.header.end), |w| {
            h.update(w);
            true
        })?;
        Ok(h.finalize())
    }

    /// The last two top-level records (the one before the last, and the
    /// last), if the top-level records all decode.
    fn last_top_level_records(&mut self) -> Result<[Option<RecordHeader>; 2], S> {
        let mut records = self.records();
        let mut last = [None, None];
        while let Some(rec) = records.next(&mut self.src) {
            match rec {
                Ok(rec) => last = [last[1], Some(rec)],
                Err(ReadError::Format(_)) => return Ok([None, None]),
                Err(e) => return Err(e),
            }
        }
        Ok(last)
    }

    /// True when `rec` is one of our extension records with `tag`.
    fn is_extension(&mut self, rec: &RecordHeader, tag: u8) -> Result<bool, S> {
        if rec.kind != kind::PADDING || rec.len < ext::EXTENSION_PREFIX_LEN {
            return Ok(false);
        }
        let mut prefix = [0u8; ext::EXTENSION_PREFIX_LEN];
        self.src.read_exact_at(rec.payload_offset, &mut prefix)?;
        Ok(ext::extension_tag(&prefix) == Some(tag))
    }

    /// The signature record, if the last top-level record is one (whether
    /// or not its manifest is well formed): [`Reader::trailer`]'s.
    pub fn signature_record(&mut self) -> Result<Option<RecordHeader>, S> {
        Ok(self.trailer()?.signature)
    }

    /// The checksum record, if the last top-level record is one (or the
    /// last before a final signature record): its offset and the stored CRC.
    pub fn checksum_record(&mut self) -> Result<Option<(usize, u32)>, S> {
        Ok(self.checksum_rec()?.map(|(rec, crc)| (rec.offset, crc)))
    }

    /// The offset just past the checksum value (the checksummed bytes are
    /// the ones before its last 4), if the image has a checksum record.
    pub fn checksum_end(&mut self) -> Result<Option<usize>, S> {
        Ok(self.stored_checksum()?.map(|(end, _)| end))
    }

    /// The checksum record's value and where it ends (the checksummed bytes
    /// are the ones before its last 4), if the image has one.
    pub fn stored_checksum(&mut self) -> Result<Option<(usize, u32)>, S> {
        Ok(self.checksum_rec()?.map(|(rec, crc)| (rec.end(), crc)))
    }

    fn checksum_rec(&mut self) -> Result<Option<(RecordHeader, u32)>, S> {
        Ok(self.trailer()?.checksum)
    }

    /// The checksum and signature records that end the image, found in one
    /// pass over the top level: the one place they are looked up (every
    /// other lookup of either record is this, and each makes a pass of its
    /// own, so a caller that needs both asks for the trailer once).
    pub fn trailer(&mut self) -> Result<Trailer, S> {
        let mut trailer = Trailer::default();
        let [before, Some(last)] = self.last_top_level_records()? else {
            return Ok(trailer);
        };
        let checksum = if self.is_extension(&last, TAG_SIGNATURE)? {
            trailer.signature = Some(last);
            before
        } else {
            Some(last)
        };
        if let Some(rec) = checksum.filter(|r| r.kind == kind::PADDING) {
            let mut payload = [0u8; ext::CHECKSUM_PAYLOAD_LEN];
            if rec.len == payload.len() {
                self.src.read_exact_at(rec.payload_offset, &mut payload)?;
                trailer.checksum = ext::checksum_value(&payload).map(|crc| (rec, crc));
            }
        }
        Ok(trailer)
    }

    /// [`Reader::checksum`] given the image's [`Reader::trailer`].
    pub fn checksum_of(&mut self, trailer: &Trailer) -> Result<Checksum, S> {
        let Some((rec, stored)) = trailer.checksum else {
            return Ok(Checksum::Absent);
        };
        let computed = self.crc32(0, rec.end() - 4)?;
        Ok(match computed == stored {
            true => Checksum::Valid(stored),
            false => Checksum::Mismatch { stored, computed },
        })
    }

    /// Check the integrity checksum: CRC-32 of every image byte before the
    /// stored value, which is the image's last 4 bytes.
    pub fn checksum(&mut self) -> Result<Checksum, S> {
        let trailer = self.trailer()?;
        self.checksum_of(&trailer)
    }

    /// The image's identity: CRC-32 of its bytes before its checksum value,
    /// that is the stored checksum of an image with a checksum record (when
    /// intact), and the CRC-32 of the whole image otherwise. Unlike the CRC
    /// of a whole checksummed image (always the CRC residue), it differs
    /// between images, and a server can know it in advance.
    pub fn identity(&mut self) -> Result<u32, S> {
        let end = match self.checksum_end()? {
            Some(end) => end - 4,
            None => self.header.end,
        };
        self.crc32(0, end)
    }

    /// The first top-level extension record with `tag`: its record header
    /// (the body starts 4 bytes into the payload, after magic and tag).
    pub fn extension_record(&mut self, tag: u8) -> Result<Option<RecordHeader>, S> {
        let mut records = self.records();
        while let Some(rec) = records.next(&mut self.src) {
            let rec = rec?;
            if rec.kind != kind::PADDING || rec.len < ext::EXTENSION_PREFIX_LEN {
                continue;
            }
            let mut prefix = [0u8; ext::EXTENSION_PREFIX_LEN];
            self.src.read_exact_at(rec.payload_offset, &mut prefix)?;
            if ext::extension_tag(&prefix) == Some(tag) {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }
}

/// The records that end an image (see [`Reader::trailer`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trailer {
    /// The checksum record and its stored value: the last top-level record,
    /// or the last before a final signature record.
    pub checksum: Option<(RecordHeader, u32)>,
    /// The signature record, when it is the last top-level record.
    pub signature: Option<RecordHeader>,
}

/// A position in a directory's entries; see [`Reader::entries`]. Padding
/// and unknown records are skipped; a kind-0 record ends the listing; a
/// corrupt record gives one error and ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entries {
    records: Cursor,
}

impl Entries {
    /// The next entry, read through `reader`.
    pub fn next<S: Source>(&mut self, reader: &mut Reader<S>) -> Option<Result<NodeInfo, S>> {
        loop {
            let rec = match self.records.next(&mut reader.src)? {
                Ok(rec) => rec,
                Err(e) => return Some(Err(e)),
            };
            if rec.kind == kind::UNUSED {
                return None;
            }
            match reader.node_from_record(&rec) {
                Ok(Some(node)) => return Some(Ok(node)),
                Ok(None) => continue,
                Err(e) => {
                    self.records = Cursor::empty();
                    return Some(Err(e));
                }
            }
        }
    }
}
