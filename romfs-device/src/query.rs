//! What a ROM partition holds. Only the bytes needed are read from the
//! board (the first block, then the header of each top-level record); the
//! CRC-32 over the whole image is computed on the board. Every byte is
//! decoded by `romfs_format`, on a sparse copy of the image in which the
//! bytes not read are zeros that no decoder looks at.

use romfs_format::{ErrorKind as FormatError, Image, HEADER};

use crate::board::{Board, Partition, CHUNK};
use crate::error::Result;
use crate::transport::Transport;

/// Bytes read at each top-level record: its kind and length varuints and
/// the first bytes of its payload (enough for an extension's magic and a
/// checksum's value).
const RECORD_PEEK: usize = 32;
/// The most top-level records whose headers are read before giving up.
const MAX_RECORDS: usize = 4096;

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
/// [`Board::partition_count`]).
///
/// To learn the minimum write size, the firmware is asked to erase zero
/// bytes at the start of the partition's last erase block, when no image
/// reaches into that block: every port either erases nothing or, at most,
/// that unused block.
pub fn query<T: Transport>(board: &mut Board<T>, id: u32) -> Result<PartitionReport> {
    let part = board.partition(id)?;
    let contents = contents(board, &part)?;
    let image_end = match &contents {
        Contents::Image(s) => s.len,
        _ => 0,
    };
    let last = part.blocks() - 1;
    let (write_size, writable) = if last * part.erase_size >= image_end {
        match board.erase(&part, last * part.erase_size, 0) {
            Ok(w) => (Some(w), true),
            Err(e) if matches!(e.kind, crate::ErrorKind::Ioctl { .. }) => (None, false),
            Err(e) => return Err(e),
        }
    } else {
        (None, true)
    };
    Ok(PartitionReport {
        partition: part,
        write_size,
        writable,
        contents,
    })
}

fn contents<T: Transport>(board: &mut Board<T>, part: &Partition) -> Result<Contents> {
    let head_len = (part.size as usize).min(CHUNK);
    let head = board.read(part, 0, head_len)?;
    if head.len() < 4 || head[..3] != HEADER {
        return Ok(Contents::Empty);
    }
    let len = match Image::parse(&head) {
        Ok(image) => image.len(),
        Err(e) => match e.kind {
            FormatError::ImagePastEnd { declared, .. } if head_len < part.size as usize => {
                if declared > part.size {
                    return Ok(Contents::Corrupt(format!(
                        "the header declares {declared} bytes, more than the partition's {}",
                        part.size
                    )));
                }
                declared as usize
            }
            _ => return Ok(Contents::Corrupt(format!("bad header: {e}"))),
        },
    };
    // A sparse copy: the first block, then each top-level record's header.
    let mut sparse = vec![0u8; len];
    let mut known = vec![false; len];
    let n = head.len().min(len);
    sparse[..n].copy_from_slice(&head[..n]);
    known[..n].fill(true);
    let mut reads = 0;
    'scan: loop {
        let image = match Image::parse(&sparse) {
            Ok(i) => i,
            Err(e) => return Ok(Contents::Corrupt(format!("bad header: {e}"))),
        };
        for record in image.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => return Ok(Contents::Corrupt(format!("bad record: {e}"))),
            };
            let end = (record.offset + RECORD_PEEK).min(len);
            if let Some(gap) = known[record.offset..end].iter().position(|&k| !k) {
                let at = record.offset + gap;
                reads += 1;
                if reads > MAX_RECORDS {
                    return Ok(Contents::Corrupt(format!(
                        "more than {MAX_RECORDS} top-level records"
                    )));
                }
                let bytes = board.read(part, at as u64, end - at)?;
                sparse[at..end].copy_from_slice(&bytes);
                known[at..end].fill(true);
                continue 'scan;
            }
        }
        break;
    }
    let image = match Image::parse(&sparse) {
        Ok(i) => i,
        Err(e) => return Ok(Contents::Corrupt(format!("bad header: {e}"))),
    };
    let metadata = image.metadata().ok().flatten().unwrap_or_default();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let checksum = match image.checksum_record() {
        None => ChecksumState::Absent,
        Some((_, stored)) => match board.crc32(part, len as u64 - 4)? {
            None => ChecksumState::Unchecked(stored),
            Some(c) if c == stored => ChecksumState::Matches(stored),
            Some(on_flash) => ChecksumState::Mismatch { stored, on_flash },
        },
    };
    Ok(Contents::Image(ImageSummary {
        len: len as u64,
        tool: text(metadata.tool),
        label: text(metadata.label),
        generation: metadata.generation,
        build_time: metadata.build_time,
        checksum,
    }))
}
