//! Planning: every offset and varuint width of the image is fixed before a
//! byte is written, so emitting is one forward pass.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::emit::push_varuint;
use super::tree::{NodeRef, Tree, TreeNodeKind};
use super::{check_align, check_name, header_length_width, FileSpec, Layout, MetadataSpec};
use super::{Options, WriteError, MAX_HEADER_WRITE_SIZE, MIN_DEDUP_LEN};
use crate::ext::{
    self, FIELD_BUILD_TIME, FIELD_GENERATION, FIELD_LABEL, FIELD_PRODUCT, FIELD_TOOL,
};
use crate::header::HEADER;
use crate::record::kind;
use crate::signature::{Manifest, MAX_PRODUCT_LEN, SIGNATURE_RECORD_LEN};
use crate::varuint::{self, encoded_len};

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
pub(super) enum Data {
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
pub(super) enum ItemKind {
    Dir,
    File {
        spec: FileSpec,
        align: u64,
        data: Data,
    },
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Item {
    pub(super) node: usize,
    pub(super) depth: usize,
    pub(super) kind: ItemKind,
    /// Width of the record's length varuint (only ever grows while planning).
    pub(super) len_w: usize,
    /// Offset of the record's first byte.
    pub(super) start: u64,
    /// Payload length of the record.
    pub(super) len: u64,
    /// Offset of the file's data (files only).
    pub(super) data_pos: u64,
}

/// A fully laid-out image, ready to [`emit`](Plan::emit).
#[derive(Debug, Clone)]
pub struct Plan<'t> {
    pub(super) tree: &'t Tree,
    pub(super) layout: Layout,
    pub(super) items: Vec<Item>,
    pub(super) top_w: usize,
    pub(super) payload_offset: u64,
    pub(super) metadata: Vec<u8>,
    /// The records that end the image (checksum, signature or parity padding).
    pub(super) trailer: Trailer,
    /// The manifest fields of the signature record, when there is one.
    pub(super) signature: Option<(u32, [u8; MAX_PRODUCT_LEN])>,
    pub(super) stats: Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trailer {
    None,
    /// The checksum record (its length varuint padded for parity when
    /// `padded`), then the signature record when `signed`.
    Checksum {
        padded: bool,
        signed: bool,
    },
    /// A 3-byte padding record that makes the size even.
    Parity,
}

impl Trailer {
    pub(super) fn len(self) -> u64 {
        match self {
            Trailer::None => 0,
            Trailer::Checksum { padded, signed } => {
                10 + padded as u64 + signed as u64 * SIGNATURE_RECORD_LEN as u64
            }
            Trailer::Parity => 3,
        }
    }
}

pub(super) fn metadata_record(spec: &MetadataSpec) -> Vec<u8> {
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
    if let Some(product) = &spec.product {
        field(FIELD_PRODUCT, product.as_bytes());
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

        let signature = match &opts.signature {
            None => None,
            Some(_) if mpremote || !opts.checksum => {
                return Err(WriteError::SignatureNeedsChecksum)
            }
            Some(spec) => match Manifest::product_field(spec.product.as_bytes()) {
                Some(product) => Some((spec.generation, product)),
                None => {
                    return Err(WriteError::BadProduct {
                        product: spec.product.clone(),
                    })
                }
            },
        };
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
                Trailer::Checksum {
                    padded: false,
                    signed: signature.is_some(),
                }
            } else {
                Trailer::None
            },
            signature,
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
            if let Trailer::Checksum { signed, .. } = self.trailer {
                let padded = (pos + 10 + signed as u64 * SIGNATURE_RECORD_LEN as u64) % 2 == 1;
                self.trailer = Trailer::Checksum { padded, signed };
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

    /// Where the signature record starts, when the image has one: the
    /// bytes before it are what the manifest's digest covers, and the
    /// record's last [`SIGNED_MANIFEST_LEN`](crate::signature::SIGNED_MANIFEST_LEN)
    /// bytes are the manifest and signature a signer fills in.
    pub fn signature_offset(&self) -> Option<u64> {
        match self.trailer {
            Trailer::Checksum { signed: true, .. } => {
                Some(self.stats.image_len - SIGNATURE_RECORD_LEN as u64)
            }
            _ => None,
        }
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
