//! Images in flash that is not memory mapped (e.g. SPI NOR): look paths up,
//! list directories and read files through one fixed-size buffer.
//!
//! This is a streaming re-implementation of `romfs-format`'s reader with
//! identical semantics (same varuint limits, kind 0 stops a scan, first match
//! wins, optional leading `/`, same errors at the same offsets); the tests
//! cross-check it against [`romfs_format::Image::lookup`].

use embedded_storage::nor_flash::ReadNorFlash;
use romfs_format::record::kind;
use romfs_format::varuint::{MAX_ENCODED_LEN, MAX_VALUE};
use romfs_format::{ErrorKind, HEADER};

pub use crate::io::ReadStats;
use crate::Error;

fn fmt_err<E>(kind: ErrorKind, offset: u32) -> Error<E> {
    Error::Format(romfs_format::Error {
        kind,
        offset: offset as usize,
    })
}

/// A directory or file of an image in flash: a handful of offsets, valid
/// for the [`FlashFs`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FsNode {
    is_dir: bool,
    offset: u32,
    name_start: u32,
    name_len: u32,
    body_start: u32,
    body_end: u32,
    data_offset: u32,
    data_len: u32,
}

impl FsNode {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// True for a file.
    pub fn is_file(&self) -> bool {
        !self.is_dir
    }

    /// A stable identity: the offset of the node's record (0 for the root),
    /// the same as [`romfs_format::Node::id`].
    pub fn id(&self) -> usize {
        self.offset as usize
    }

    /// Length of the name in bytes (read it with [`FlashFs::read_name`]).
    pub fn name_len(&self) -> usize {
        self.name_len as usize
    }

    /// The size MicroPython reports (as [`romfs_format::Node::size`]): a
    /// file's data length, or a directory's payload length after its name.
    pub fn size(&self) -> usize {
        if self.is_dir {
            (self.body_end - self.body_start) as usize
        } else {
            self.data_len as usize
        }
    }

    /// Offset of a file's contents from the image start (0 for directories).
    pub fn data_offset(&self) -> usize {
        self.data_offset as usize
    }

    /// Stat as MicroPython gives it: (mode, size).
    pub fn stat(&self) -> (u32, usize) {
        (if self.is_dir { 0x4000 } else { 0x8000 }, self.size())
    }
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    kind: u64,
    offset: u32,
    payload_offset: u32,
    len: u32,
}

impl Rec {
    fn end(&self) -> u32 {
        self.payload_offset + self.len
    }
}

/// An image in a `ReadNorFlash` (usually a [`Partition`](crate::Partition)
/// whose first byte is the image's first byte), read through an `N`-byte
/// buffer. RAM use is the buffer plus a few words; every read the flash sees
/// is `READ_SIZE`-aligned.
#[derive(Debug)]
pub struct FlashFs<F, const N: usize> {
    flash: F,
    buf: [u8; N],
    win_start: u32,
    win_len: u32,
    payload_offset: u32,
    image_end: u32,
    stats: ReadStats,
}

impl<F: ReadNorFlash, const N: usize> FlashFs<F, N> {
    const BUFFER_FITS: () = assert!(
        N >= F::READ_SIZE && N > 0,
        "FlashFs buffer must hold READ_SIZE bytes"
    );

    /// Mount the image at the start of `flash`. Fails as
    /// [`romfs_format::Image::parse`] would on the flash's whole contents.
    pub fn mount(flash: F) -> Result<Self, Error<F::Error>> {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUFFER_FITS;
        let cap = u32::try_from(flash.capacity()).unwrap_or(u32::MAX);
        let mut fs = FlashFs {
            flash,
            buf: [0; N],
            win_start: 0,
            win_len: 0,
            payload_offset: 0,
            image_end: cap,
            stats: ReadStats::default(),
        };
        if cap < 4 {
            return Err(fmt_err(ErrorKind::TooShort, 0));
        }
        for (i, h) in HEADER.iter().enumerate() {
            if fs.byte(i as u32)? != *h {
                return Err(fmt_err(ErrorKind::BadMagic, 0));
            }
        }
        let (len, payload_offset) = match fs.varuint(3, cap) {
            Ok(v) => v,
            Err(Error::Format(e)) if e.kind == ErrorKind::VaruintTruncated => {
                return Err(fmt_err(
                    ErrorKind::ImagePastEnd {
                        declared: cap as u64 + 1,
                        available: cap as u64,
                    },
                    3,
                ))
            }
            Err(e) => return Err(e),
        };
        if len > (cap - payload_offset) as u64 {
            return Err(fmt_err(
                ErrorKind::ImagePastEnd {
                    declared: payload_offset as u64 + len,
                    available: cap as u64,
                },
                3,
            ));
        }
        fs.payload_offset = payload_offset;
        fs.image_end = payload_offset + len as u32;
        Ok(fs)
    }

    /// The flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Image length in bytes (header included).
    pub fn image_len(&self) -> usize {
        self.image_end as usize
    }

    /// Offset of the payload (indirect data offsets count from here).
    pub fn payload_offset(&self) -> usize {
        self.payload_offset as usize
    }

    /// Flash reads so far.
    pub fn stats(&self) -> ReadStats {
        self.stats
    }

    /// Reset the read counters.
    pub fn reset_stats(&mut self) {
        self.stats = ReadStats::default();
    }

    /// Forget the buffered window (the next access reads flash again).
    pub fn invalidate_cache(&mut self) {
        self.win_len = 0;
    }

    fn fill(&mut self, pos: u32) -> Result<(), Error<F::Error>> {
        let rs = F::READ_SIZE.max(1) as u32;
        let start = pos - pos % rs;
        let cap = u32::try_from(self.flash.capacity()).unwrap_or(u32::MAX);
        let max = (N - N % F::READ_SIZE.max(1)) as u32;
        let len = max.min(cap.saturating_sub(start));
        if len == 0 || pos - start >= len {
            return Err(fmt_err(
                ErrorKind::ImagePastEnd {
                    declared: pos as u64 + 1,
                    available: cap as u64,
                },
                pos,
            ));
        }
        self.win_len = 0;
        let buf = self
            .buf
            .get_mut(..len as usize)
            .ok_or(fmt_err(ErrorKind::TooShort, pos))?;
        self.flash.read(start, buf).map_err(Error::Flash)?;
        self.stats.reads += 1;
        self.stats.bytes += len as u64;
        self.win_start = start;
        self.win_len = len;
        Ok(())
    }

    fn byte(&mut self, pos: u32) -> Result<u8, Error<F::Error>> {
        if pos.wrapping_sub(self.win_start) >= self.win_len {
            self.fill(pos)?;
        }
        self.buf
            .get(pos.wrapping_sub(self.win_start) as usize)
            .copied()
            .ok_or(fmt_err(ErrorKind::TooShort, pos))
    }

    /// `romfs_format::varuint::decode` over flash.
    fn varuint(&mut self, pos: u32, end: u32) -> Result<(u64, u32), Error<F::Error>> {
        let end = end.min(self.image_end);
        let mut value: u64 = 0;
        let mut i = pos;
        loop {
            if i >= end {
                return Err(fmt_err(ErrorKind::VaruintTruncated, pos));
            }
            if (i - pos) as usize >= MAX_ENCODED_LEN {
                return Err(fmt_err(ErrorKind::VaruintOverlong, pos));
            }
            let b = self.byte(i)?;
            i += 1;
            value = (value << 7) | u64::from(b & 0x7f);
            if value > MAX_VALUE {
                return Err(fmt_err(ErrorKind::VaruintOverflow, pos));
            }
            if b & 0x80 == 0 {
                return Ok((value, i));
            }
        }
    }

    /// `romfs_format::Records::next` over flash: `pos` advances past the
    /// record, or to `end` after kind 0 or an error.
    fn next_record(&mut self, pos: &mut u32, end: u32) -> Option<Result<Rec, Error<F::Error>>> {
        let end = end.min(self.image_end);
        if *pos >= end {
            return None;
        }
        let offset = *pos;
        let result = (|| {
            let (k, p) = self.varuint(offset, end)?;
            if k == kind::UNUSED {
                return Ok(Rec {
                    kind: k,
                    offset,
                    payload_offset: p,
                    len: 0,
                });
            }
            let (len, payload_offset) = self.varuint(p, end)?;
            if len > (end - payload_offset) as u64 {
                return Err(fmt_err(ErrorKind::RecordPastParent, offset));
            }
            Ok(Rec {
                kind: k,
                offset,
                payload_offset,
                len: len as u32,
            })
        })();
        match &result {
            Ok(rec) if rec.kind != kind::UNUSED => *pos = rec.end(),
            _ => *pos = end,
        }
        Some(result)
    }

    fn name_of(&mut self, rec: &Rec) -> Result<(u32, u32, u32), Error<F::Error>> {
        let (len, start) = self.varuint(rec.payload_offset, rec.end())?;
        if len > (rec.end() - start) as u64 {
            return Err(fmt_err(ErrorKind::NameLengthPastRecord, rec.offset));
        }
        Ok((start, len as u32, start + len as u32))
    }

    fn file_data(&mut self, rec: &Rec, body_start: u32) -> Result<(u32, u32), Error<F::Error>> {
        let mut pos = body_start;
        while let Some(nested) = self.next_record(&mut pos, rec.end()) {
            let nested = nested?;
            match nested.kind {
                kind::UNUSED => break,
                kind::DATA_VERBATIM => return Ok((nested.payload_offset, nested.len)),
                kind::DATA_INDIRECT => {
                    let (size, p) = self.varuint(nested.payload_offset, nested.end())?;
                    let (offset, _) = self.varuint(p, nested.end())?;
                    let payload_len = (self.image_end - self.payload_offset) as u64;
                    if offset > payload_len || size > payload_len - offset {
                        return Err(fmt_err(ErrorKind::IndirectOutOfRange, nested.offset));
                    }
                    return Ok((self.payload_offset + offset as u32, size as u32));
                }
                _ => {}
            }
        }
        Err(fmt_err(ErrorKind::FileWithoutData, rec.offset))
    }

    fn node_from_record(&mut self, rec: &Rec) -> Result<Option<FsNode>, Error<F::Error>> {
        let is_dir = match rec.kind {
            kind::DIRECTORY => true,
            kind::FILE => false,
            _ => return Ok(None),
        };
        let (name_start, name_len, body_start) = self.name_of(rec)?;
        let (data_offset, data_len) = if is_dir {
            (0, 0)
        } else {
            self.file_data(rec, body_start)?
        };
        Ok(Some(FsNode {
            is_dir,
            offset: rec.offset,
            name_start,
            name_len,
            body_start,
            body_end: rec.end(),
            data_offset,
            data_len,
        }))
    }

    /// The root directory.
    pub fn root(&self) -> FsNode {
        FsNode {
            is_dir: true,
            offset: 0,
            name_start: 0,
            name_len: 0,
            body_start: self.payload_offset,
            body_end: self.image_end,
            data_offset: 0,
            data_len: 0,
        }
    }

    /// True when the name stored at `name_start` equals `want`.
    fn name_eq(&mut self, name_start: u32, want: &[u8]) -> Result<bool, Error<F::Error>> {
        for (i, w) in want.iter().enumerate() {
            if self.byte(name_start + i as u32)? != *w {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Look a path up exactly as [`romfs_format::Image::lookup`] (and
    /// MicroPython) does. `Ok(None)`: not found.
    pub fn lookup(&mut self, path: &[u8]) -> Result<Option<FsNode>, Error<F::Error>> {
        let mut path = path.strip_prefix(b"/").unwrap_or(path);
        let mut current = self.root();
        let (mut pos, mut end) = (self.payload_offset, self.image_end);
        while !path.is_empty() {
            let rec = match self.next_record(&mut pos, end) {
                None => return Ok(None),
                Some(rec) => rec?,
            };
            match rec.kind {
                kind::UNUSED => return Ok(None),
                kind::DIRECTORY | kind::FILE => {
                    let (name_start, name_len, body_start) = self.name_of(&rec)?;
                    let n = name_len as usize;
                    let len_ok = n == path.len() || (n < path.len() && path.get(n) == Some(&b'/'));
                    if !len_ok {
                        continue;
                    }
                    let (head, rest) = path.split_at(n);
                    if !self.name_eq(name_start, head)? {
                        continue;
                    }
                    path = rest;
                    if rec.kind == kind::DIRECTORY {
                        path = path.strip_prefix(b"/").unwrap_or(path);
                        current = FsNode {
                            is_dir: true,
                            offset: rec.offset,
                            name_start,
                            name_len,
                            body_start,
                            body_end: rec.end(),
                            data_offset: 0,
                            data_len: 0,
                        };
                        pos = body_start;
                        end = rec.end();
                    } else if !path.is_empty() {
                        return Ok(None);
                    } else {
                        return self.node_from_record(&rec);
                    }
                }
                _ => {}
            }
        }
        Ok(Some(current))
    }

    /// A directory's entries in stored order (as
    /// [`romfs_format::Dir::entries`]); empty for a file.
    pub fn entries(&mut self, dir: &FsNode) -> Entries<'_, F, N> {
        let (pos, end) = if dir.is_dir {
            (dir.body_start, dir.body_end)
        } else {
            (0, 0)
        };
        Entries { fs: self, pos, end }
    }

    /// The first entry of `dir` named `name`.
    pub fn find(&mut self, dir: &FsNode, name: &[u8]) -> Result<Option<FsNode>, Error<F::Error>> {
        let mut entries = self.entries(dir);
        while let Some(entry) = entries.next_entry() {
            let entry = entry?;
            if entry.name_len as usize == name.len()
                && entries.fs.name_eq(entry.name_start, name)?
            {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// Copy a node's name into `out`; returns it (truncated to `out`).
    pub fn read_name<'o>(
        &mut self,
        node: &FsNode,
        out: &'o mut [u8],
    ) -> Result<&'o [u8], Error<F::Error>> {
        let n = out.len().min(node.name_len as usize);
        for i in 0..n {
            if let Some(slot) = out.get_mut(i) {
                *slot = self.byte(node.name_start + i as u32)?;
            }
        }
        Ok(out.get(..n).unwrap_or(&[]))
    }

    /// Read a file's contents from `offset` into `out`; returns the number of
    /// bytes read (0 at or past the end, and for directories).
    pub fn read_file(
        &mut self,
        file: &FsNode,
        offset: usize,
        out: &mut [u8],
    ) -> Result<usize, Error<F::Error>> {
        if file.is_dir || offset >= file.data_len as usize {
            return Ok(0);
        }
        let total = out.len().min(file.data_len as usize - offset);
        let rs = F::READ_SIZE.max(1);
        let mut done = 0usize;
        while done < total {
            let pos = file.data_offset + (offset + done) as u32;
            let left = total - done;
            let in_window = pos.wrapping_sub(self.win_start) < self.win_len;
            if !in_window && (pos as usize).is_multiple_of(rs) && left >= N {
                // Large aligned read: straight into the caller's buffer.
                let n = left - left % rs;
                let dst = out
                    .get_mut(done..done + n)
                    .ok_or(fmt_err(ErrorKind::TooShort, pos))?;
                self.flash.read(pos, dst).map_err(Error::Flash)?;
                self.stats.reads += 1;
                self.stats.bytes += n as u64;
                done += n;
                continue;
            }
            if !in_window {
                self.fill(pos)?;
            }
            let at = (pos - self.win_start) as usize;
            let n = left.min(self.win_len as usize - at);
            let src = self
                .buf
                .get(at..at + n)
                .ok_or(fmt_err(ErrorKind::TooShort, pos))?;
            let dst = out
                .get_mut(done..done + n)
                .ok_or(fmt_err(ErrorKind::TooShort, pos))?;
            dst.copy_from_slice(src);
            done += n;
        }
        Ok(total)
    }

    /// CRC32 of the image bytes `start..end` (clamped to the image).
    pub fn crc32(&mut self, start: usize, end: usize) -> Result<u32, Error<F::Error>> {
        let end = end.min(self.image_end as usize);
        let mut h = crc32fast::Hasher::new();
        let mut pos = start;
        while pos < end {
            let p = pos as u32;
            if p.wrapping_sub(self.win_start) >= self.win_len {
                self.fill(p)?;
            }
            let at = (p - self.win_start) as usize;
            let n = (end - pos).min(self.win_len as usize - at);
            h.update(self.buf.get(at..at + n).unwrap_or(&[]));
            pos += n;
        }
        Ok(h.finalize())
    }

    /// The image's own integrity check (as [`romfs_format::Image::checksum`]):
    /// when the last top-level record is our checksum record, compare it
    /// with the CRC32 of every byte before its value.
    pub fn checksum(&mut self) -> Result<romfs_format::Checksum, Error<F::Error>> {
        let (mut pos, end) = (self.payload_offset, self.image_end);
        let mut last = None;
        while let Some(rec) = self.next_record(&mut pos, end) {
            match rec {
                Ok(r) => last = Some(r),
                Err(_) => return Ok(romfs_format::Checksum::Absent),
            }
        }
        let Some(rec) = last else {
            return Ok(romfs_format::Checksum::Absent);
        };
        if rec.kind != kind::PADDING || rec.len != 8 {
            return Ok(romfs_format::Checksum::Absent);
        }
        let mut p = [0u8; 8];
        for (i, b) in p.iter_mut().enumerate() {
            *b = self.byte(rec.payload_offset + i as u32)?;
        }
        if p[..3] != romfs_format::ext::MAGIC || p[3] != romfs_format::ext::TAG_CHECKSUM {
            return Ok(romfs_format::Checksum::Absent);
        }
        let stored = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let computed = self.crc32(0, self.image_end as usize - 4)?;
        Ok(if stored == computed {
            romfs_format::Checksum::Valid(stored)
        } else {
            romfs_format::Checksum::Mismatch { stored, computed }
        })
    }
}

/// A directory's entries; see [`FlashFs::entries`].
#[derive(Debug)]
pub struct Entries<'f, F, const N: usize> {
    fs: &'f mut FlashFs<F, N>,
    pos: u32,
    end: u32,
}

impl<F: ReadNorFlash, const N: usize> Entries<'_, F, N> {
    fn next_entry(&mut self) -> Option<Result<FsNode, Error<F::Error>>> {
        loop {
            let rec = match self.fs.next_record(&mut self.pos, self.end)? {
                Ok(rec) => rec,
                Err(e) => return Some(Err(e)),
            };
            if rec.kind == kind::UNUSED {
                return None;
            }
            match self.fs.node_from_record(&rec) {
                Ok(Some(node)) => return Some(Ok(node)),
                Ok(None) => continue,
                Err(e) => {
                    self.pos = self.end;
                    return Some(Err(e));
                }
            }
        }
    }

    /// The file system, e.g. to read an entry's name while listing.
    pub fn fs(&mut self) -> &mut FlashFs<F, N> {
        self.fs
    }
}

impl<F: ReadNorFlash, const N: usize> Iterator for Entries<'_, F, N> {
    type Item = Result<FsNode, Error<F::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}
