//! The image writer: describe a tree, plan its layout, then emit the bytes
//! in one forward pass (file contents are streamed from a [`Contents`]
//! source, never held by the writer).
//!
//! Two layouts:
//! - [`Layout::Mpremote`]: byte for byte what `mpremote romfs build` writes.
//! - [`Layout::Default`]: file data aligned, identical contents stored once
//!   (indirect records), a metadata record first and a CRC32 record last.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::ext::{self, FIELD_BUILD_TIME, FIELD_GENERATION, FIELD_LABEL, FIELD_TOOL};
use crate::image::HEADER;
use crate::record::kind;
use crate::varuint::{self, encoded_len};

/// Files shorter than this are never stored as shared data: an indirect
/// record would cost about as much as the bytes it saves.
pub const MIN_DEDUP_LEN: u64 = 16;

/// The largest alignment accepted (a power of two).
pub const MAX_ALIGN: u32 = 1 << 16;

/// The largest flash write size [`Options::header_write_size`] accepts.
pub const MAX_HEADER_WRITE_SIZE: u32 = 32;

/// Width of the image length varuint that makes the header safe for flash
/// write units of `write_size` bytes: `write_size - 3` bytes of `0x80`
/// (completing the first unit after `d2 cd 31`), then
/// [`HEADER_SAFE_DIGITS`](crate::HEADER_SAFE_DIGITS) digit bytes. 1 (no
/// padding needed) when the first unit holds only magic bytes.
pub const fn header_length_width(write_size: u32) -> usize {
    if write_size as usize <= HEADER.len() {
        1
    } else {
        write_size as usize - HEADER.len() + crate::image::HEADER_SAFE_DIGITS
    }
}

/// A handle to a directory or file added to a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef(usize);

impl NodeRef {
    /// The index of the node in its tree (the root is 0).
    pub fn index(self) -> usize {
        self.0
    }
}

/// What the writer needs to know about a file; the bytes themselves come
/// from a [`Contents`] source when the image is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Exact length of the contents.
    pub len: u64,
    /// The caller's handle for the contents, passed back to [`Contents`].
    pub source: u64,
    /// Files with the same `content` class have identical bytes and may be
    /// stored once (the caller guarantees it). `None`: never shared.
    pub content: Option<u64>,
    /// Alignment of this file's data, overriding [`Options::align`].
    pub align: Option<u32>,
}

#[derive(Debug, Clone)]
enum TreeNodeKind {
    Dir(Vec<usize>),
    File(FileSpec),
}

#[derive(Debug, Clone)]
struct TreeNode {
    name: Vec<u8>,
    parent: usize,
    kind: TreeNodeKind,
}

/// A tree of directories and files to write.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<TreeNode>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty tree (just the root directory).
    pub fn new() -> Self {
        Tree {
            nodes: alloc::vec![TreeNode {
                name: Vec::new(),
                parent: 0,
                kind: TreeNodeKind::Dir(Vec::new())
            }],
        }
    }

    /// The root directory.
    pub fn root(&self) -> NodeRef {
        NodeRef(0)
    }

    fn add(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        kind: TreeNodeKind,
    ) -> Result<NodeRef, WriteError> {
        let id = self.nodes.len();
        match self.nodes.get_mut(parent.0).map(|n| &mut n.kind) {
            Some(TreeNodeKind::Dir(children)) => children.push(id),
            _ => {
                return Err(WriteError::NotADirectory {
                    path: self.path_lossy(parent),
                })
            }
        }
        self.nodes.push(TreeNode {
            name: name.to_vec(),
            parent: parent.0,
            kind,
        });
        Ok(NodeRef(id))
    }

    /// Add a directory under `parent`.
    pub fn add_dir(&mut self, parent: NodeRef, name: &[u8]) -> Result<NodeRef, WriteError> {
        self.add(parent, name, TreeNodeKind::Dir(Vec::new()))
    }

    /// Add a file under `parent`.
    pub fn add_file(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        spec: FileSpec,
    ) -> Result<NodeRef, WriteError> {
        self.add(parent, name, TreeNodeKind::File(spec))
    }

    /// Number of nodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree holds only the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// The file spec of a node, if it is a file.
    pub fn file(&self, node: NodeRef) -> Option<&FileSpec> {
        match &self.nodes.get(node.0)?.kind {
            TreeNodeKind::File(spec) => Some(spec),
            TreeNodeKind::Dir(_) => None,
        }
    }

    /// The name of a node (empty for the root).
    pub fn name(&self, node: NodeRef) -> &[u8] {
        self.nodes
            .get(node.0)
            .map(|n| n.name.as_slice())
            .unwrap_or(&[])
    }

    /// The node's path from the root, `/`-separated, without a leading `/`.
    pub fn path(&self, node: NodeRef) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut i = node.0;
        while i != 0 && i < self.nodes.len() {
            parts.push(i);
            i = self.nodes[i].parent;
        }
        let mut out = Vec::new();
        for (k, &p) in parts.iter().rev().enumerate() {
            if k > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(&self.nodes[p].name);
        }
        out
    }

    fn path_lossy(&self, node: NodeRef) -> String {
        String::from_utf8_lossy(&self.path(node)).into_owned()
    }
}

/// Which byte layout to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Aligned, deduplicated, with metadata and checksum.
    #[default]
    Default,
    /// Byte-identical to `mpremote romfs build`.
    Mpremote,
}

/// Metadata to record in a default-layout image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataSpec {
    /// The tool that wrote the image.
    pub tool: Option<String>,
    /// A free-form label.
    pub label: Option<String>,
    /// Generation number for OTA updates; higher is newer.
    pub generation: Option<u64>,
    /// Build time (seconds since the Unix epoch). Leave `None` for
    /// reproducible images.
    pub build_time: Option<u64>,
}

/// How to lay an image out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The layout.
    pub layout: Layout,
    /// Default alignment of file data from the image start (a power of two;
    /// default layout only).
    pub align: u32,
    /// Store identical contents once (default layout only).
    pub dedup: bool,
    /// End the image with a CRC32 record (default layout only).
    pub checksum: bool,
    /// Sort each directory's entries by name bytes. With `false` entries keep
    /// the order they were added in (callers that mimic mpremote's order).
    pub sort: bool,
    /// Metadata record (default layout only; `None` writes none).
    pub metadata: Option<MetadataSpec>,
    /// Make the header safe for a single-slot flash update with write units
    /// of this many bytes (1 to [`MAX_HEADER_WRITE_SIZE`]; default layout
    /// only): the image length is padded so that the first write unit is
    /// the constant `d2 cd 31 80 80 ...` and the length's digits start in
    /// the next unit (see [`header_is_write_safe`](crate::header_is_write_safe)
    /// and FORMAT.md, section 5). `None` (or a size up to 3) pads nothing.
    pub header_write_size: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            layout: Layout::Default,
            align: 4,
            dedup: true,
            checksum: true,
            sort: true,
            metadata: Some(MetadataSpec {
                tool: Some(String::from(concat!("romfs ", env!("CARGO_PKG_VERSION")))),
                ..MetadataSpec::default()
            }),
            header_write_size: None,
        }
    }
}

impl Options {
    /// Options for byte-identical `mpremote romfs build` output.
    pub fn mpremote() -> Self {
        Options {
            layout: Layout::Mpremote,
            align: 1,
            dedup: false,
            checksum: false,
            sort: true,
            metadata: None,
            header_write_size: None,
        }
    }
}

/// Why an image cannot be planned or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// A name the format (or the chosen layout) cannot hold.
    BadName {
        /// Path of the offending entry.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// Two entries of one directory have the same name.
    DuplicateName {
        /// Path of the second entry.
        path: String,
    },
    /// A node was added under a file.
    NotADirectory {
        /// Path of the file.
        path: String,
    },
    /// An alignment that is not a power of two up to [`MAX_ALIGN`].
    BadAlignment {
        /// The alignment asked for.
        align: u32,
    },
    /// The image would exceed the 4 GiB the format's 32-bit varuints allow.
    TooLarge {
        /// The size it would have.
        size: u64,
    },
    /// A [`Options::header_write_size`] that cannot be honoured: 0, above
    /// [`MAX_HEADER_WRITE_SIZE`], or with the mpremote layout.
    BadHeaderWriteSize {
        /// The write size asked for.
        size: u32,
    },
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::BadName { path, reason } => write!(f, "{path:?}: {reason}"),
            WriteError::DuplicateName { path } => {
                write!(f, "{path:?}: duplicate name in its directory")
            }
            WriteError::NotADirectory { path } => write!(f, "{path:?}: not a directory"),
            WriteError::BadAlignment { align } => {
                write!(
                    f,
                    "alignment {align} is not a power of two up to {MAX_ALIGN}"
                )
            }
            WriteError::TooLarge { size } => {
                write!(
                    f,
                    "image would be {size} bytes; the format allows at most 4 GiB"
                )
            }
            WriteError::BadHeaderWriteSize { size } => {
                write!(
                    f,
                    "flash write size {size}: a header-safe image needs a write size \
                     from 1 to {MAX_HEADER_WRITE_SIZE} and the default layout"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WriteError {}

/// Where a file's data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The file in the tree.
    pub node: NodeRef,
    /// Offset of its data from the image start.
    pub data_offset: u64,
    /// Its length.
    pub len: u64,
    /// Shared with an earlier file (stored through an indirect record).
    pub shared: bool,
    /// Alignment padding spent in front of it.
    pub padding: u64,
}

/// Counts describing a planned image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Files.
    pub files: usize,
    /// Directories (root excluded).
    pub dirs: usize,
    /// Sum of all file lengths.
    pub bytes_in: u64,
    /// Bytes not stored thanks to shared data.
    pub dedup_saved: u64,
    /// Files stored as shared data.
    pub dedup_files: usize,
    /// Bytes spent on alignment padding.
    pub align_overhead: u64,
    /// Final image length.
    pub image_len: u64,
}

#[derive(Debug, Clone, Copy)]
enum Data {
    /// Stored here: `pad` bytes of alignment, then a verbatim record.
    Verbatim { pad: u64 },
    /// Points at item `rep`'s data.
    Shared {
        rep: usize,
        offset_w: usize,
        offset: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum ItemKind {
    Dir,
    File {
        spec: FileSpec,
        align: u64,
        data: Data,
    },
}

#[derive(Debug, Clone, Copy)]
struct Item {
    node: usize,
    depth: usize,
    kind: ItemKind,
    /// Width of the record's length varuint (only ever grows while planning).
    len_w: usize,
    /// Offset of the record's first byte.
    start: u64,
    /// Payload length of the record.
    len: u64,
    /// Offset of the file's data (files only).
    data_pos: u64,
}

/// A fully laid-out image, ready to [`emit`](Plan::emit).
#[derive(Debug, Clone)]
pub struct Plan<'t> {
    tree: &'t Tree,
    layout: Layout,
    items: Vec<Item>,
    top_w: usize,
    payload_offset: u64,
    metadata: Vec<u8>,
    /// Bytes of the trailing record (checksum or parity padding), if any.
    trailer: Trailer,
    stats: Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailer {
    None,
    /// Checksum record; `true` when its length varuint is padded for parity.
    Checksum(bool),
    /// A 3-byte padding record that makes the size even.
    Parity,
}

impl Trailer {
    fn len(self) -> u64 {
        match self {
            Trailer::None => 0,
            Trailer::Checksum(padded) => 10 + padded as u64,
            Trailer::Parity => 3,
        }
    }
}

fn check_name(tree: &Tree, node: usize, layout: Layout) -> Result<(), WriteError> {
    let name = &tree.nodes[node].name;
    let reason = if name.is_empty() {
        Some("empty name")
    } else if name.contains(&b'/') {
        Some("name contains '/'")
    } else if name.contains(&0) {
        Some("name contains a NUL byte")
    } else if name == b"." || name == b".." {
        Some("name is '.' or '..'")
    } else if layout == Layout::Mpremote && !name.is_ascii() {
        Some("mpremote layout allows only ASCII names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(WriteError::BadName {
            path: tree.path_lossy(NodeRef(node)),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_align(align: u32) -> Result<u64, WriteError> {
    if align == 0 || !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(WriteError::BadAlignment { align });
    }
    Ok(u64::from(align))
}

fn metadata_record(spec: &MetadataSpec) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |id: u64, value: &[u8]| {
        push_varuint(&mut body, id);
        push_varuint(&mut body, value.len() as u64);
        body.extend_from_slice(value);
    };
    let number = |v: u64| {
        let mut b = [0u8; 10];
        let n = varuint::encode(v.min(varuint::MAX_VALUE), &mut b);
        b[..n].to_vec()
    };
    if let Some(tool) = &spec.tool {
        field(FIELD_TOOL, tool.as_bytes());
    }
    if let Some(label) = &spec.label {
        field(FIELD_LABEL, label.as_bytes());
    }
    if let Some(generation) = spec.generation {
        field(FIELD_GENERATION, &number(generation));
    }
    if let Some(time) = spec.build_time {
        field(FIELD_BUILD_TIME, &number(time));
    }
    let mut payload = ext::MAGIC.to_vec();
    payload.push(ext::TAG_METADATA);
    payload.extend_from_slice(&body);
    let mut rec = Vec::new();
    push_varuint(&mut rec, kind::PADDING);
    push_varuint(&mut rec, payload.len() as u64);
    rec.extend_from_slice(&payload);
    rec
}

fn push_varuint(out: &mut Vec<u8>, value: u64) {
    push_varuint_padded(out, value, encoded_len(value));
}

fn push_varuint_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut b = [0u8; varuint::MAX_ENCODED_LEN];
    let n = varuint::encode_padded(value, width, &mut b);
    out.extend_from_slice(&b[..n]);
}

/// The bytes of a padding record exactly `total` (>= 2) bytes long.
fn padding_record(total: u64, out: &mut Vec<u8>) {
    debug_assert!(total >= 2);
    // kind (1 byte) + length varuint (w bytes) + payload; pad w to fit.
    let mut w = 1;
    while encoded_len(total - 1 - w as u64) > w {
        w += 1;
    }
    let payload = total - 1 - w as u64;
    out.push(kind::PADDING as u8);
    push_varuint_padded(out, payload, w);
    out.resize(out.len() + payload as usize, 0);
}

impl<'t> Plan<'t> {
    /// Lay out `tree` with `opts`: every offset and varuint width is fixed
    /// here, so emitting is a single forward pass.
    pub fn new(tree: &'t Tree, opts: &Options) -> Result<Self, WriteError> {
        let mpremote = opts.layout == Layout::Mpremote;
        let default_align = if mpremote {
            1
        } else {
            check_align(opts.align)?
        };
        let top_w = match opts.header_write_size {
            None => 1,
            Some(w) if w == 0 || w > MAX_HEADER_WRITE_SIZE || mpremote => {
                return Err(WriteError::BadHeaderWriteSize { size: w })
            }
            // Widths only grow while planning, so starting wider keeps it.
            Some(w) => header_length_width(w),
        };
        let mut items = Vec::with_capacity(tree.nodes.len());
        let mut stats = Stats::default();

        // Pre-order walk with an explicit stack: any depth is safe.
        let mut stack: Vec<(usize, usize)> = Vec::new(); // (node, depth)
        push_children(tree, 0, 1, opts.sort, &mut stack)?;
        while let Some((node, depth)) = stack.pop() {
            check_name(tree, node, opts.layout)?;
            let kind = match &tree.nodes[node].kind {
                TreeNodeKind::Dir(_) => {
                    stats.dirs += 1;
                    push_children(tree, node, depth + 1, opts.sort, &mut stack)?;
                    ItemKind::Dir
                }
                TreeNodeKind::File(spec) => {
                    stats.files += 1;
                    stats.bytes_in += spec.len;
                    let align = match (mpremote, spec.align) {
                        (true, _) => 1,
                        (false, Some(a)) => check_align(a)?,
                        (false, None) => default_align,
                    };
                    ItemKind::File {
                        spec: *spec,
                        align,
                        data: Data::Verbatim { pad: 0 },
                    }
                }
            };
            items.push(Item {
                node,
                depth,
                kind,
                len_w: 1,
                start: 0,
                len: 0,
                data_pos: 0,
            });
        }

        if opts.dedup && !mpremote {
            share_identical(&mut items);
            for it in &items {
                if let ItemKind::File {
                    spec,
                    data: Data::Shared { .. },
                    ..
                } = it.kind
                {
                    stats.dedup_files += 1;
                    stats.dedup_saved += spec.len;
                }
            }
        }

        let metadata = match (&opts.metadata, mpremote) {
            (Some(spec), false) => metadata_record(spec),
            _ => Vec::new(),
        };
        let mut plan = Plan {
            tree,
            layout: opts.layout,
            items,
            top_w,
            payload_offset: 0,
            metadata,
            trailer: if opts.checksum && !mpremote {
                Trailer::Checksum(false)
            } else {
                Trailer::None
            },
            stats,
        };
        plan.settle()?;
        Ok(plan)
    }

    /// Repeat layout passes until no varuint needs to grow. Widths only grow,
    /// so this ends (in practice after two or three passes).
    fn settle(&mut self) -> Result<(), WriteError> {
        loop {
            let mut grew = false;
            let payload_offset = HEADER.len() as u64 + self.top_w as u64;
            let mut pos = payload_offset + self.metadata.len() as u64;
            let mut open: Vec<usize> = Vec::new();
            let mut align_overhead = 0;
            for i in 0..self.items.len() {
                let depth = self.items[i].depth;
                close_dirs(&mut self.items, &mut open, depth, pos, &mut grew);
                let it = self.items[i];
                let name_len = self.tree.nodes[it.node].name.len() as u64;
                let header = 1 + it.len_w as u64 + encoded_len(name_len) as u64 + name_len;
                let start = pos;
                match it.kind {
                    ItemKind::Dir => {
                        self.items[i].start = start;
                        pos += header;
                        open.push(i);
                    }
                    ItemKind::File { spec, align, data } => {
                        let body = start + header;
                        let (end, data_pos, data) = match data {
                            Data::Verbatim { .. } => {
                                let natural = body + 1 + encoded_len(spec.len) as u64;
                                let pad = if spec.len == 0 {
                                    0
                                } else {
                                    (align - natural % align) % align
                                };
                                align_overhead += pad;
                                let data_pos = natural + pad;
                                (data_pos + spec.len, data_pos, Data::Verbatim { pad })
                            }
                            Data::Shared { rep, offset_w, .. } => {
                                let data_pos = self.items[rep].data_pos;
                                let offset = data_pos - payload_offset;
                                let need = encoded_len(offset);
                                let offset_w = if need > offset_w {
                                    grew = true;
                                    need
                                } else {
                                    offset_w
                                };
                                let payload = encoded_len(spec.len) + offset_w;
                                let end =
                                    body + 1 + encoded_len(payload as u64) as u64 + payload as u64;
                                (
                                    end,
                                    data_pos,
                                    Data::Shared {
                                        rep,
                                        offset_w,
                                        offset,
                                    },
                                )
                            }
                        };
                        let item = &mut self.items[i];
                        item.start = start;
                        item.data_pos = data_pos;
                        item.kind = ItemKind::File { spec, align, data };
                        set_len(item, end, &mut grew);
                        pos = end;
                    }
                }
            }
            close_dirs(&mut self.items, &mut open, 0, pos, &mut grew);
            if let Trailer::Checksum(_) = self.trailer {
                self.trailer = Trailer::Checksum((pos + 10) % 2 == 1);
            } else if self.layout == Layout::Default {
                self.trailer = if pos % 2 == 1 {
                    Trailer::Parity
                } else {
                    Trailer::None
                };
            }
            let end = pos + self.trailer.len();
            let payload_len = end - payload_offset;
            let need = encoded_len(payload_len);
            if need > self.top_w {
                self.top_w = need;
                grew = true;
            }
            if !grew && self.layout == Layout::Mpremote && end % 2 == 1 {
                // mpremote makes the size even with one 0x80 before the
                // length; nothing inside depends on where the payload starts.
                self.top_w += 1;
                grew = true;
            }
            if !grew {
                if payload_len > varuint::MAX_VALUE {
                    return Err(WriteError::TooLarge { size: end });
                }
                self.payload_offset = payload_offset;
                self.stats.image_len = end;
                self.stats.align_overhead = align_overhead;
                return Ok(());
            }
        }
    }

    /// Counts describing the image.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Total image length in bytes.
    pub fn image_len(&self) -> u64 {
        self.stats.image_len
    }

    /// Where every file's data goes, in image order.
    pub fn placements(&self) -> impl Iterator<Item = Placement> + '_ {
        self.items.iter().filter_map(|it| match it.kind {
            ItemKind::File { spec, data, .. } => Some(Placement {
                node: NodeRef(it.node),
                data_offset: it.data_pos,
                len: spec.len,
                shared: matches!(data, Data::Shared { .. }),
                padding: match data {
                    Data::Verbatim { pad } => pad,
                    Data::Shared { .. } => 0,
                },
            }),
            ItemKind::Dir => None,
        })
    }

    /// The nodes in the order they are written, with their depth (1 for
    /// entries of the root): the tree as it is packed.
    pub fn order(&self) -> impl Iterator<Item = (NodeRef, usize)> + '_ {
        self.items.iter().map(|it| (NodeRef(it.node), it.depth))
    }

    /// Write the image to `out`, pulling file contents from `contents`.
    /// Returns the CRC32 of the whole image.
    pub fn emit<O: Output, C: Contents<O::Error>>(
        &self,
        out: &mut O,
        contents: &mut C,
    ) -> Result<u32, EmitError<O::Error>> {
        let mut w = Emitter {
            out,
            crc: crate::crc32::Hasher::new(),
            written: 0,
            buf: Vec::with_capacity(64),
        };
        let payload_len = self.stats.image_len - self.payload_offset;
        w.buf.extend_from_slice(&HEADER);
        push_varuint_padded(&mut w.buf, payload_len, self.top_w);
        w.buf.extend_from_slice(&self.metadata);
        for it in &self.items {
            let name = &self.tree.nodes[it.node].name;
            let (kind_byte, item_kind) = match it.kind {
                ItemKind::Dir => (kind::DIRECTORY, it.kind),
                ItemKind::File { .. } => (kind::FILE, it.kind),
            };
            w.buf.push(kind_byte as u8);
            push_varuint_padded(&mut w.buf, it.len, it.len_w);
            push_varuint(&mut w.buf, name.len() as u64);
            w.buf.extend_from_slice(name);
            if let ItemKind::File { spec, data, .. } = item_kind {
                match data {
                    Data::Verbatim { pad } => {
                        if pad >= 2 {
                            padding_record(pad, &mut w.buf);
                        }
                        w.buf.push(kind::DATA_VERBATIM as u8);
                        push_varuint_padded(
                            &mut w.buf,
                            spec.len,
                            encoded_len(spec.len) + (pad == 1) as usize,
                        );
                        w.flush().map_err(EmitError::Output)?;
                        debug_assert_eq!(w.written, it.data_pos);
                        let mut copied = 0u64;
                        let mut sink = |bytes: &[u8]| -> Result<(), O::Error> {
                            copied += bytes.len() as u64;
                            if copied <= spec.len {
                                w.crc.update(bytes);
                                w.written += bytes.len() as u64;
                                w.out.write_all(bytes)?;
                            }
                            Ok(())
                        };
                        contents
                            .write_contents(spec.source, spec.len, &mut sink)
                            .map_err(EmitError::Output)?;
                        if copied != spec.len {
                            return Err(EmitError::ContentLength {
                                path: self.tree.path_lossy(NodeRef(it.node)),
                                expected: spec.len,
                                actual: copied,
                            });
                        }
                    }
                    Data::Shared {
                        offset_w, offset, ..
                    } => {
                        let payload = encoded_len(spec.len) + offset_w;
                        w.buf.push(kind::DATA_INDIRECT as u8);
                        push_varuint(&mut w.buf, payload as u64);
                        push_varuint(&mut w.buf, spec.len);
                        push_varuint_padded(&mut w.buf, offset, offset_w);
                    }
                }
            }
        }
        match self.trailer {
            Trailer::None => {}
            Trailer::Parity => padding_record(3, &mut w.buf),
            Trailer::Checksum(padded) => {
                w.buf.push(kind::PADDING as u8);
                push_varuint_padded(&mut w.buf, 8, 1 + padded as usize);
                w.buf.extend_from_slice(&ext::MAGIC);
                w.buf.push(ext::TAG_CHECKSUM);
                w.flush().map_err(EmitError::Output)?;
                let crc = w.crc.value();
                w.out
                    .write_all(&crc.to_le_bytes())
                    .map_err(EmitError::Output)?;
                w.crc.update(&crc.to_le_bytes());
                w.written += 4;
            }
        }
        w.flush().map_err(EmitError::Output)?;
        debug_assert_eq!(w.written, self.stats.image_len);
        Ok(w.crc.finalize())
    }
}

fn push_children(
    tree: &Tree,
    node: usize,
    depth: usize,
    sort: bool,
    stack: &mut Vec<(usize, usize)>,
) -> Result<(), WriteError> {
    let TreeNodeKind::Dir(children) = &tree.nodes[node].kind else {
        return Ok(());
    };
    let mut sorted: Vec<usize> = children.clone();
    sorted.sort_by(|&a, &b| tree.nodes[a].name.cmp(&tree.nodes[b].name));
    for pair in sorted.windows(2) {
        if tree.nodes[pair[0]].name == tree.nodes[pair[1]].name {
            return Err(WriteError::DuplicateName {
                path: tree.path_lossy(NodeRef(pair[1])),
            });
        }
    }
    let order = if sort { &sorted } else { children };
    // Reversed so that popping yields the first entry first.
    stack.extend(order.iter().rev().map(|&c| (c, depth)));
    Ok(())
}

/// Make every later file with the same content class point at the first one,
/// whose alignment becomes the largest asked for by any of them.
fn share_identical(items: &mut [Item]) {
    let mut first: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for i in 0..items.len() {
        let ItemKind::File { spec, align, .. } = items[i].kind else {
            continue;
        };
        let Some(class) = spec.content else { continue };
        if spec.len < MIN_DEDUP_LEN {
            continue;
        }
        match first.get(&(class, spec.len)) {
            None => {
                first.insert((class, spec.len), i);
            }
            Some(&rep) => {
                items[i].kind = ItemKind::File {
                    spec,
                    align,
                    data: Data::Shared {
                        rep,
                        offset_w: 1,
                        offset: 0,
                    },
                };
                if let ItemKind::File {
                    align: rep_align, ..
                } = &mut items[rep].kind
                {
                    *rep_align = (*rep_align).max(align);
                }
            }
        }
    }
}

/// Record `end` as the end of item's record, growing its length varuint if needed.
fn set_len(item: &mut Item, end: u64, grew: &mut bool) {
    let len = end - (item.start + 1 + item.len_w as u64);
    let need = encoded_len(len);
    if need > item.len_w {
        item.len_w = need;
        *grew = true;
    }
    // With a grown width the length is recomputed next pass.
    item.len = len;
}

fn close_dirs(items: &mut [Item], open: &mut Vec<usize>, depth: usize, pos: u64, grew: &mut bool) {
    while let Some(&d) = open.last() {
        if items[d].depth < depth {
            break;
        }
        open.pop();
        set_len(&mut items[d], pos, grew);
    }
}

/// Where an image is written.
pub trait Output {
    /// The error writing can fail with.
    type Error;
    /// Write all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
}

impl Output for Vec<u8> {
    type Error = core::convert::Infallible;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Any `std::io::Write` as an [`Output`].
#[cfg(feature = "std")]
pub struct IoOutput<W>(pub W);

#[cfg(feature = "std")]
impl<W: std::io::Write> Output for IoOutput<W> {
    type Error = std::io::Error;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write_all(bytes)
    }
}

/// Where file contents come from while an image is emitted.
pub trait Contents<E> {
    /// Pass the `len` bytes of `source` to `sink`, in as many pieces as
    /// convenient. Passing a different total is reported as an error.
    fn write_contents(
        &mut self,
        source: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E>;
}

/// Why emitting failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError<E> {
    /// The output or the contents source failed.
    Output(E),
    /// A source gave a different number of bytes than planned (the file
    /// changed while the image was being written).
    ContentLength {
        /// Path of the file in the image.
        path: String,
        /// Bytes planned.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
}

impl<E: fmt::Display> fmt::Display for EmitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Output(e) => write!(f, "{e}"),
            EmitError::ContentLength {
                path,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "{path:?}: expected {expected} bytes but read {actual} (did it change?)"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl<E: fmt::Debug + fmt::Display> std::error::Error for EmitError<E> {}

struct Emitter<'o, O: Output> {
    out: &'o mut O,
    crc: crate::crc32::Hasher,
    written: u64,
    buf: Vec<u8>,
}

impl<O: Output> Emitter<'_, O> {
    fn flush(&mut self) -> Result<(), O::Error> {
        if !self.buf.is_empty() {
            self.crc.update(&self.buf);
            self.written += self.buf.len() as u64;
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// A tree whose file contents are held in memory: handy for tests and small
/// images.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    tree: Tree,
    contents: Vec<Vec<u8>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root directory.
    pub fn root(&self) -> NodeRef {
        self.tree.root()
    }

    /// Add a directory.
    pub fn add_dir(&mut self, parent: NodeRef, name: &[u8]) -> Result<NodeRef, WriteError> {
        self.tree.add_dir(parent, name)
    }

    /// Add a file with its contents.
    pub fn add_file(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        data: Vec<u8>,
    ) -> Result<NodeRef, WriteError> {
        self.add_file_aligned(parent, name, data, None)
    }

    /// Add a file whose data needs its own alignment.
    pub fn add_file_aligned(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        data: Vec<u8>,
        align: Option<u32>,
    ) -> Result<NodeRef, WriteError> {
        let spec = FileSpec {
            len: data.len() as u64,
            source: self.contents.len() as u64,
            content: None,
            align,
        };
        let node = self.tree.add_file(parent, name, spec)?;
        self.contents.push(data);
        Ok(node)
    }

    /// The underlying tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Build the image.
    pub fn build(&self, opts: &Options) -> Result<Vec<u8>, WriteError> {
        // Content classes: identical bytes get the same class.
        let mut tree = self.tree.clone();
        let mut classes: BTreeMap<&[u8], u64> = BTreeMap::new();
        for node in tree.nodes.iter_mut() {
            if let TreeNodeKind::File(spec) = &mut node.kind {
                let data = self.contents[spec.source as usize].as_slice();
                let next = classes.len() as u64;
                spec.content = Some(*classes.entry(data).or_insert(next));
            }
        }
        let plan = Plan::new(&tree, opts)?;
        let mut out = Vec::with_capacity(plan.image_len() as usize);
        let mut source = MemoryContents(&self.contents);
        match plan.emit(&mut out, &mut source) {
            Ok(_) => Ok(out),
            Err(EmitError::Output(never)) => match never {},
            Err(EmitError::ContentLength { .. }) => {
                unreachable!("in-memory contents cannot change")
            }
        }
    }
}

struct MemoryContents<'a>(&'a [Vec<u8>]);

impl<E> Contents<E> for MemoryContents<'_> {
    fn write_contents(
        &mut self,
        source: u64,
        _len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        sink(&self.0[source as usize])
    }
}
