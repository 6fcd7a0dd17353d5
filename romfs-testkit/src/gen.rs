//! Random ROMFS images for differential testing, each reproducible from one
//! seed, and a minimiser that shrinks a failing image while it still fails.
//!
//! Three families:
//! - **valid**: a random tree written by `romfs_format::write` in every
//!   layout and option (mpremote, aligned, deduplicated, checksummed, with
//!   metadata, header-safe);
//! - **hand-shaped**: records put together here, with what our writer never
//!   emits: padding and unknown record kinds anywhere, indirect data pointing
//!   anywhere in the payload, duplicate names, files without data or with
//!   two data records, empty files and directories, deep nesting, large
//!   files, padded varuints and names made of any bytes;
//! - **mutated**: a valid or hand-shaped image after a few of: bits flipped,
//!   bytes set, record or name lengths changed, records spliced, copied or
//!   deleted, bytes inserted or deleted, the declared length shortened, the
//!   buffer cut, the tail erased as by a torn flash write; the checksum is
//!   often brought up to date afterwards so that the damage is seen by the
//!   readers rather than only by the checksum.

use std::fmt::Write as _;

use romfs_format::varuint;
use romfs_format::write::{Layout, MemoryTree, MetadataSpec, NodeRef, Options, SignatureSpec};
use romfs_format::{Image, HEADER};

use crate::Rng;

/// Which family an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Written by our writer.
    Valid,
    /// Records put together by hand.
    HandShaped,
    /// A valid or hand-shaped image, damaged.
    Mutated,
}

/// One generated image.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The family it comes from.
    pub family: Family,
    /// How it was made, for the report of a failure.
    pub recipe: String,
    /// The image (for some mutations, a buffer that is not one).
    pub bytes: Vec<u8>,
}

/// The image for `seed`: the same seed always gives the same image.
pub fn generate(seed: u64) -> Generated {
    let mut rng = Rng(seed);
    // Mix the seed once so that neighbouring seeds start far apart.
    rng.next();
    let family = match rng.below(20) {
        0..=5 => Family::Valid,
        6..=12 => Family::HandShaped,
        _ => Family::Mutated,
    };
    let mut recipe = String::new();
    let bytes = match family {
        Family::Valid => valid(&mut rng, &mut recipe),
        Family::HandShaped => hand_shaped(&mut rng, &mut recipe),
        Family::Mutated => {
            let base = if rng.below(5) < 3 {
                valid(&mut rng, &mut recipe)
            } else {
                hand_shaped(&mut rng, &mut recipe)
            };
            mutate(&mut rng, base, &mut recipe)
        }
    };
    Generated {
        family,
        recipe,
        bytes,
    }
}

// ---------------------------------------------------------------- names

/// Which names a generator may produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// ASCII names the writer accepts in every layout.
    Ascii,
    /// UTF-8 names the writer accepts in the default layout.
    Utf8,
    /// Any bytes: also empty, `.`, `..`, `/`, NUL, and every shape of
    /// invalid UTF-8 (lone continuation bytes, truncated sequences,
    /// overlong forms, surrogates, code points past U+10FFFF, 0xf8..0xff).
    AnyBytes,
}

const ASCII_NAMES: &[&str] = &[
    "main.py",
    "boot.py",
    "lib",
    "a",
    "b",
    "ab",
    "abc",
    "m_mod.py",
    "m_x.py",
    "x.mpy",
    "data.bin",
    "__init__.py",
    "README",
    "~",
    " spaced name ",
    "-",
    "a~",
    "UPPER.TXT",
];

const UTF8_NAMES: &[&str] = &["é", "ß.py", "日本語", "😀", "naïve.txt", "Ω", "e\u{301}"];

/// Byte sequences on both sides of the UTF-8 validity line.
const ODD_BYTES: &[&[u8]] = &[
    b"\x80",
    b"\xff",
    b"\xc3",
    b"\xc0\xaf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xc3\xa9",
    b"/",
    b"\0",
    b".",
    b"..",
    b"",
];

fn name(rng: &mut Rng, names: Names) -> Vec<u8> {
    let pick = match names {
        Names::Ascii => rng.below(4),
        Names::Utf8 => rng.below(6),
        Names::AnyBytes => rng.below(10),
    };
    match pick {
        0 => ASCII_NAMES[rng.below(ASCII_NAMES.len() as u64) as usize]
            .as_bytes()
            .to_vec(),
        1 | 2 => {
            let len = 1 + rng.below(12) as usize;
            let chars = b"abcdefghijklmnopqrstuvwxyz0123456789_.-~";
            (0..len)
                .map(|_| chars[rng.below(chars.len() as u64) as usize])
                .collect()
        }
        3 => {
            // Long names: beyond any one-byte length varuint.
            let len = 100 + rng.below(300) as usize;
            (0..len).map(|k| b'a' + (k % 26) as u8).collect()
        }
        4 | 5 => UTF8_NAMES[rng.below(UTF8_NAMES.len() as u64) as usize]
            .as_bytes()
            .to_vec(),
        6 | 7 => {
            let mut n = name(rng, Names::Ascii);
            let odd = ODD_BYTES[rng.below(ODD_BYTES.len() as u64) as usize];
            let at = rng.below(n.len() as u64 + 1) as usize;
            n.splice(at..at, odd.iter().copied());
            n
        }
        8 => ODD_BYTES[rng.below(ODD_BYTES.len() as u64) as usize].to_vec(),
        _ => {
            let len = rng.below(8) as usize;
            rng.bytes(len)
        }
    }
}

/// A name for a new entry of a directory whose entries so far are
/// `siblings`: sometimes a sibling's name with a byte more or less (to catch
/// prefix matching), sometimes a sibling's own name (a duplicate) when
/// `duplicates` allows.
fn sibling_name(rng: &mut Rng, names: Names, siblings: &[Vec<u8>], duplicates: bool) -> Vec<u8> {
    if !siblings.is_empty() {
        let other = &siblings[rng.below(siblings.len() as u64) as usize];
        match rng.below(12) {
            0 if !other.is_empty() => return other[..other.len() - 1].to_vec(),
            1 => return [other.as_slice(), b"~"].concat(),
            2 if duplicates => return other.clone(),
            _ => {}
        }
    }
    name(rng, names)
}

// ---------------------------------------------------------------- contents

fn contents(rng: &mut Rng, name: &[u8]) -> Vec<u8> {
    if name.starts_with(b"m_") && name.ends_with(b".py") {
        // A module MicroPython can import: the oracle compares the import
        // with the file's contents.
        return format!("V = {}\n", rng.below(1000)).into_bytes();
    }
    let len = match rng.below(100) {
        0..=9 => 0,
        10..=39 => rng.below(20) as usize,
        40..=69 => rng.below(300) as usize,
        70..=89 => [127, 128, 255, 256, 1000, 4095, 4096, 4097][rng.below(8) as usize],
        90..=97 => 4096 + rng.below(60_000) as usize,
        98 => 65_536 + rng.below(300_000) as usize,
        _ => {
            if rng.below(4) == 0 {
                1_000_000 + rng.below(200_000) as usize
            } else {
                rng.below(100) as usize
            }
        }
    };
    match rng.below(3) {
        0 => rng.bytes(len),
        1 => vec![rng.below(256) as u8; len],
        _ => (0..len).map(|k| (k as u8).wrapping_mul(7)).collect(),
    }
}

// ---------------------------------------------------------------- valid

fn valid(rng: &mut Rng, recipe: &mut String) -> Vec<u8> {
    let mpremote = rng.below(4) == 0;
    let names = if mpremote || rng.below(2) == 0 {
        Names::Ascii
    } else {
        Names::Utf8
    };
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let mut budget = 1 + rng.below(40) as usize;
    let mut shared = Vec::new();
    valid_dir(rng, &mut tree, root, names, 0, &mut budget, &mut shared);
    if rng.below(30) == 0 {
        // Deep nesting, under a name no other generator makes.
        let mut d = tree.add_dir(root, b"Deep").unwrap();
        for _ in 0..(20 + rng.below(120)) {
            d = tree.add_dir(d, b"d").unwrap();
        }
        tree.add_file(d, b"deep.txt", b"deep".to_vec()).unwrap();
    }
    let opts = if mpremote {
        Options::mpremote()
    } else {
        let mut o = Options {
            layout: Layout::Default,
            align: 1 << [0, 1, 2, 2, 2, 3, 4, 6, 8, 12][rng.below(10) as usize],
            dedup: rng.below(4) != 0,
            checksum: rng.below(4) != 0,
            sort: rng.below(5) != 0,
            ..Options::default()
        };
        match rng.below(4) {
            0 => o.metadata = None,
            1 => {
                o.metadata = Some(MetadataSpec {
                    tool: Some("gen".into()),
                    label: Some("label é".into()),
                    generation: Some(rng.below(1 << 33)),
                    build_time: Some(rng.below(1 << 31)),
                    product: Some("board-x".into()),
                })
            }
            _ => {}
        }
        if rng.below(4) == 0 {
            o.header_write_size = Some(1 + rng.below(32) as u32);
        }
        if o.checksum && rng.below(6) == 0 {
            // A signature record after the checksum (left unsigned: what is
            // read here is its shape, not the signature).
            o.signature = Some(SignatureSpec {
                product: "board-x".into(),
                generation: rng.below(1000) as u32,
            });
        }
        o
    };
    let _ = write!(
        recipe,
        "valid {:?} align={} dedup={} checksum={} sort={} metadata={} header={:?} signature={}",
        opts.layout,
        opts.align,
        opts.dedup,
        opts.checksum,
        opts.sort,
        opts.metadata.is_some(),
        opts.header_write_size,
        opts.signature.is_some()
    );
    tree.build(&opts)
        .expect("the generator only makes trees the writer accepts")
}

fn valid_dir(
    rng: &mut Rng,
    tree: &mut MemoryTree,
    dir: NodeRef,
    names: Names,
    depth: usize,
    budget: &mut usize,
    shared: &mut Vec<Vec<u8>>,
) {
    let mut taken: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.below(10) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let n = sibling_name(rng, names, &taken, false);
        if taken.contains(&n)
            || romfs_format::name::check(&n, romfs_format::name::NameRules::MICROPYTHON).is_err()
        {
            continue;
        }
        taken.push(n.clone());
        if depth < 4 && rng.below(4) == 0 {
            let sub = tree.add_dir(dir, &n).unwrap();
            valid_dir(rng, tree, sub, names, depth + 1, budget, shared);
        } else {
            let data = if !shared.is_empty() && rng.below(6) == 0 {
                shared[rng.below(shared.len() as u64) as usize].clone()
            } else {
                let c = contents(rng, &n);
                if c.len() >= 16 && c.len() < 100_000 {
                    shared.push(c.clone());
                }
                c
            };
            let align = (rng.below(8) == 0).then(|| 1 << rng.below(13));
            tree.add_file_aligned(dir, &n, data, align).unwrap();
        }
    }
}

// ---------------------------------------------------------------- hand-shaped

/// A record of a hand-shaped image.
#[derive(Debug, Clone)]
enum Rec {
    Dir(Vec<u8>, Vec<Rec>),
    File(Vec<u8>, Vec<Rec>),
    Verbatim(Vec<u8>),
    /// Indirect data whose target is chosen once the payload is laid out.
    Indirect,
    Padding(Vec<u8>),
    Unknown(u64, Vec<u8>),
    /// Kind 0: readers stop scanning here.
    Unused,
}

/// Record kinds nobody defines, some of them awkward: MicroPython's own
/// image kind nested inside, and values past 32 bits (which a 32-bit
/// device truncates, 2^32 to kind 0).
const UNKNOWN_KINDS: &[u64] = &[
    6,
    7,
    63,
    64,
    127,
    128,
    1000,
    0x3fff,
    0x14a6b1,
    1 << 31,
    1 << 32,
];

fn hand_shaped(rng: &mut Rng, recipe: &mut String) -> Vec<u8> {
    let names = match rng.below(10) {
        0..=3 => Names::Ascii,
        4..=7 => Names::Utf8,
        _ => Names::AnyBytes,
    };
    let mut budget = 1 + rng.below(30) as usize;
    let mut root = hand_dir(rng, names, 0, &mut budget);
    if rng.below(25) == 0 {
        let mut deep = Rec::File(b"f".to_vec(), vec![Rec::Verbatim(b"deep".to_vec())]);
        for _ in 0..(20 + rng.below(200)) {
            deep = Rec::Dir(b"d".to_vec(), vec![deep]);
        }
        root.push(deep);
    }
    if rng.below(4) == 0 {
        // A metadata record first, as our writer places it.
        let mut md = b"RFSM".to_vec();
        md.extend_from_slice(&[1, 3, b'g', b'e', b'n', 3, 1, rng.below(128) as u8]);
        root.insert(0, Rec::Padding(md));
    }
    let checksum = rng.below(3) == 0;
    if checksum {
        root.push(Rec::Padding(b"RFSC\0\0\0\0".to_vec()));
    }
    let mut enc = Encoder {
        rng,
        out: Vec::new(),
        indirect: Vec::new(),
        data: Vec::new(),
    };
    for r in &root {
        enc.record(r);
    }
    let Encoder {
        rng,
        out: mut payload,
        indirect,
        data,
    } = enc;
    for at in &indirect {
        let (size, offset) = indirect_target(rng, payload.len() as u64, &data);
        varuint::encode_padded(size, 5, &mut payload[at + 2..at + 7]);
        varuint::encode_padded(offset, 5, &mut payload[at + 7..at + 12]);
    }
    let mut image = HEADER.to_vec();
    let mut len = [0u8; 16];
    let mut width = varuint::encoded_len(payload.len() as u64) + pad_width(rng);
    if (3 + width + payload.len()) % 2 == 1 && rng.below(10) != 0 {
        width += 1;
    }
    varuint::encode_padded(payload.len() as u64, width, &mut len);
    image.extend_from_slice(&len[..width]);
    image.extend_from_slice(&payload);
    if checksum {
        refresh_checksum(&mut image);
    }
    let _ = write!(
        recipe,
        "hand-shaped names={names:?} indirect={} checksum={checksum}",
        indirect.len()
    );
    image
}

fn hand_dir(rng: &mut Rng, names: Names, depth: usize, budget: &mut usize) -> Vec<Rec> {
    let mut body = Vec::new();
    let mut taken = Vec::new();
    for _ in 0..rng.below(8) {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        match rng.below(40) {
            0..=3 => body.push(other_record(rng)),
            4 => body.push(Rec::Unused),
            5..=12 if depth < 5 => {
                let n = sibling_name(rng, names, &taken, true);
                taken.push(n.clone());
                let sub = hand_dir(rng, names, depth + 1, budget);
                body.push(Rec::Dir(n, sub));
            }
            _ => {
                let n = sibling_name(rng, names, &taken, true);
                taken.push(n.clone());
                let file = hand_file(rng, &n);
                body.push(Rec::File(n, file));
            }
        }
    }
    body
}

fn hand_file(rng: &mut Rng, name: &[u8]) -> Vec<Rec> {
    let mut body = Vec::new();
    while rng.below(4) == 0 {
        body.push(other_record(rng));
    }
    match rng.below(100) {
        0..=1 => {}
        2..=26 => body.push(Rec::Indirect),
        _ => body.push(Rec::Verbatim(contents(rng, name))),
    }
    if rng.below(8) == 0 {
        body.push(match rng.below(4) {
            0 => Rec::Verbatim(b"second".to_vec()),
            1 => Rec::Indirect,
            2 => Rec::Unused,
            _ => other_record(rng),
        });
    }
    body
}

/// A padding (sometimes a fake extension) or unknown-kind record.
fn other_record(rng: &mut Rng) -> Rec {
    let len = rng.below(24) as usize;
    let mut payload = rng.bytes(len);
    if rng.below(2) == 0 {
        if rng.below(3) == 0 {
            payload.splice(0..0, b"RFS".iter().copied());
            payload.insert(3, [b'C', b'M', b'X'][rng.below(3) as usize]);
        }
        Rec::Padding(payload)
    } else {
        Rec::Unknown(
            UNKNOWN_KINDS[rng.below(UNKNOWN_KINDS.len() as u64) as usize],
            payload,
        )
    }
}

/// Where an indirect record points (size, offset from the payload start):
/// mostly at another file's data, sometimes anywhere, rarely past the end.
fn indirect_target(rng: &mut Rng, payload_len: u64, data: &[(usize, usize)]) -> (u64, u64) {
    match rng.below(40) {
        0..=23 if !data.is_empty() => {
            let (start, len) = data[rng.below(data.len() as u64) as usize];
            let size = if rng.below(3) == 0 {
                rng.below(len as u64 + 1)
            } else {
                len as u64
            };
            (size, start as u64)
        }
        0..=33 => {
            let offset = rng.below(payload_len + 1);
            (rng.below(payload_len - offset + 1), offset)
        }
        34..=36 => (0, rng.below(payload_len + 1)),
        _ => {
            // Out of range: past the payload by a little or a lot.
            let offset = rng.below(payload_len + 2);
            let spread = 1 << rng.below(33);
            let size = payload_len - offset.min(payload_len) + 1 + rng.below(spread);
            (size, offset)
        }
    }
}

/// Extra 0x80 bytes in front of a varuint (usually none).
fn pad_width(rng: &mut Rng) -> usize {
    if rng.below(12) == 0 {
        1 + rng.below(3) as usize
    } else {
        0
    }
}

struct Encoder<'r> {
    rng: &'r mut Rng,
    out: Vec<u8>,
    /// Offsets of indirect records (their kind byte) in `out`.
    indirect: Vec<usize>,
    /// Verbatim data in `out`: (offset, length).
    data: Vec<(usize, usize)>,
}

impl Encoder<'_> {
    fn varuint(&mut self, value: u64) {
        let width = varuint::encoded_len(value) + pad_width(self.rng);
        let mut buf = [0u8; 16];
        varuint::encode_padded(value, width, &mut buf);
        self.out.extend_from_slice(&buf[..width]);
    }

    fn record(&mut self, rec: &Rec) {
        match rec {
            Rec::Unused => {
                self.out.push(0);
                if self.rng.below(2) == 0 {
                    self.out.push(0);
                }
            }
            Rec::Indirect => {
                // Fixed widths, filled in once the payload is laid out.
                self.indirect.push(self.out.len());
                self.out.extend_from_slice(&[3, 10]);
                self.out.extend_from_slice(&[0; 10]);
            }
            Rec::Verbatim(bytes) => self.leaf(2, bytes, true),
            Rec::Padding(bytes) => self.leaf(1, bytes, false),
            Rec::Unknown(kind, bytes) => self.leaf(*kind, bytes, false),
            Rec::Dir(name, body) | Rec::File(name, body) => {
                let kind = if matches!(rec, Rec::Dir(..)) { 4 } else { 5 };
                // Lay the body out on its own, then move it in place.
                let outer = std::mem::take(&mut self.out);
                let (ind, dat) = (self.indirect.len(), self.data.len());
                self.varuint(name.len() as u64);
                self.out.extend_from_slice(name);
                for r in body {
                    self.record(r);
                }
                let inner = std::mem::replace(&mut self.out, outer);
                self.varuint(kind);
                self.varuint(inner.len() as u64);
                let base = self.out.len();
                for at in &mut self.indirect[ind..] {
                    *at += base;
                }
                for (at, _) in &mut self.data[dat..] {
                    *at += base;
                }
                self.out.extend_from_slice(&inner);
            }
        }
    }

    fn leaf(&mut self, kind: u64, bytes: &[u8], data: bool) {
        self.varuint(kind);
        self.varuint(bytes.len() as u64);
        if data {
            self.data.push((self.out.len(), bytes.len()));
        }
        self.out.extend_from_slice(bytes);
    }
}

// ---------------------------------------------------------------- structure

/// A record found by [`spans`]: where its parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the kind varuint.
    pub start: usize,
    /// The record kind (wrapped to 64 bits).
    pub kind: u64,
    /// Offset and width of the length varuint.
    pub len_at: usize,
    /// Width of the length varuint.
    pub len_width: usize,
    /// First payload byte.
    pub payload_start: usize,
    /// One past the last payload byte (may lie past the buffer).
    pub payload_end: usize,
    /// For directories and files: offset and width of the name length.
    pub name_len_at: Option<(usize, usize)>,
    /// Nesting depth: 0 for the image record itself.
    pub depth: usize,
}

fn lenient_varuint(buf: &[u8], pos: usize, end: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    let mut p = pos;
    loop {
        let b = *buf.get(p).filter(|_| p < end)?;
        p += 1;
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v, p));
        }
    }
}

/// Every record reachable the way MicroPython scans (the image record
/// first), as far as the bytes can be decoded: a record that runs past its
/// parent is listed but not entered, and a kind-0 record ends its parent's
/// scan. A helper for mutations and the minimiser; it decides nothing.
pub fn spans(buf: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    if buf.len() < 4 || buf[..3] != HEADER {
        return out;
    }
    let Some((len, p)) = lenient_varuint(buf, 3, buf.len()) else {
        return out;
    };
    let end = p.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    out.push(Span {
        start: 0,
        kind: romfs_format::record::kind::FILESYSTEM,
        len_at: 3,
        len_width: p - 3,
        payload_start: p,
        payload_end: end,
        name_len_at: None,
        depth: 0,
    });
    let mut stack = vec![(p, end.min(buf.len()), 1)];
    while let Some((mut pos, end, depth)) = stack.pop() {
        while pos < end {
            let Some((kind, p)) = lenient_varuint(buf, pos, end) else {
                break;
            };
            if kind == 0 {
                break;
            }
            let Some((len, q)) = lenient_varuint(buf, p, end) else {
                break;
            };
            let payload_end = q.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
            let mut span = Span {
                start: pos,
                kind,
                len_at: p,
                len_width: q - p,
                payload_start: q,
                payload_end,
                name_len_at: None,
                depth,
            };
            if payload_end <= end && (kind == 4 || kind == 5) {
                if let Some((name_len, r)) = lenient_varuint(buf, q, payload_end) {
                    span.name_len_at = Some((q, r - q));
                    let body = r.saturating_add(name_len as usize);
                    if body <= payload_end {
                        stack.push((body, payload_end, depth + 1));
                    }
                }
            }
            out.push(span);
            if payload_end > end {
                break;
            }
            pos = payload_end;
        }
    }
    out.sort_by_key(|s| (s.start, s.depth));
    out
}

/// A length varuint and the bytes it counts: a record's payload or a name.
struct LengthField {
    at: usize,
    width: usize,
    start: usize,
    end: usize,
}

fn length_fields(buf: &[u8]) -> Vec<LengthField> {
    let mut out = Vec::new();
    for s in spans(buf) {
        out.push(LengthField {
            at: s.len_at,
            width: s.len_width,
            start: s.payload_start,
            end: s.payload_end,
        });
        if let Some((at, width)) = s.name_len_at {
            if let Some((len, start)) = lenient_varuint(buf, at, at + width) {
                out.push(LengthField {
                    at,
                    width,
                    start,
                    end: start.saturating_add(len as usize),
                });
            }
        }
    }
    out
}

/// Replace `buf[at..at + remove]` by `insert`. With `fix_lengths`, every
/// record whose payload holds the edit (the image record included) and a
/// name that holds it has its length changed to match, keeping each length
/// varuint's width when it can.
pub fn edit(buf: &[u8], at: usize, remove: usize, insert: &[u8], fix_lengths: bool) -> Vec<u8> {
    let at = at.min(buf.len());
    let remove = remove.min(buf.len() - at);
    let mut fields: Vec<LengthField> = if fix_lengths {
        length_fields(buf)
            .into_iter()
            .filter(|f| f.start <= at && at + remove <= f.end.min(buf.len()))
            .filter(|f| f.at + f.width <= at)
            .collect()
    } else {
        Vec::new()
    };
    let mut out = buf.to_vec();
    out.splice(at..at + remove, insert.iter().copied());
    // Innermost first: their length varuints lie after the outer ones', so
    // rewriting them never moves an outer one.
    fields.sort_by_key(|f| std::cmp::Reverse(f.at));
    let mut delta = insert.len() as i64 - remove as i64;
    for f in fields {
        let old = f.end - f.start;
        let Ok(new) = u64::try_from(old as i64 + delta) else {
            continue;
        };
        let width = f.width.max(varuint::encoded_len(new));
        if width > 64 {
            continue;
        }
        let mut v = [0u8; 64];
        varuint::encode_padded(new, width, &mut v);
        out.splice(f.at..f.at + f.width, v[..width].iter().copied());
        delta += width as i64 - f.width as i64;
    }
    out
}

/// If `buf` holds an image with a checksum record (last, or before a
/// signature record), make the stored CRC match the image again. Returns
/// whether there was one.
pub fn refresh_checksum(buf: &mut [u8]) -> bool {
    let Ok(image) = Image::parse(buf) else {
        return false;
    };
    let Some((offset, _)) = image.checksum_record() else {
        return false;
    };
    let Some(end) = spans(buf)
        .iter()
        .find(|s| s.start == offset && s.depth == 1)
        .map(|s| s.payload_end)
    else {
        return false;
    };
    let crc = romfs_format::crc32::checksum(&buf[..end - 4]);
    buf[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    true
}

// ---------------------------------------------------------------- mutations

fn mutate(rng: &mut Rng, mut buf: Vec<u8>, recipe: &mut String) -> Vec<u8> {
    recipe.push_str(" then");
    for _ in 0..1 + rng.below(3) {
        if buf.is_empty() {
            break;
        }
        let spans = spans(&buf);
        let pos = rng.below(buf.len() as u64) as usize;
        // Positions inside the structure (not file data) matter most.
        let span = (!spans.is_empty()).then(|| spans[rng.below(spans.len() as u64) as usize]);
        match rng.below(30) {
            0..=2 => {
                let bit = rng.below(8);
                buf[pos] ^= 1 << bit;
                let _ = write!(recipe, " flip@{pos}.{bit}");
            }
            3..=4 => {
                let at = span
                    .map_or(pos, |s| s.start + rng.below(4) as usize)
                    .min(buf.len() - 1);
                let v = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x2f, 0x05, 0x04][rng.below(8) as usize];
                buf[at] = v;
                let _ = write!(recipe, " set@{at}={v:#x}");
            }
            5..=8 => {
                let Some(s) = span else { continue };
                let of_name = rng.below(3) == 0;
                let (at, width) = match s.name_len_at {
                    Some(field) if of_name => field,
                    _ => (s.len_at, s.len_width),
                };
                let Some((old, _)) = lenient_varuint(&buf, at, at + width) else {
                    continue;
                };
                let new = match rng.below(5) {
                    0 => old.wrapping_add(1 + rng.below(8)),
                    1 => old.saturating_sub(1 + rng.below(8)),
                    2 => 0,
                    3 => rng.below(1 << (7 * width.min(9))),
                    _ => old ^ (1 << rng.below(7 * width.min(9) as u64)),
                };
                if varuint::encoded_len(new) > width {
                    continue;
                }
                varuint::encode_padded(new, width, &mut buf[at..at + width]);
                let _ = write!(recipe, " len@{at}:{old}->{new}");
            }
            9..=11 => {
                // Splice: copy a record elsewhere, with or without fixing lengths.
                let (Some(s), Some(t)) = (
                    span,
                    (!spans.is_empty()).then(|| spans[rng.below(spans.len() as u64) as usize]),
                ) else {
                    continue;
                };
                if s.depth == 0 || s.payload_end > buf.len() {
                    continue;
                }
                let rec = buf[s.start..s.payload_end].to_vec();
                let to = if t.depth == 0 {
                    t.payload_start
                } else {
                    t.start
                };
                let fix = rng.below(3) != 0;
                buf = edit(&buf, to, 0, &rec, fix);
                let _ = write!(recipe, " copy@{}->{to} fix={fix}", s.start);
            }
            12..=13 => {
                let Some(s) = span.filter(|s| s.depth > 0 && s.payload_end <= buf.len()) else {
                    continue;
                };
                let fix = rng.below(3) != 0;
                buf = edit(&buf, s.start, s.payload_end - s.start, &[], fix);
                let _ = write!(recipe, " delete-record@{} fix={fix}", s.start);
            }
            14..=15 => {
                let n = 1 + rng.below(4) as usize;
                let bytes = rng.bytes(n);
                let fix = rng.below(2) == 0;
                buf = edit(&buf, pos, 0, &bytes, fix);
                let _ = write!(recipe, " insert@{pos}+{n} fix={fix}");
            }
            16..=17 => {
                let n = 1 + rng.below(4) as usize;
                let fix = rng.below(2) == 0;
                buf = edit(&buf, pos, n, &[], fix);
                let _ = write!(recipe, " remove@{pos}-{n} fix={fix}");
            }
            18 => {
                // A torn write: the rest reads as erased (or zeroed) flash.
                let fill = if rng.below(3) == 0 { 0x00 } else { 0xff };
                buf[pos..].fill(fill);
                let _ = write!(recipe, " torn@{pos}={fill:#x}");
            }
            19 => {
                buf.truncate(pos);
                let _ = write!(recipe, " cut@{pos}");
            }
            20..=21 => {
                // Shorten the declared image length, keeping its width.
                let Some(img) = spans.first() else { continue };
                let old = (img.payload_end - img.payload_start) as u64;
                let new = rng.below(old + 1);
                varuint::encode_padded(new, img.len_width, &mut buf[3..3 + img.len_width]);
                let _ = write!(recipe, " image-len:{old}->{new}");
            }
            24..=26 => {
                // Rename: overwrite a name's bytes, keeping its length.
                let Some(s) = span.filter(|s| s.payload_end <= buf.len()) else {
                    continue;
                };
                let Some((at, width)) = s.name_len_at else {
                    continue;
                };
                let Some((len, start)) = lenient_varuint(&buf, at, at + width) else {
                    continue;
                };
                let end = start.saturating_add(len as usize).min(s.payload_end);
                if start >= end {
                    continue;
                }
                let k = start + rng.below((end - start) as u64) as usize;
                let v = b"a~./\0\xff"[rng.below(6) as usize];
                buf[k] = if rng.below(2) == 0 { v } else { buf[k] ^ 0x20 };
                let _ = write!(recipe, " rename@{k}");
            }
            27..=28 => {
                // Grow or shrink a file's data, keeping every length right:
                // indirect records that pointed past it now point elsewhere.
                let Some(s) = span.filter(|s| s.kind == 2 && s.payload_end <= buf.len()) else {
                    continue;
                };
                let len = s.payload_end - s.payload_start;
                buf = if len > 0 && rng.below(2) == 0 {
                    let n = 1 + rng.below(len as u64) as usize;
                    edit(&buf, s.payload_start, n, &[], true)
                } else {
                    let n = 1 + rng.below(64) as usize;
                    let bytes = rng.bytes(n);
                    edit(&buf, s.payload_start, 0, &bytes, true)
                };
                let _ = write!(recipe, " resize-data@{}", s.start);
            }
            _ => {
                // Swap two records of one directory.
                let Some(s) = span.filter(|s| s.depth > 0 && s.payload_end <= buf.len()) else {
                    continue;
                };
                let Some(t) = spans
                    .iter()
                    .find(|t| {
                        t.start == s.payload_end && t.depth == s.depth && t.payload_end <= buf.len()
                    })
                    .copied()
                else {
                    continue;
                };
                let a = buf[s.start..s.payload_end].to_vec();
                let b = buf[t.start..t.payload_end].to_vec();
                buf.splice(s.start..t.payload_end, b.into_iter().chain(a));
                let _ = write!(recipe, " swap@{}", s.start);
            }
        }
    }
    if rng.below(10) < 8 && refresh_checksum(&mut buf) {
        recipe.push_str(" crc-refreshed");
    }
    if rng.below(8) == 0 {
        // As in a flash partition: erased bytes after the image.
        let n = rng.below(200) as usize;
        buf.extend(std::iter::repeat_n(0xff, n));
    }
    buf
}

// ---------------------------------------------------------------- minimiser

/// Shrink `buf` while `still_fails` holds, calling it at most `budget`
/// times: drop the bytes after the declared image, remove whole records,
/// shorten names and file data, then delete ever smaller runs of bytes
/// (with the enclosing lengths fixed, then without), bringing a checksum
/// record up to date after each edit when the input's was valid.
pub fn minimise(buf: &[u8], budget: usize, mut still_fails: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let keep_crc = Image::parse(buf)
        .map(|i| matches!(i.checksum(), romfs_format::Checksum::Valid(_)))
        .unwrap_or(false);
    let calls = std::cell::Cell::new(0);
    let mut best = buf.to_vec();
    let mut try_candidate = |best: &mut Vec<u8>, mut c: Vec<u8>| -> bool {
        if calls.get() >= budget || c == *best {
            return false;
        }
        if keep_crc {
            refresh_checksum(&mut c);
        }
        calls.set(calls.get() + 1);
        if still_fails(&c) {
            *best = c;
            true
        } else {
            false
        }
    };
    if let Ok(image) = Image::parse(&best) {
        let end = image.len();
        if end < best.len() {
            let cut = best[..end].to_vec();
            try_candidate(&mut best, cut);
        }
    }
    loop {
        let before = best.len();
        // Whole records, larger ones first; the list is made again after
        // every success, so the same position is tried again.
        let mut k = 0;
        loop {
            let mut records: Vec<Span> = spans(&best)
                .into_iter()
                .filter(|s| s.depth > 0 && s.payload_end <= best.len())
                .collect();
            records.sort_by_key(|s| std::cmp::Reverse(s.payload_end - s.start));
            let Some(s) = records.get(k) else { break };
            let (at, n) = (s.start, s.payload_end - s.start);
            let fixed = edit(&best, at, n, &[], true);
            if try_candidate(&mut best, fixed) {
                continue;
            }
            let unfixed = edit(&best, at, n, &[], false);
            if !try_candidate(&mut best, unfixed) {
                k += 1;
            }
        }
        // Names and the payloads of leaf records down to nothing, one byte
        // (the first or the last) or half.
        let mut k = 0;
        loop {
            let leaves: Vec<LengthField> = length_fields(&best)
                .into_iter()
                .filter(|f| f.end <= best.len() && f.end > f.start)
                .filter(|f| {
                    !spans(&best)
                        .iter()
                        .any(|s| s.len_at == f.at && matches!(s.kind, 4 | 5 | 0x14a6b1))
                })
                .collect();
            let Some(f) = leaves.get(k) else { break };
            let len = f.end - f.start;
            let cuts = [
                (f.start, len),
                (f.start + 1, len - 1),
                (f.start, len - 1),
                (f.start + len / 2, len - len / 2),
                (f.start, len / 2),
            ];
            let mut shrunk = false;
            for (at, n) in cuts {
                let c = edit(&best, at, n, &[], true);
                if n > 0 && try_candidate(&mut best, c) {
                    shrunk = true;
                    break;
                }
            }
            if !shrunk {
                k += 1;
            }
        }
        // Runs of bytes.
        let mut chunk = (best.len() / 2).max(1);
        loop {
            let mut at = 4;
            while at < best.len() {
                let c = edit(&best, at, chunk, &[], true);
                if try_candidate(&mut best, c) {
                    continue;
                }
                let c = edit(&best, at, chunk, &[], false);
                if try_candidate(&mut best, c) {
                    continue;
                }
                at += chunk;
            }
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
        if best.len() == before || calls.get() >= budget {
            break;
        }
    }
    best
}

/// The tree of `files` (`/`-separated path -> contents), its directories
/// made as the paths need them; `align` gives a file's alignment by path.
pub fn tree_of_paths<P: AsRef<str>, D: AsRef<[u8]>>(
    files: impl IntoIterator<Item = (P, D)>,
    align: impl Fn(&str) -> Option<u32>,
) -> MemoryTree {
    let mut tree = MemoryTree::new();
    let mut dirs: std::collections::BTreeMap<String, NodeRef> = Default::default();
    for (path, data) in files {
        let (path, data) = (path.as_ref(), data.as_ref());
        let mut parent = tree.root();
        let parts: Vec<&str> = path.split('/').collect();
        let mut so_far = String::new();
        for part in &parts[..parts.len() - 1] {
            so_far.push_str(part);
            so_far.push('/');
            parent = match dirs.get(&so_far) {
                Some(&d) => d,
                None => {
                    let d = tree.add_dir(parent, part.as_bytes()).unwrap();
                    dirs.insert(so_far.clone(), d);
                    d
                }
            };
        }
        let name = parts[parts.len() - 1];
        tree.add_file_aligned(parent, name.as_bytes(), data.to_vec(), align(path))
            .unwrap();
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_image() {
        for seed in 0..200 {
            assert_eq!(generate(seed).bytes, generate(seed).bytes);
        }
    }

    #[test]
    fn every_family_appears_and_valid_images_verify() {
        let mut seen = std::collections::BTreeMap::new();
        for seed in 0..3000 {
            let g = generate(seed);
            *seen.entry(g.family).or_insert(0) += 1;
            if g.family == Family::Valid {
                let image = Image::parse(&g.bytes).unwrap();
                // The writer accepts names the format allows; only the
                // UTF-8 rule can be broken, and valid names here are UTF-8.
                assert!(image.verify(|f| panic!("{}: {f}", g.recipe)).is_clean());
            }
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn many_hand_shaped_images_parse_and_most_verify() {
        let (mut parsed, mut clean, mut total) = (0, 0, 0);
        for seed in 0..2000 {
            let g = generate(seed);
            if g.family != Family::HandShaped {
                continue;
            }
            total += 1;
            if let Ok(image) = Image::parse(&g.bytes) {
                parsed += 1;
                clean += image.verify(|_| {}).is_clean() as usize;
            }
        }
        assert_eq!(parsed, total, "hand-shaped images always parse");
        assert!(clean * 3 > total, "{clean} of {total} verify clean");
    }

    #[test]
    fn edit_fixes_enclosing_lengths() {
        // d2 cd 31 | dir "d" { file "f" data "ab" }
        let img = [
            0xd2, 0xcd, 0x31, 0x0c, 4, 0x0a, 1, b'd', 5, 6, 1, b'f', 2, 2, b'a', b'b',
        ];
        let grown = edit(&img, 14, 0, b"xy", true);
        let image = Image::parse(&grown).unwrap();
        assert!(image.verify(|f| panic!("{f}")).is_clean());
        let file = image.lookup(b"d/f").unwrap().unwrap().as_file().unwrap();
        assert_eq!(file.data(), b"xyab");
        let shrunk = edit(&img, 8, 8, &[], true);
        let image = Image::parse(&shrunk).unwrap();
        assert_eq!(image.len(), 8);
        assert!(image.lookup(b"d").unwrap().unwrap().is_dir());
    }

    #[test]
    fn the_minimiser_keeps_what_fails() {
        let g = (0..)
            .map(generate)
            .find(|g| g.family == Family::Valid && g.bytes.len() > 200)
            .unwrap();
        // "Fails" while some directory or file record remains.
        let has_entry = |b: &[u8]| spans(b).iter().any(|s| s.kind == 4 || s.kind == 5);
        assert!(has_entry(&g.bytes));
        let small = minimise(&g.bytes, 5000, has_entry);
        assert!(has_entry(&small));
        assert!(small.len() < 16, "{} bytes: {small:02x?}", small.len());
    }
}
