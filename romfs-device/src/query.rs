//! What a ROM partition holds, read through `romfs_format`'s reader over a
//! [`Source`] that fetches the partition's bytes from the board a page at a
//! time: only the pages the reader looks at (the header, each top-level
//! record's header, the metadata) cross the link. The CRC-32 over the image
//! is computed on the board.

use romfs_format::ext::{self, EXTENSION_PREFIX_LEN, TAG_METADATA};
use romfs_format::{ErrorKind as FormatError, ReadError, Reader, Source};

use crate::board::{Board, Partition};
use crate::error::{Error, ErrorKind, ImageProblem, Result};
use crate::transport::Transport;

/// Bytes fetched per read of the board.
const PAGE: usize = 512;
/// The most pages one query reads (an image with very many top-level
/// records is reported as such rather than read record by record for ever).
const MAX_PAGES: usize = 2048;
/// The longest metadata record read.
const MAX_METADATA: usize = 64 << 10;

/// One partition, as `romfs query` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReport {
    /// Geometry.
    pub partition: Partition,
    /// Minimum write size, when the firmware told it.
    pub write_size: Option<u64>,
    /// False when the firmware refuses to erase the partition.
    pub writable: bool,
    /// What it holds.
    pub contents: Contents,
    /// The port (`sys.platform`).
    pub platform: String,
}

/// What a partition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// No image: the first bytes are not `d2 cd 31`.
    Empty,
    /// A header that MicroPython would not mount, or a malformed image.
    Corrupt(String),
    /// An image.
    Image(ImageSummary),
}

/// An image found in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Length in bytes.
    pub len: u64,
    /// Metadata: the tool that wrote it.
    pub tool: Option<String>,
    /// Metadata: label.
    pub label: Option<String>,
    /// Metadata: generation.
    pub generation: Option<u64>,
    /// Metadata: build time.
    pub build_time: Option<u64>,
    /// The image's checksum against what is on the flash.
    pub checksum: ChecksumState,
}

/// An image's CRC-32 record compared with the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumState {
    /// The image has no checksum record (e.g. built by mpremote).
    Absent,
    /// The flash matches the stored CRC.
    Matches(u32),
    /// The flash does not match.
    Mismatch {
        /// Stored in the image.
        stored: u32,
        /// Computed over the flash.
        on_flash: u32,
    },
    /// The board cannot compute CRC-32 (no `binascii.crc32`).
    Unchecked(u32),
}

/// Describe partition `id` (every partition: call for each id below
/// [`Board::partition_count`]). Nothing is erased or written: the write
/// layer derives the program unit and erase mode from the port.
pub fn query<T: Transport>(board: &mut Board<T>, id: u32) -> Result<PartitionReport> {
    let part = board.partition(id)?;
    let contents = contents(board, &part)?;
    let writable = part.mode != crate::board::EraseMode::ReadOnly;
    Ok(PartitionReport {
        partition: part,
        write_size: writable.then_some(part.program_unit),
        writable,
        contents,
        platform: board.info().platform.clone(),
    })
}

/// A partition's bytes, fetched from the board on demand.
struct BoardSource<'b, T: Transport> {
    board: &'b mut Board<T>,
    part: Partition,
    page: Vec<u8>,
    page_at: usize,
    pages: usize,
}

impl<T: Transport> Source for BoardSource<'_, T> {
    type Error = Error;

    fn len(&self) -> usize {
        self.part.size as usize
    }

    fn window(&mut self, pos: usize) -> Result<&[u8]> {
        let len = self.len();
        if pos >= len {
            return Ok(&[]);
        }
        if !(self.page_at..self.page_at + self.page.len()).contains(&pos) {
            self.pages += 1;
            if self.pages > MAX_PAGES {
                return Err(self
                    .board
                    .error(ErrorKind::BadImage(ImageProblem::TooManyRecords {
                        reads: MAX_PAGES,
                    })));
            }
            let start = pos / PAGE * PAGE;
            let n = PAGE.min(len - start);
            self.page = self.board.read(&self.part, start as u64, n)?;
            self.page_at = start;
        }
        Ok(&self.page[pos - self.page_at..])
    }
}

fn contents<T: Transport>(board: &mut Board<T>, part: &Partition) -> Result<Contents> {
    let source = BoardSource {
        board,
        part: *part,
        page: Vec::new(),
        page_at: 0,
        pages: 0,
    };
    let mut reader = match Reader::new(source) {
        Ok(r) => r,
        Err(ReadError::Source(e)) => return Err(e),
        Err(ReadError::Format(e)) => {
            return Ok(match e.kind {
                FormatError::TooShort | FormatError::BadMagic => Contents::Empty,
                _ => Contents::Corrupt(format!("bad header: {e}")),
            })
        }
    };
    let len = reader.header().end;
    match inspect(&mut reader) {
        Ok((metadata, checksum)) => {
            let board = reader.into_source().board;
            let checksum = match checksum {
                None => ChecksumState::Absent,
                Some((stored, end)) => match board.crc32(part, end as u64 - 4)? {
                    None => ChecksumState::Unchecked(stored),
                    Some(c) if c == stored => ChecksumState::Matches(stored),
                    Some(on_flash) => ChecksumState::Mismatch { stored, on_flash },
                },
            };
            let (tool, label, generation, build_time) = metadata;
            Ok(Contents::Image(ImageSummary {
                len: len as u64,
                tool,
                label,
                generation,
                build_time,
                checksum,
            }))
        }
        Err(ReadError::Format(e)) => Ok(Contents::Corrupt(format!("bad record: {e}"))),
        Err(ReadError::Source(e)) => match e.kind {
            ErrorKind::BadImage(why) => Ok(Contents::Corrupt(why.to_string())),
            _ => Err(e),
        },
    }
}

/// Metadata fields, owned: tool, label, generation, build time.
type Owned = (Option<String>, Option<String>, Option<u64>, Option<u64>);
/// The metadata, and the stored CRC with the end of its record.
type Inspected = (Owned, Option<(u32, usize)>);

/// The metadata (owned), and the stored CRC with the end of its record.
fn inspect<S: Source>(
    reader: &mut Reader<S>,
) -> std::result::Result<Inspected, ReadError<S::Error>> {
    let mut metadata = (None, None, None, None);
    if let Some(rec) = reader.extension_record(TAG_METADATA)? {
        let body_at = rec.payload_offset + EXTENSION_PREFIX_LEN;
        let mut body = vec![
            0u8;
            rec.len
                .saturating_sub(EXTENSION_PREFIX_LEN)
                .min(MAX_METADATA)
        ];
        reader.source().read_exact_at(body_at, &mut body)?;
        let md = ext::parse_metadata(&body, rec.offset, body_at)?;
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        metadata = (text(md.tool), text(md.label), md.generation, md.build_time);
    }
    let checksum = match reader.checksum_record()? {
        Some((_, stored)) => reader.checksum_end()?.map(|end| (stored, end)),
        None => None,
    };
    Ok((metadata, checksum))
}
