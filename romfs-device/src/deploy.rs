//! Deploying an image to a ROM partition: only the erase blocks that
//! differ are erased and written, and the order makes an interruption
//! harmless.
//!
//! The order (the single-slot update of `FORMAT.md` section 5, driven from
//! the host):
//! 1. The board hashes every erase block the image covers; blocks whose hash
//!    matches the new contents (padded with 0xFF) are skipped.
//! 2. If anything differs, `/rom` is unmounted and erase block 0 (the one
//!    holding the image header) is erased first: from then on the board
//!    mounts nothing until the very last write.
//! 3. Every other differing block is erased (unless already blank) and
//!    written, then hashed on the board and compared.
//! 4. Block 0 is written except its first write unit (the header's magic),
//!    hashed and compared; then the first write unit is written and block 0
//!    is hashed once more.
//!
//! A board interrupted anywhere mounts its old image (before step 2), no
//! image, or the complete new one. Runs of 0xFF at the end of a piece are
//! not sent: erased flash already holds them.

use std::time::{Duration, Instant};

use romfs_format::mpy::MpyHeader;
use romfs_format::{Image, Node};

use crate::board::{Board, Partition, CHUNK};
use crate::delta::{self, Availability, OldPieces};
use crate::error::{ErrorKind, Result};
use crate::reply::HashKind;
use crate::transport::Transport;

/// What to report while deploying.
pub trait DeployProgress {
    /// Writing begins: `blocks` erase blocks will be written.
    fn start(&self, _blocks: u64) {}
    /// One more block written.
    fn block_done(&self) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl DeployProgress for NoProgress {}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    /// The partition written.
    pub partition: Partition,
    /// Image length in bytes.
    pub image_len: u64,
    /// Erase blocks the image covers.
    pub blocks: u64,
    /// Blocks erased, in the order they were.
    pub erased: Vec<u64>,
    /// Blocks written, in the order they were (block 0 last).
    pub written: Vec<u64>,
    /// Blocks left as they were (they already held the new contents).
    pub skipped: u64,
    /// Blocks the board assembled from what it already held (see
    /// [`crate::delta`]) instead of receiving them.
    pub assembled: u64,
    /// The minimum write size the board reported (when it erased).
    pub write_size: Option<u64>,
    /// Bytes sent to the board, everything included.
    pub bytes_sent: u64,
    /// Bytes received from the board.
    pub bytes_received: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Things the user should know.
    pub warnings: Vec<String>,
}

impl DeployReport {
    /// True when the board already held the image: nothing was written.
    pub fn up_to_date(&self) -> bool {
        self.written.is_empty()
    }
}

/// Which blocks to rewrite, from the board's hashes of the blocks the new
/// image covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Blocks whose contents differ, ascending.
    pub changed: Vec<u64>,
    /// Per block: the board reports it erased (all 0xFF).
    pub blank: Vec<bool>,
}

impl Plan {
    /// Compare the board's `hashes` (one per block from 0) with the blocks
    /// of `image` padded with 0xFF.
    pub fn new(image: &[u8], part: &Partition, hashes: &[Vec<u8>], kind: HashKind) -> Plan {
        let mut changed = Vec::new();
        let mut blank = Vec::new();
        for (k, hash) in hashes.iter().enumerate() {
            let k = k as u64;
            let want = block_contents(image, part, k);
            if &kind.hash(&want) != hash {
                changed.push(k);
            }
            blank.push(*hash == kind.hash(&vec![0xff; want.len()]));
        }
        Plan { changed, blank }
    }
}

/// What erase block `k` must hold: its part of the image, then 0xFF.
pub fn block_contents(image: &[u8], part: &Partition, k: u64) -> Vec<u8> {
    let range = part.block_range(k);
    let mut block = vec![0xff; (range.end - range.start) as usize];
    let start = (range.start as usize).min(image.len());
    let end = (range.end as usize).min(image.len());
    block[..end - start].copy_from_slice(&image[start..end]);
    block
}

/// Check that `image` is a ROMFS image that fits `part` and whose `.mpy`
/// files this board can load; returns the image's own bytes (without
/// anything after its declared end).
pub fn check_image<'a, T: Transport>(
    board: &Board<T>,
    image: &'a [u8],
    part: &Partition,
) -> Result<&'a [u8]> {
    let bad = |why: String| board.error(ErrorKind::BadImage(why));
    let parsed = Image::parse(image).map_err(|e| bad(format!("not a ROMFS image: {e}")))?;
    if let romfs_format::Checksum::Mismatch { stored, computed } = parsed.checksum() {
        return Err(bad(format!(
            "the image is corrupt: its CRC-32 is {stored:#010x} but its contents give {computed:#010x}"
        )));
    }
    if parsed.len() as u64 > part.size {
        return Err(board.error(ErrorKind::TooLarge {
            image: parsed.len() as u64,
            partition: part.size,
        }));
    }
    if let Some(target) = board.mpy_target() {
        let mut stack = vec![(String::new(), parsed.root())];
        while let Some((path, dir)) = stack.pop() {
            for entry in dir.entries() {
                let node = entry.map_err(|e| bad(format!("the image is corrupt: {e}")))?;
                let name = String::from_utf8_lossy(node.name());
                let full = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}/{name}")
                };
                match node {
                    Node::Dir(d) => stack.push((full, d)),
                    Node::File(f) if full.ends_with(".mpy") => {
                        let header = MpyHeader::parse(f.data())
                            .map_err(|e| bad(format!("{full} in the image: {e}")))?;
                        header
                            .check(Some(target.arch), Some(target.small_int_bits))
                            .map_err(|e| {
                                bad(format!("{full} in the image cannot run on this board: {e}"))
                            })?;
                    }
                    Node::File(_) => {}
                }
            }
        }
    }
    Ok(parsed.bytes())
}

/// Deploy `image` to partition `part_id` of `board` (see the module
/// documentation for the order). Does not reset the board.
pub fn deploy<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part_id: u32,
    progress: &dyn DeployProgress,
) -> Result<DeployReport> {
    deploy_with(board, image, part_id, progress, &[])
}

/// [`deploy`], given images the board may hold now (e.g. the ones this
/// host deployed last): when one of them is what the board holds, its
/// bytes serve as the source of moved data, so the board need not describe
/// its blocks.
pub fn deploy_with<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part_id: u32,
    progress: &dyn DeployProgress,
    previous: &[&[u8]],
) -> Result<DeployReport> {
    let started = Instant::now();
    let traffic0 = board.traffic();
    let part = board.partition(part_id)?;
    let image = check_image(board, image, &part)?;
    let kind = board.hash_kind();
    let blocks = (image.len() as u64).div_ceil(part.erase_size).max(1);
    let hashes = board.block_hashes(&part, 0, blocks)?;
    let plan = Plan::new(image, &part, &hashes, kind);
    let mut report = DeployReport {
        partition: part,
        image_len: image.len() as u64,
        blocks,
        erased: Vec::new(),
        written: Vec::new(),
        skipped: blocks - plan.changed.len() as u64,
        assembled: 0,
        write_size: None,
        bytes_sent: 0,
        bytes_received: 0,
        elapsed: Duration::ZERO,
        warnings: Vec::new(),
    };
    if !plan.changed.is_empty() {
        // Block 0 is rewritten whenever anything changes: erasing it first
        // is what keeps an interrupted deploy from mounting a mix.
        report.skipped = blocks - plan.changed.len() as u64 - u64::from(plan.changed[0] != 0);
        progress.start(plan.changed.len() as u64 + u64::from(plan.changed[0] != 0));
        let old = old_pieces(board, image, &part, &plan, &hashes, previous)?;
        write_all(board, image, &part, &plan, old, &mut report, progress)?;
    }
    let traffic = board.traffic();
    report.bytes_sent = traffic.sent - traffic0.sent;
    report.bytes_received = traffic.received - traffic0.received;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn write_all<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part: &Partition,
    plan: &Plan,
    old: Option<OldPieces>,
    report: &mut DeployReport,
    progress: &dyn DeployProgress,
) -> Result<()> {
    let kind = board.hash_kind();
    board.unmount_rom()?;
    if old.is_some() {
        board.save_block0(part)?;
    }

    // 1. Invalidate: erase block 0 (also tells the write size).
    let block0 = part.block_range(0);
    let w = match board.erase_and_write(part, Some((0, block0.end)), &[]) {
        Ok(w) => w.unwrap_or(1),
        // The first erase failing: a firmware that cannot write the
        // partition (upstream's read-only ports answer -EINVAL).
        Err(e) => match e.kind {
            ErrorKind::Ioctl { code, .. } => {
                return Err(board.error(ErrorKind::ReadOnly { id: part.id, code }))
            }
            _ => return Err(e),
        },
    };
    report.erased.push(0);
    report.write_size = Some(w);
    if w > 3 && !romfs_format::header_is_write_safe(image, w as usize) {
        report.warnings.push(format!(
            "the image header is not safe for {w}-byte flash writes: a power cut during the last write could leave a header MicroPython misreads; build it with --flash-write-size {w} (romfs deploy DIR does)"
        ));
    }

    // 2. Every other changed block, then verified.
    let changed: Vec<u64> = plan.changed.iter().copied().filter(|&k| k != 0).collect();
    let steps: Vec<(u64, Option<delta::Recipe>)> = match &old {
        Some(old) => delta::order(&changed, &mut |k, gone| {
            let block = block_contents(image, part, k);
            delta::recipe(trimmed(&block, w), old, part, &|b| availability(b, gone))
        })
        .into_iter()
        .map(|(k, r)| (k, Some(r)))
        .collect(),
        None => changed.iter().map(|&k| (k, None)).collect(),
    };
    for (k, recipe) in steps {
        let range = part.block_range(k);
        let erase = (!plan.blank[k as usize]).then_some(range.end - range.start);
        let want = block_contents(image, part, k);
        let used = trimmed(&want, w).len();
        let by_recipe = match recipe {
            Some(r) if cheaper(&r, &want[..used]) => {
                board.build_and_write(part, range.start, erase, used, &r.literal, &r.ops)?;
                report.assembled += 1;
                true
            }
            _ => {
                write_block(
                    board,
                    part,
                    range.start,
                    &want,
                    0,
                    erase.map(|n| (range.start, n)),
                    w,
                )?;
                false
            }
        };
        if erase.is_some() {
            report.erased.push(k);
        }
        report.written.push(k);
        if by_recipe && !block_holds(board, part, k, &want, kind)? {
            // Signatures can collide: send this block's bytes instead.
            write_block(
                board,
                part,
                range.start,
                &want,
                0,
                Some((range.start, range.end - range.start)),
                w,
            )?;
            report.erased.push(k);
        }
        progress.block_done();
    }
    verify(board, part, image, changed.iter().copied(), kind)?;

    // 3. Block 0 without its header unit, verified; then the header unit.
    let header_unit = 3u64.div_ceil(w) * w;
    let mut want0 = block_contents(image, part, 0);
    let header: Vec<u8> = want0[..header_unit as usize].to_vec();
    want0[..header_unit as usize].fill(0xff);
    let tail = trimmed(&want0, w)
        .get(header_unit as usize..)
        .unwrap_or_default()
        .to_vec();
    let recipe0 = old.as_ref().map(|old| {
        let gone: std::collections::BTreeSet<u64> = changed.iter().copied().collect();
        delta::recipe(&tail, old, part, &|b| availability(b, &gone))
    });
    match recipe0 {
        Some(r) if !tail.is_empty() && cheaper(&r, &tail) => {
            board.build_and_write(part, header_unit, None, tail.len(), &r.literal, &r.ops)?;
            report.assembled += 1;
            if !block_holds(board, part, 0, &want0, kind)? {
                board.erase_and_write(part, Some((0, block0.end)), &[])?;
                write_block(board, part, 0, &want0, header_unit as usize, None, w)?;
            }
        }
        _ => write_block(board, part, 0, &want0, header_unit as usize, None, w)?,
    }
    if !block_holds(board, part, 0, &want0, kind)? {
        return Err(board.error(ErrorKind::Verify {
            block: 0,
            offset: 0,
        }));
    }
    board.erase_and_write(part, None, &[(0, &header)])?;
    verify(board, part, image, [0].into_iter(), kind)?;
    report.written.push(0);
    progress.block_done();
    Ok(())
}

/// Where old block `b` can be copied from once the blocks in `gone` are
/// overwritten: block 0 from its saved copy (it is erased first).
fn availability(b: u64, gone: &std::collections::BTreeSet<u64>) -> Availability {
    if b == 0 {
        Availability::Saved
    } else if gone.contains(&b) {
        Availability::Gone
    } else {
        Availability::Flash
    }
}

/// `block` without its trailing 0xFF, rounded up to the write size.
fn trimmed(block: &[u8], w: u64) -> &[u8] {
    let used = block.iter().rposition(|&b| b != 0xff).map_or(0, |i| i + 1);
    &block[..(used.div_ceil(w as usize) * w as usize).min(block.len())]
}

/// Is assembling by `recipe` cheaper on the link than sending `want`?
fn cheaper(recipe: &delta::Recipe, want: &[u8]) -> bool {
    let ops_text = recipe.ops.len() * 12;
    deflated_len(&recipe.literal) + ops_text < deflated_len(want)
}

fn deflated_len(data: &[u8]) -> usize {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = enc.write_all(data);
    enc.finish().map_or(data.len(), |v| v.len().min(data.len()))
}

/// Does block `k` hold `want` (hashed on the board)?
fn block_holds<T: Transport>(
    board: &mut Board<T>,
    part: &Partition,
    k: u64,
    want: &[u8],
    kind: HashKind,
) -> Result<bool> {
    Ok(board.block_hashes(part, k, 1)?[0] == kind.hash(want))
}

/// What the board's old blocks hold, when it holds an image whose blocks
/// can serve as sources; `None` otherwise (no old image, or erase blocks
/// larger than what the board inflates at once).
fn old_pieces<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part: &Partition,
    plan: &Plan,
    hashes: &[Vec<u8>],
    previous: &[&[u8]],
) -> Result<Option<OldPieces>> {
    if part.erase_size as usize > CHUNK || plan.blank.first() == Some(&true) {
        return Ok(None);
    }
    let head_len = romfs_format::MAX_HEADER_LEN.min(part.size as usize);
    let head = board.read(part, 0, head_len)?;
    let Ok(declared) = romfs_format::decode_header(&mut &head[..]) else {
        return Ok(None);
    };
    if declared.image_len() > part.size {
        return Ok(None);
    }
    let old_blocks = declared.image_len().div_ceil(part.erase_size).max(1);
    let kind = board.hash_kind();
    let mut pieces = OldPieces::new(kind);
    // One of the images the caller offers, if the board holds exactly it.
    let candidates: Vec<&[u8]> = previous
        .iter()
        .copied()
        .filter(|p| p.len() as u64 == declared.image_len())
        .collect();
    if !candidates.is_empty() {
        let covered = (hashes.len() as u64).min(old_blocks);
        let beyond = if old_blocks > covered {
            board.block_hashes(part, covered, old_blocks - covered)?
        } else {
            Vec::new()
        };
        let held = |p: &[u8]| {
            (0..old_blocks).all(|k| {
                let want = kind.hash(&block_contents(p, part, k));
                let got = hashes
                    .get(k as usize)
                    .or(beyond.get((k - covered) as usize));
                got == Some(&want)
            })
        };
        if let Some(p) = candidates.into_iter().find(|p| held(p)) {
            for k in 0..old_blocks {
                pieces.add_known(part, k, &block_contents(p, part, k));
            }
            return Ok(Some(pieces));
        }
    }
    let changed: std::collections::BTreeSet<u64> = plan.changed.iter().copied().collect();
    let mut ask = Vec::new();
    for k in 0..old_blocks.max(plan.blank.len() as u64) {
        let covered = (k as usize) < plan.blank.len();
        if covered && !changed.contains(&k) {
            pieces.add_known(part, k, &block_contents(image, part, k));
        } else if covered && plan.blank[k as usize] {
            continue;
        } else if k < old_blocks {
            ask.push(k);
        }
    }
    // Signatures for the runs of blocks to ask about.
    let mut i = 0;
    while i < ask.len() {
        let mut j = i + 1;
        while j < ask.len() && ask[j] == ask[j - 1] + 1 {
            j += 1;
        }
        let sigs = board.sub_block_signatures(part, ask[i], (j - i) as u64)?;
        for (k, s) in ask[i..j].iter().zip(sigs) {
            pieces.add_signed(part, *k, &s);
        }
        i = j;
    }
    Ok(Some(pieces))
}

/// Program `want` (a whole erase block at `base`) from byte `from` on,
/// after erasing `erase` if given: in pieces of at most [`CHUNK`] bytes,
/// each without its trailing 0xFF (rounded to the write size `w`).
fn write_block<T: Transport>(
    board: &mut Board<T>,
    part: &Partition,
    base: u64,
    want: &[u8],
    from: usize,
    erase: Option<(u64, u64)>,
    w: u64,
) -> Result<()> {
    let mut pieces: Vec<(u64, &[u8])> = Vec::new();
    let mut start = from;
    while start < want.len() {
        // Pieces end on CHUNK boundaries so they stay aligned.
        let end = ((start / CHUNK + 1) * CHUNK).min(want.len());
        let piece = &want[start..end];
        let used = piece.iter().rposition(|&b| b != 0xff).map_or(0, |i| i + 1);
        let used = (used.div_ceil(w as usize) * w as usize).min(piece.len());
        if used > 0 {
            pieces.push((base + start as u64, &piece[..used]));
        }
        start = end;
    }
    // One program per piece, the erase going with the first.
    if pieces.is_empty() {
        if erase.is_some() {
            board.erase_and_write(part, erase, &[])?;
        }
        return Ok(());
    }
    for (i, piece) in pieces.iter().enumerate() {
        board.erase_and_write(part, if i == 0 { erase } else { None }, &[*piece])?;
    }
    Ok(())
}

/// Hash `blocks` on the board and compare with the image.
fn verify<T: Transport>(
    board: &mut Board<T>,
    part: &Partition,
    image: &[u8],
    blocks: impl Iterator<Item = u64>,
    kind: HashKind,
) -> Result<()> {
    // Consecutive blocks are hashed in one request.
    let blocks: Vec<u64> = blocks.collect();
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i + 1;
        while j < blocks.len() && blocks[j] == blocks[j - 1] + 1 {
            j += 1;
        }
        let got = board.block_hashes(part, blocks[i], (j - i) as u64)?;
        for (k, hash) in blocks[i..j].iter().zip(got) {
            if hash != kind.hash(&block_contents(image, part, *k)) {
                return Err(board.error(ErrorKind::Verify {
                    block: *k,
                    offset: k * part.erase_size,
                }));
            }
        }
        i = j;
    }
    Ok(())
}

/// A small image spanning three erase blocks of 4 KiB, always the same:
/// the image the fuzzing seeds (transcripts recorded from the emulated
/// board) were recorded with.
#[doc(hidden)]
pub fn sample_image() -> Vec<u8> {
    use romfs_format::write::{MemoryTree, Options};
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let mut x: u32 = 1;
    let noise: Vec<u8> = (0..6000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    let lib = tree.add_dir(root, b"lib").expect("valid name");
    tree.add_file(root, b"data.bin", noise).expect("valid name");
    tree.add_file(root, b"main.py", b"print('hello')\n".repeat(20))
        .expect("valid name");
    tree.add_file(lib, b"x.py", b"X = 1\n".repeat(400))
        .expect("valid name");
    let options = Options {
        header_write_size: Some(32),
        ..Options::default()
    };
    tree.build(&options).expect("a valid tree")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part() -> Partition {
        Partition {
            id: 0,
            size: 4 * 4096,
            erase_size: 4096,
            block_device: false,
        }
    }

    #[test]
    fn sample_image_spans_three_blocks() {
        let image = sample_image();
        assert!(image.len() > 2 * 4096 && image.len() < 3 * 4096);
        assert!(romfs_format::header_is_write_safe(&image, 32));
    }

    #[test]
    fn blocks_are_padded_with_ff() {
        let image = vec![7u8; 5000];
        let b1 = block_contents(&image, &part(), 1);
        assert_eq!(b1.len(), 4096);
        assert!(b1[..904].iter().all(|&b| b == 7));
        assert!(b1[904..].iter().all(|&b| b == 0xff));
        assert!(block_contents(&image, &part(), 3)
            .iter()
            .all(|&b| b == 0xff));
    }

    #[test]
    fn plan_finds_changed_and_blank_blocks() {
        let kind = HashKind::Sha256;
        let new = vec![1u8; 3 * 4096];
        let p = part();
        let hashes = vec![
            kind.hash(&block_contents(&new, &p, 0)),
            kind.hash(&[0xff; 4096]),
            kind.hash(&[0u8; 4096]),
        ];
        let plan = Plan::new(&new, &p, &hashes, kind);
        assert_eq!(plan.changed, vec![1, 2]);
        assert_eq!(plan.blank, vec![false, true, false]);
    }
}
