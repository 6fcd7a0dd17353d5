//! Describing an image: layout, sizes, counts, alignment of every file,
//! checksum, metadata, signature, `.mpy` files by version and architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use romfs_format::mpy::{Arch, MpyHeader};
use romfs_format::Checksum;
use romfs_sign::SignatureState;

use super::{is_mpremote_layout, walk, ImageFile};
use crate::error::ReadError;

/// Per-file facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path.
    pub path: String,
    /// Length.
    pub size: u64,
    /// Offset of the data from the image start.
    pub offset: u64,
    /// Largest power of two dividing `offset` (up to 65536).
    pub align: u64,
    /// Data shared with another file.
    pub shared: bool,
}

/// What a `.mpy` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MpyFormat {
    /// Format version.
    pub version: u8,
    /// Native architecture ([`Arch::None`] for bytecode).
    pub arch: Arch,
    /// Small-int bits.
    pub small_int_bits: u8,
}

/// `.mpy` files of one format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpyGroup {
    /// Their format; `None` for files named `.mpy` without a `.mpy` header.
    pub format: Option<MpyFormat>,
    /// Number of files.
    pub files: usize,
}

/// Which builder an image's layout matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// Ours: the metadata names a `romfs` tool.
    Romfs,
    /// Byte for byte what `mpremote romfs build` writes for its tree.
    Mpremote,
    /// Anything else.
    Other,
}

/// What `info` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Path of the image file.
    pub image: PathBuf,
    /// Which builder the layout matches.
    pub layout: LayoutKind,
    /// Image length (header to end of payload).
    pub image_size: u64,
    /// Size of the file holding it (may be larger, e.g. a partition dump).
    pub file_size: u64,
    /// Payload length (what `statvfs` reports).
    pub payload_size: u64,
    /// Files.
    pub files: usize,
    /// Directories (root excluded).
    pub dirs: usize,
    /// Deepest nesting.
    pub max_depth: usize,
    /// Sum of file lengths.
    pub file_bytes: u64,
    /// File bytes stored once (shared data counted once).
    pub stored_bytes: u64,
    /// Files whose data is shared with another.
    pub shared_files: usize,
    /// The checksum record and whether it matches.
    pub checksum: Checksum,
    /// Tool recorded in the metadata.
    pub tool: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Generation.
    pub generation: Option<u64>,
    /// Build time (Unix seconds).
    pub build_time: Option<u64>,
    /// The product (board) the image is for.
    pub product: Option<String>,
    /// The signature record: none, malformed, laid out but not signed, or
    /// signed (whether it verifies needs the signer's public key).
    pub signature: SignatureState,
    /// Largest flash write unit (bytes, up to 32) for which the header is
    /// safe to program last in a single-slot update (see FORMAT.md §5);
    /// 3 for an image built without a flash write size.
    pub header_safe_write_size: usize,
    /// Non-empty files by alignment of their data (power of two → count).
    pub alignment_histogram: BTreeMap<u64, usize>,
    /// `.mpy` files by format (files without a `.mpy` header first).
    pub mpy: Vec<MpyGroup>,
    /// Every file.
    pub file_list: Vec<FileInfo>,
    /// Number of verify findings (0 for a clean image).
    pub findings: usize,
}

/// Alignment of a file's data: the largest power of two dividing its offset
/// (capped at 64 KiB).
fn alignment_of(offset: u64) -> u64 {
    if offset == 0 {
        return 1 << 16;
    }
    (1u64 << offset.trailing_zeros()).min(1 << 16)
}

/// Describe an image.
pub fn info(file: &ImageFile) -> Result<Info, ReadError> {
    let image = file.image()?;
    let nodes = walk(file)?;
    let summary = image.verify(|_| {});
    let md = image.metadata().ok().flatten();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let mut files = 0;
    let mut dirs = 0;
    let mut file_bytes = 0;
    let mut stored = BTreeSet::new();
    let mut stored_bytes = 0;
    let mut shared_files = 0;
    let mut hist = BTreeMap::new();
    let mut file_list = Vec::new();
    let mut mpy: BTreeMap<Option<MpyFormat>, usize> = BTreeMap::new();
    let mut max_depth = 0;
    for node in &nodes {
        let e = &node.entry;
        max_depth = max_depth.max(node.depth);
        if e.is_dir() {
            dirs += 1;
            continue;
        }
        files += 1;
        file_bytes += e.size;
        let offset = e.offset.unwrap_or(0);
        if e.shared {
            shared_files += 1;
        }
        if stored.insert((offset, e.size)) {
            stored_bytes += e.size;
        }
        let align = alignment_of(offset);
        if e.size > 0 {
            *hist.entry(align).or_insert(0) += 1;
        }
        file_list.push(FileInfo {
            path: e.path.clone(),
            size: e.size,
            offset,
            align,
            shared: e.shared,
        });
        if e.name.ends_with(".mpy") {
            let data = &image.bytes()[offset as usize..(offset + e.size) as usize];
            let format = MpyHeader::parse(data).ok().map(|h| MpyFormat {
                version: h.version,
                arch: h.arch,
                small_int_bits: h.small_int_bits,
            });
            *mpy.entry(format).or_insert(0) += 1;
        }
    }
    let tool = text(md.and_then(|m| m.tool));
    let layout = if tool.as_deref().is_some_and(|t| t.starts_with("romfs")) {
        LayoutKind::Romfs
    } else if is_mpremote_layout(&image) {
        LayoutKind::Mpremote
    } else {
        LayoutKind::Other
    };
    Ok(Info {
        image: file.path().to_path_buf(),
        layout,
        image_size: image.len() as u64,
        file_size: file.bytes().len() as u64,
        payload_size: image.payload().len() as u64,
        files,
        dirs,
        max_depth: max_depth.saturating_sub(1),
        file_bytes,
        stored_bytes,
        shared_files,
        checksum: image.checksum(),
        tool,
        label: text(md.and_then(|m| m.label)),
        generation: md.and_then(|m| m.generation),
        build_time: md.and_then(|m| m.build_time),
        product: text(md.and_then(|m| m.product)),
        signature: romfs_sign::inspect(file.bytes()).unwrap_or(SignatureState::Unsigned),
        header_safe_write_size: (1..=romfs_format::write::MAX_HEADER_WRITE_SIZE as usize)
            .rev()
            .find(|&w| image.is_header_safe(w))
            .unwrap_or(0),
        alignment_histogram: hist,
        mpy: mpy
            .into_iter()
            .map(|(format, files)| MpyGroup { format, files })
            .collect(),
        file_list,
        findings: summary.findings,
    })
}
