//! The stable layout: an image laid out so that the next build, given this
//! one as its base, changes as few flash erase blocks as possible.
//!
//! ```text
//! d2 cd 31 <payload length, 5 bytes>
//!   [metadata record] [filler padding]      metadata slack
//!   entries of the root, depth first        the tree: every file's data is an
//!                                           indirect record with 5-byte fields
//!   [padding record]                        tree slack, up to an erase block
//!   01 <len, 5 bytes> "RFSD" <log2 E> ...   the data area: file data at
//!                                           stable offsets, free space between
//!   [checksum record] [signature record]
//! ```
//!
//! With a base, file data whose bytes did not change stays where it was;
//! new and changed data goes into free space (first its own old place,
//! then the first gap that fits without crossing an erase block), and free
//! bytes keep the base's bytes so that untouched blocks stay identical.
//! FORMAT.md, section 2.3, is the specification.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::emit::{push_varuint, push_varuint_padded};
use super::plan::metadata_record;
use super::tree::{NodeRef, Tree};
use super::{Layout, Options, Placement, Plan, WriteError};
use crate::ext::{self, TAG_CHECKSUM};
use crate::header::HEADER;
use crate::image::{Dir, Image, Node};
use crate::record::kind;
use crate::signature::{
    Manifest, KEY_ID_LEN, SIGNATURE_LEN, SIGNATURE_RECORD_HEAD, SIGNATURE_RECORD_LEN,
};
use crate::varuint::{encode_padded, encoded_len};

/// Tag of the data-area record of a stable layout (`RFSD`).
pub const TAG_DATA_AREA: u8 = b'D';

/// The erase-block size assumed when neither the caller nor the base says.
pub const DEFAULT_ERASE_BLOCK: u32 = 4096;

/// Width of the image length, of the data area's length, of directory
/// lengths and of the size and offset in every indirect record: wide enough
/// for any value up to 4 GiB, so that no value change ever widens one and
/// shifts the bytes after it.
pub const FIXED_WIDTH: usize = 5;

/// Bytes reserved after the metadata record, so that a longer label or a
/// wider generation does not move the tree.
pub const METADATA_SLACK: u64 = 32;

/// Bytes before the first data byte of the data area: `01`, the 5-byte
/// length, `RFSD` and the erase-block exponent.
pub const DATA_AREA_PREFIX: u64 = 1 + FIXED_WIDTH as u64 + ext::EXTENSION_PREFIX_LEN as u64 + 1;

/// Holes (free bytes inside the data area before its last file) tolerated
/// before a build falls back to a fresh layout: a quarter of the file data,
/// but never fewer than this many erase blocks.
pub const HOLE_LIMIT_BLOCKS: u64 = 4;

/// Free erase blocks left after the last file when the data area is laid
/// out or grows: room for new and grown files without moving the image's
/// end (which would rewrite the header's block).
pub const TAIL_SLACK_BLOCKS: u64 = 2;

/// Payload of an indirect record with two fixed-width fields.
const INDIRECT_PAYLOAD: u64 = 2 * FIXED_WIDTH as u64;

/// How to lay out a stable image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StableOptions {
    /// The flash erase-block size (a power of two from 256 to 16 MiB);
    /// `None`: the base's, else [`DEFAULT_ERASE_BLOCK`].
    pub erase_block: Option<u32>,
}

/// Why a build with a base laid the image out afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreshReason {
    /// No base was given.
    NoBase,
    /// The base is not a stable-layout image (or not an image at all).
    NotStable(String),
    /// The base's header has another width (a header-safe size changed).
    HeaderChanged,
    /// The metadata record grew past its slack.
    MetadataOutgrewSlack,
    /// The tree grew past the slack reserved for it.
    TreeOutgrewSlack {
        /// Bytes the new tree needs.
        need: u64,
        /// Bytes the base reserved.
        room: u64,
    },
    /// Removed and moved files left more free space than the limit.
    TooManyHoles {
        /// Free bytes inside the data area.
        holes: u64,
        /// The limit ([`HOLE_LIMIT_BLOCKS`], a quarter of the data).
        limit: u64,
    },
}

impl fmt::Display for FreshReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreshReason::NoBase => f.write_str("no base image"),
            FreshReason::NotStable(why) => write!(f, "the base is not a stable layout ({why})"),
            FreshReason::HeaderChanged => f.write_str("the base's header has another width"),
            FreshReason::MetadataOutgrewSlack => {
                f.write_str("the metadata record outgrew the room reserved for it")
            }
            FreshReason::TreeOutgrewSlack { need, room } => write!(
                f,
                "the directory tree needs {need} bytes; the base reserved {room}"
            ),
            FreshReason::TooManyHoles { holes, limit } => {
                write!(f, "{holes} bytes of holes in the data area (limit {limit})")
            }
        }
    }
}

/// What a stable build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StableReport {
    /// `Some` when the image was laid out afresh, and why.
    pub fresh: Option<FreshReason>,
    /// The erase-block size used.
    pub erase_block: u32,
    /// Distinct file contents kept where the base had them.
    pub kept: usize,
    /// Distinct file contents placed anew (new or changed files).
    pub placed: usize,
    /// Free bytes inside the data area before its last file.
    pub holes: u64,
    /// Free bytes after the last file (room to grow without moving the end).
    pub tail_slack: u64,
    /// Bytes reserved for the tree to grow in place.
    pub tree_slack: u64,
    /// The image's length.
    pub image_len: u64,
    /// The length of the same tree in the default (fresh, packed) layout.
    pub fresh_len: u64,
}

impl StableReport {
    /// Bytes the stable layout costs over a fresh default-layout build.
    pub fn cost(&self) -> i64 {
        self.image_len as i64 - self.fresh_len as i64
    }
}

/// A stable-layout image.
#[derive(Debug, Clone)]
pub struct StableImage {
    /// The image.
    pub bytes: Vec<u8>,
    /// What the layout did.
    pub report: StableReport,
    /// Where every file's data went, in tree order.
    pub placements: Vec<Placement>,
    /// The nodes in the order written, with their depth.
    pub order: Vec<(NodeRef, usize)>,
    /// Where the signature record starts, when there is one.
    pub signature_offset: Option<u64>,
}

/// What a stable base image tells the next build.
struct Base<'a> {
    bytes: &'a [u8],
    payload_offset: u64,
    tree_start: u64,
    tree_end: u64,
    image_len: u64,
    erase_block: Option<u32>,
    /// Files by path: (data offset from the image start, length).
    files: BTreeMap<Vec<u8>, (u64, u64)>,
    /// Extents by contents, for files that were renamed or copied.
    by_content: BTreeMap<&'a [u8], u64>,
}

fn parse_base(bytes: &[u8]) -> Result<Base<'_>, String> {
    let image = Image::parse(bytes).map_err(|e| alloc::format!("{e}"))?;
    let payload_offset = image.payload_offset() as u64;
    let mut tree_start = payload_offset;
    let mut seen_entry = false;
    let mut filler_seen = false;
    let mut area = None;
    for (i, rec) in image.records().enumerate() {
        let rec = rec.map_err(|e| alloc::format!("{e}"))?;
        match (rec.kind, ext::extension(&rec)) {
            (kind::PADDING, Some((ext::TAG_METADATA, _))) if i == 0 => {
                tree_start = rec.end() as u64
            }
            (kind::PADDING, None)
                if !seen_entry
                    && !filler_seen
                    && area.is_none()
                    && tree_start == rec.offset as u64 =>
            {
                filler_seen = true;
                tree_start = rec.end() as u64
            }
            (kind::PADDING, Some((TAG_DATA_AREA, body))) if area.is_none() => {
                area = Some((rec.offset, rec.end(), body.first().copied()))
            }
            (kind::DIRECTORY | kind::FILE, _) => {
                if area.is_some() {
                    return Err("a directory entry after the data area".into());
                }
                seen_entry = true;
            }
            _ => {}
        }
    }
    let Some((tree_end, data_end, shift)) = area else {
        return Err("no data area record".into());
    };
    let erase_block = shift.filter(|&s| (8..=24).contains(&s)).map(|s| 1u32 << s);
    let data_start = tree_end as u64 + DATA_AREA_PREFIX;
    let mut files = BTreeMap::new();
    let mut by_content = BTreeMap::new();
    let mut stack: Vec<(Dir<'_>, Vec<u8>)> = alloc::vec![(image.root(), Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in dir.entries() {
            let entry = entry.map_err(|e| alloc::format!("{e}"))?;
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(entry.name());
            match entry {
                Node::Dir(d) => stack.push((d, path)),
                Node::File(f) => {
                    let start = f.data_offset() as u64;
                    let len = f.len() as u64;
                    if len > 0 && start >= data_start && start + len <= data_end as u64 {
                        files.insert(path, (start, len));
                        by_content.entry(f.data()).or_insert(start);
                    }
                }
            }
        }
    }
    Ok(Base {
        bytes,
        payload_offset,
        tree_start,
        tree_end: tree_end as u64,
        image_len: bytes.len().min(image.len()) as u64,
        erase_block,
        files,
        by_content,
    })
}

/// Free space of the data area: sorted, disjoint gaps `[start, end)`.
struct Gaps(Vec<(u64, u64)>);

impl Gaps {
    /// Take `[s, e)`, which must lie in one gap.
    fn take(&mut self, s: u64, e: u64) -> bool {
        let Some(i) = self.0.iter().position(|&(a, b)| a <= s && e <= b) else {
            return false;
        };
        let (a, b) = self.0[i];
        self.0.remove(i);
        if e < b {
            self.0.insert(i, (e, b));
        }
        if a < s {
            self.0.insert(i, (a, s));
        }
        true
    }

    /// Whether `[s, s+len)` is free.
    fn is_free(&self, s: u64, len: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= s && s + len <= b)
    }

    /// The first place for `len` bytes aligned to `align` that does not
    /// cross an erase block unless it is larger than one, in a gap that
    /// does not end at `tail` (the room at the end excluded).
    fn first_fit(&self, len: u64, align: u64, block: u64, tail: u64) -> Option<u64> {
        self.0
            .iter()
            .filter(|&&(_, b)| b != tail)
            .find_map(|&(a, b)| fit_in(a, b, len, align, block))
    }

    /// The highest place for `len` bytes in the gap that ends at `end`.
    fn top_fit(&self, end: u64, len: u64, align: u64, block: u64) -> Option<u64> {
        let &(a, _) = self.0.iter().find(|&&(_, b)| b == end)?;
        let mut s = end.checked_sub(len)? / align * align;
        if !keeps_blocks(s, len, block) {
            s = ((s + len - 1) / block * block).checked_sub(len)? / align * align;
        }
        (s >= a).then_some(s)
    }

    /// Add `[a, b)` (adjacent to the last gap or after it).
    fn grow(&mut self, a: u64, b: u64) {
        match self.0.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => self.0.push((a, b)),
        }
    }
}

/// Where `len` bytes fit in `[a, b)`, aligned and not needlessly crossing a
/// block boundary.
fn fit_in(a: u64, b: u64, len: u64, align: u64, block: u64) -> Option<u64> {
    let mut s = a.next_multiple_of(align);
    if len <= block && len > 0 && s / block != (s + len - 1) / block {
        s = (s / block + 1) * block; // block is a multiple of any alignment up to it
        s = s.next_multiple_of(align);
    }
    (s.checked_add(len)? <= b).then_some(s)
}

/// Whether `[s, s+len)` is one placement that crosses no block boundary it
/// need not.
fn keeps_blocks(s: u64, len: u64, block: u64) -> bool {
    len > block || len == 0 || s / block == (s + len - 1) / block
}

/// Lay `tree` out in the stable layout, with `contents[source]` the bytes
/// of each file, reusing `base`'s placement when it is a stable image.
pub fn build_stable(
    tree: &Tree,
    contents: &[&[u8]],
    opts: &Options,
    stable: &StableOptions,
    base: Option<&[u8]>,
) -> Result<StableImage, WriteError> {
    if opts.layout != Layout::Default {
        return Err(WriteError::StableNeedsDefaultLayout);
    }
    // The default layout's plan checks names, alignments and the
    // signature spec, orders the tree and gives the fresh size.
    let plan = Plan::new(tree, opts)?;
    if let Some(eb) = stable.erase_block {
        if !eb.is_power_of_two() || !(256..=1 << 24).contains(&eb) {
            return Err(WriteError::BadEraseBlock { size: eb });
        }
    }
    for (node, _) in plan.order() {
        if let Some(spec) = tree.file(node) {
            if contents.get(spec.source as usize).map(|c| c.len() as u64) != Some(spec.len) {
                return Err(WriteError::ContentsMissing {
                    path: tree.path_lossy(node),
                });
            }
        }
    }
    let parsed = match base {
        None => Err(FreshReason::NoBase),
        Some(bytes) => parse_base(bytes).map_err(FreshReason::NotStable),
    };
    match parsed {
        Ok(b) => match lay_out(&plan, tree, contents, opts, stable, Some(&b)) {
            Ok(image) => Ok(image),
            Err(Attempt::Fresh(reason)) => {
                let mut image = lay_out(&plan, tree, contents, opts, stable, None)
                    .map_err(Attempt::into_error)?;
                image.report.fresh = Some(reason);
                Ok(image)
            }
            Err(Attempt::Error(e)) => Err(e),
        },
        Err(reason) => {
            let mut image =
                lay_out(&plan, tree, contents, opts, stable, None).map_err(Attempt::into_error)?;
            image.report.fresh = Some(reason);
            Ok(image)
        }
    }
}

enum Attempt {
    Fresh(FreshReason),
    Error(WriteError),
}

impl Attempt {
    fn into_error(self) -> WriteError {
        match self {
            Attempt::Error(e) => e,
            // A fresh layout never falls back.
            Attempt::Fresh(_) => WriteError::TooLarge { size: u64::MAX },
        }
    }
}

impl From<WriteError> for Attempt {
    fn from(e: WriteError) -> Self {
        Attempt::Error(e)
    }
}

fn lay_out(
    plan: &Plan<'_>,
    tree: &Tree,
    contents: &[&[u8]],
    opts: &Options,
    stable: &StableOptions,
    base: Option<&Base<'_>>,
) -> Result<StableImage, Attempt> {
    let block = u64::from(
        stable
            .erase_block
            .or(base.and_then(|b| b.erase_block))
            .unwrap_or(DEFAULT_ERASE_BLOCK),
    );
    let top_w = FIXED_WIDTH.max(plan.top_w);
    let payload_offset = (HEADER.len() + top_w) as u64;
    let metadata = match &opts.metadata {
        Some(spec) => metadata_record(spec),
        None => Vec::new(),
    };
    let order: Vec<(NodeRef, usize)> = plan.order().collect();
    let tree_len = tree_bytes(tree, &order, &|_| (0, 0), false).len() as u64;
    let trailer_len = match (opts.checksum, plan.signature.is_some()) {
        (false, _) => 0,
        (true, signed) => 10 + signed as u64 * SIGNATURE_RECORD_LEN as u64,
    };

    // The tree's room.
    let meta_end = payload_offset + metadata.len() as u64;
    let (tree_start, tree_end) = match base {
        Some(b) => {
            if b.payload_offset != payload_offset {
                return Err(Attempt::Fresh(FreshReason::HeaderChanged));
            }
            if b.tree_start < meta_end || b.tree_start - meta_end == 1 && metadata.is_empty() {
                return Err(Attempt::Fresh(FreshReason::MetadataOutgrewSlack));
            }
            let room = b.tree_end - b.tree_start;
            // The slack record needs 0 or at least 2 bytes; 1 is absorbed
            // by padding the first entry's length (not possible without one).
            if tree_len > room || (room - tree_len == 1 && order.is_empty()) {
                return Err(Attempt::Fresh(FreshReason::TreeOutgrewSlack {
                    need: tree_len,
                    room,
                }));
            }
            (b.tree_start, b.tree_end)
        }
        None => {
            let start = meta_end + METADATA_SLACK;
            let slack = (tree_len / 8).max(256);
            (start, (start + tree_len + slack).next_multiple_of(block))
        }
    };
    let data_start = tree_end + DATA_AREA_PREFIX;

    // Placement: contents kept from the base, then the rest. With a base
    // the data area keeps its end; without one it is open-ended.
    let mut data_end = match base {
        Some(b) if b.image_len % 2 == 0 && b.image_len >= data_start + trailer_len => {
            b.image_len - trailer_len
        }
        Some(_) => (data_start + trailer_len + block).next_multiple_of(block) - trailer_len,
        None => u64::MAX,
    };
    let mut gaps = Gaps(alloc::vec![(data_start, data_end)]);
    let mut at: BTreeMap<&[u8], u64> = BTreeMap::new(); // contents -> offset
    let mut node_at: BTreeMap<usize, u64> = BTreeMap::new();
    let mut kept = 0;
    let mut placed = 0;
    let files: Vec<(NodeRef, super::FileSpec)> = order
        .iter()
        .filter_map(|&(n, _)| tree.file(n).map(|s| (n, *s)))
        .collect();
    let align_of = |spec: &super::FileSpec| u64::from(spec.align.unwrap_or(opts.align));
    if let Some(b) = base {
        for &(node, spec) in &files {
            let data = contents[spec.source as usize];
            if data.is_empty() || (opts.dedup && at.contains_key(data)) {
                continue;
            }
            let same_path = b
                .files
                .get(&tree.path(node))
                .filter(|&&(s, len)| {
                    len == spec.len && &b.bytes[s as usize..(s + len) as usize] == data
                })
                .map(|&(s, _)| s);
            let found = same_path.or_else(|| b.by_content.get(data).copied());
            if let Some(s) = found {
                if s % align_of(&spec) == 0 && gaps.take(s, s + spec.len) {
                    at.insert(data, s);
                    node_at.insert(node.index(), s);
                    kept += 1;
                }
            }
        }
    }
    // The rest: without a base packed in tree order; with one, largest
    // first (the big ones take the room at the end).
    let mut rest: Vec<(NodeRef, super::FileSpec)> = files
        .iter()
        .filter(|(n, s)| s.len > 0 && !node_at.contains_key(&n.index()))
        .copied()
        .collect();
    if base.is_some() {
        rest.sort_by_key(|&(_, spec)| core::cmp::Reverse(spec.len));
    }
    for (node, spec) in rest {
        let data = contents[spec.source as usize];
        if opts.dedup {
            if let Some(&s) = at.get(data) {
                node_at.insert(node.index(), s);
                continue;
            }
        }
        let (len, align) = (spec.len, align_of(&spec));
        // Its own old place first (edited in place, or grown into free
        // space after it).
        // (Within its old extent it touches no block it did not.)
        let own = base
            .and_then(|b| b.files.get(&tree.path(node)))
            .filter(|&&(s, old_len)| {
                s % align == 0
                    && (len <= old_len || keeps_blocks(s, len, block))
                    && gaps.is_free(s, len)
            })
            .map(|&(s, _)| s);
        let s = loop {
            let found = own.or_else(|| {
                if base.is_none() {
                    // Packed: a later edit rewrites a file where it is.
                    return gaps.first_fit(len, align, u64::MAX, 0);
                }
                // Holes first, but a file larger than a block goes at the
                // end of the data area, next to the checksum it changes
                // anyway; the end is filled downwards.
                let hole = || gaps.first_fit(len, align, block, data_end);
                let top = || gaps.top_fit(data_end, len, align, block);
                if len > block {
                    top().or_else(hole)
                } else {
                    hole().or_else(top)
                }
            });
            if let Some(s) = found {
                break s;
            }
            // No room: the image grows, with room to spare.
            gaps.grow(data_end, data_end + TAIL_SLACK_BLOCKS * block);
            data_end += TAIL_SLACK_BLOCKS * block;
        };
        gaps.take(s, s + len);
        at.insert(data, s);
        node_at.insert(node.index(), s);
        placed += 1;
    }

    // Without a base, the end leaves at least a free block after the last
    // file; with one it stays, unless placing grew it.
    let live_end = match base {
        None => gaps.0.last().map_or(data_start, |&(a, _)| a),
        Some(_) => files
            .iter()
            .filter_map(|(n, s)| node_at.get(&n.index()).map(|&o| o + s.len))
            .max()
            .unwrap_or(data_start),
    };
    if base.is_none() {
        data_end = (live_end + trailer_len + TAIL_SLACK_BLOCKS * block).next_multiple_of(block)
            - trailer_len;
    }
    let image_len = data_end + trailer_len;
    let live: u64 = {
        let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
        for &(node, spec) in &files {
            if let Some(&s) = node_at.get(&node.index()) {
                seen.insert(s, spec.len);
            }
        }
        seen.values().sum()
    };
    let free: u64 = gaps
        .0
        .iter()
        .map(|&(a, e)| e.min(data_end).saturating_sub(a))
        .sum();
    // Holes: free bytes but the largest run (the room at the end).
    let largest = gaps
        .0
        .iter()
        .map(|&(a, e)| e.min(data_end).saturating_sub(a))
        .max()
        .unwrap_or(0);
    let holes = free - largest;
    let limit = (live / 4).max(HOLE_LIMIT_BLOCKS * block);
    if base.is_some() && holes > limit {
        return Err(Attempt::Fresh(FreshReason::TooManyHoles { holes, limit }));
    }
    if image_len - payload_offset > crate::varuint::MAX_VALUE {
        return Err(WriteError::TooLarge { size: image_len }.into());
    }

    // The bytes: the base's where nothing new goes, zeros past it.
    let mut out = alloc::vec![0u8; image_len as usize];
    if let Some(b) = base {
        let n = b.bytes.len().min(out.len());
        out[..n].copy_from_slice(&b.bytes[..n]);
    }
    let mut w = 0;
    out[w..w + 3].copy_from_slice(&HEADER);
    w += 3;
    encode_padded(image_len - payload_offset, top_w, &mut out[w..w + top_w]);
    // Metadata, then a filler up to the tree (a 1-byte gap is absorbed by
    // padding the metadata record's length).
    let mut head = Vec::new();
    let gap = tree_start - meta_end;
    if gap == 1 {
        // metadata is `01 <len> payload`: re-encode the length one byte wider.
        let (len, at) = crate::varuint::decode(&metadata, 1, metadata.len())
            .map_err(|_| Attempt::Fresh(FreshReason::MetadataOutgrewSlack))?;
        head.push(kind::PADDING as u8);
        push_varuint_padded(&mut head, len, at - 1 + 1);
        head.extend_from_slice(&metadata[at..]);
    } else {
        head.extend_from_slice(&metadata);
    }
    let w = payload_offset as usize;
    out[w..w + head.len()].copy_from_slice(&head);
    if gap >= 2 {
        padding_head(&mut out, meta_end, tree_start);
    }
    // The tree, then its slack.
    let offsets = |node: NodeRef| -> (u64, u64) {
        match (tree.file(node), node_at.get(&node.index())) {
            (Some(spec), Some(&s)) => (spec.len, s - payload_offset),
            _ => (0, 0),
        }
    };
    let room = tree_end - tree_start;
    let tree_out = tree_bytes(tree, &order, &offsets, room - tree_len == 1);
    let t = tree_start as usize;
    out[t..t + tree_out.len()].copy_from_slice(&tree_out);
    let tree_stop = tree_start + tree_out.len() as u64;
    if tree_end - tree_stop >= 2 {
        padding_head(&mut out, tree_stop, tree_end);
    }
    // The data area.
    let mut area = Vec::new();
    area.push(kind::PADDING as u8);
    push_varuint_padded(
        &mut area,
        data_end - tree_end - 1 - FIXED_WIDTH as u64,
        FIXED_WIDTH,
    );
    area.extend_from_slice(&ext::MAGIC);
    area.push(TAG_DATA_AREA);
    area.push(block.trailing_zeros() as u8);
    out[tree_end as usize..data_start as usize].copy_from_slice(&area);
    let mut placements = Vec::new();
    let mut first_at: BTreeMap<u64, ()> = BTreeMap::new();
    for &(node, spec) in &files {
        let data = contents[spec.source as usize];
        let s = node_at.get(&node.index()).copied().unwrap_or(0);
        let shared = spec.len > 0 && first_at.insert(s, ()).is_some();
        if spec.len > 0 {
            out[s as usize..(s + spec.len) as usize].copy_from_slice(data);
        }
        placements.push(Placement {
            node,
            data_offset: if spec.len > 0 { s } else { 0 },
            len: spec.len,
            shared,
            padding: 0,
        });
    }
    // The trailer.
    let mut signature_offset = None;
    if opts.checksum {
        let c = data_end as usize;
        out[c] = kind::PADDING as u8;
        out[c + 1] = ext::CHECKSUM_PAYLOAD_LEN as u8;
        out[c + 2..c + 5].copy_from_slice(&ext::MAGIC);
        out[c + 5] = TAG_CHECKSUM;
        let crc = crate::crc32::checksum(&out[..c + 6]);
        out[c + 6..c + 10].copy_from_slice(&crc.to_le_bytes());
        if let Some((generation, product)) = plan.signature {
            let s = c + 10;
            let manifest = Manifest {
                image_len: image_len as u32,
                signed_len: s as u32,
                generation,
                product,
                digest: [0; 32],
                key_id: [0; KEY_ID_LEN],
            };
            let mut rec = SIGNATURE_RECORD_HEAD.to_vec();
            rec.extend_from_slice(&manifest.to_bytes());
            rec.extend_from_slice(&[0; SIGNATURE_LEN]);
            out[s..s + rec.len()].copy_from_slice(&rec);
            signature_offset = Some(s as u64);
        }
    }
    Ok(StableImage {
        bytes: out,
        report: StableReport {
            fresh: None,
            erase_block: block as u32,
            kept,
            placed,
            holes,
            tail_slack: largest,
            tree_slack: tree_end - tree_stop,
            image_len,
            fresh_len: plan.image_len(),
        },
        placements,
        order,
        signature_offset,
    })
}

/// The head of a padding record covering `[start, end)` (at least 2 bytes);
/// its payload keeps the bytes already there, but for a first byte of 0 so
/// that it can never read as one of our extension records.
fn padding_head(out: &mut [u8], start: u64, end: u64) {
    let mut head = Vec::new();
    super::emit::padding_record(end - start, &mut head);
    // padding_record wrote kind, length and zeros: keep kind and length,
    // and the first payload byte (a zero) when there is one.
    let payload_len = end - start - 1 - len_width(end - start) as u64;
    let keep = 1 + len_width(end - start) + (payload_len > 0) as usize;
    let s = start as usize;
    out[s..s + keep].copy_from_slice(&head[..keep]);
}

/// Width of a padding record's length varuint for a record of `total` bytes
/// (as [`super::emit::padding_record`] chooses it).
fn len_width(total: u64) -> usize {
    let mut w = 1;
    while encoded_len(total - 1 - w as u64) > w {
        w += 1;
    }
    w
}

/// The tree's records: directories with 5-byte lengths, files with an
/// indirect record whose size and offset are 5 bytes wide, so that a new
/// size or offset rewrites bytes in place. `pad_first` widens the first
/// entry's length by one byte.
fn tree_bytes(
    tree: &Tree,
    order: &[(NodeRef, usize)],
    offsets: &dyn Fn(NodeRef) -> (u64, u64),
    pad_first: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut open: Vec<(usize, usize, usize)> = Vec::new(); // (start, depth, width)
    let close = |out: &mut Vec<u8>, open: &mut Vec<(usize, usize, usize)>, depth: usize| {
        while let Some(&(start, d, width)) = open.last() {
            if d < depth {
                break;
            }
            open.pop();
            let len = (out.len() - start - 1 - width) as u64;
            encode_padded(len, width, &mut out[start + 1..start + 1 + width]);
        }
    };
    for (i, &(node, depth)) in order.iter().enumerate() {
        close(&mut out, &mut open, depth);
        let extra = (pad_first && i == 0) as usize;
        let name = tree.name(node);
        let start = out.len();
        match tree.file(node) {
            Some(_) => {
                let (size, offset) = offsets(node);
                let payload = encoded_len(name.len() as u64) as u64
                    + name.len() as u64
                    + 2
                    + INDIRECT_PAYLOAD;
                out.push(kind::FILE as u8);
                push_varuint_padded(&mut out, payload, encoded_len(payload) + extra);
                push_varuint(&mut out, name.len() as u64);
                out.extend_from_slice(name);
                out.push(kind::DATA_INDIRECT as u8);
                push_varuint(&mut out, INDIRECT_PAYLOAD);
                push_varuint_padded(&mut out, size, FIXED_WIDTH);
                push_varuint_padded(&mut out, offset, FIXED_WIDTH);
            }
            None => {
                let width = FIXED_WIDTH + extra;
                out.push(kind::DIRECTORY as u8);
                out.resize(out.len() + width, 0);
                push_varuint(&mut out, name.len() as u64);
                out.extend_from_slice(name);
                open.push((start, depth, width));
            }
        }
    }
    close(&mut out, &mut open, 0);
    out
}
