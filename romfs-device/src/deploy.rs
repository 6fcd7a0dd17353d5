//! Deploying an image to a ROM partition: survey what the board holds,
//! plan (see [`crate::plan`]: only the blocks that differ are written, in
//! an order that makes an interruption harmless), execute the plan through
//! the board's write layer, and check each part on the board.
//!
//! A board interrupted anywhere mounts its old image (before the first
//! write), no image, or the complete new one.

use std::time::{Duration, Instant};

use romfs_format::mpy::MpyHeader;
use romfs_format::{Image, Node};

use crate::board::{Board, EraseMode, Partition, CHUNK};
use crate::delta::OldPieces;
use crate::error::{ErrorKind, Holds, ImageProblem, Result};
use crate::plan::{block_contents, pieces, Plan, Step, Survey, Write};
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

/// Check that `image` is a ROMFS image that fits `part` and whose `.mpy`
/// files this board can load; returns the image's own bytes (without
/// anything after its declared end).
pub fn check_image<'a, T: Transport>(
    board: &Board<T>,
    image: &'a [u8],
    part: &Partition,
) -> Result<&'a [u8]> {
    let bad = |why: ImageProblem| board.error(ErrorKind::BadImage(why));
    let parsed = Image::parse(image).map_err(|e| bad(ImageProblem::Format(e)))?;
    if let romfs_format::Checksum::Mismatch { stored, computed } = parsed.checksum() {
        return Err(bad(ImageProblem::ChecksumMismatch { stored, computed }));
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
                let node = entry.map_err(|e| bad(ImageProblem::Format(e)))?;
                let name = String::from_utf8_lossy(node.name());
                let full = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}/{name}")
                };
                match node {
                    Node::Dir(d) => stack.push((full, d)),
                    Node::File(f) if full.ends_with(".mpy") => {
                        let checked = MpyHeader::parse(f.data()).and_then(|header| {
                            header.check(Some(target.arch), Some(target.small_int_bits))
                        });
                        if let Err(error) = checked {
                            return Err(bad(ImageProblem::Mpy { path: full, error }));
                        }
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
    let mut holds = Holds::OldImage;
    run(board, image, part_id, progress, previous, &mut holds).map_err(|mut e| {
        // A stop between two programs: say what the partition holds now.
        if let ErrorKind::Interrupted {
            holds: h @ None, ..
        } = &mut e.kind
        {
            *h = Some((part_id, holds));
        }
        e
    })
}

/// [`deploy_with`], keeping `holds` up to date as the plan is carried out.
fn run<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part_id: u32,
    progress: &dyn DeployProgress,
    previous: &[&[u8]],
    holds: &mut Holds,
) -> Result<DeployReport> {
    let started = Instant::now();
    let traffic0 = board.traffic();
    let part = board.partition(part_id)?;
    let image = check_image(board, image, &part)?;
    if part.mode == EraseMode::ReadOnly {
        return Err(board.error(ErrorKind::ReadOnly {
            id: part.id,
            code: -22,
        }));
    }
    let kind = board.hash_kind();
    let blocks = (image.len() as u64).div_ceil(part.block_size).max(1);
    let hashes = board.block_hashes(&part, 0, blocks)?;
    let survey = Survey::new(image, &part, &hashes, kind);
    let mut report = DeployReport {
        partition: part,
        image_len: image.len() as u64,
        blocks,
        erased: Vec::new(),
        written: Vec::new(),
        skipped: blocks,
        assembled: 0,
        write_size: Some(part.program_unit),
        bytes_sent: 0,
        bytes_received: 0,
        elapsed: Duration::ZERO,
        warnings: Vec::new(),
    };
    if !survey.changed.is_empty() {
        let old = old_pieces(board, image, &part, &survey, &hashes, previous)?;
        let plan = Plan::new(image, &part, &survey, old.as_ref());
        report.skipped = plan.skipped;
        let w = part.header_unit();
        if w > 3 && !romfs_format::header_is_write_safe(image, w as usize) {
            report.warnings.push(format!(
                "the image header is not safe for {w}-byte flash writes: a power cut during the last write could leave a header MicroPython misreads; build it with --flash-write-size {w} (romfs deploy DIR does)"
            ));
        }
        progress.start(plan.written().len() as u64);
        execute(board, image, &part, &plan, &mut report, progress, holds)?;
    }
    let traffic = board.traffic();
    report.bytes_sent = traffic.sent - traffic0.sent;
    report.bytes_received = traffic.received - traffic0.received;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Carry out `plan` on the board, checking every block it writes.
fn execute<T: Transport>(
    board: &mut Board<T>,
    image: &[u8],
    part: &Partition,
    plan: &Plan,
    report: &mut DeployReport,
    progress: &dyn DeployProgress,
    holds: &mut Holds,
) -> Result<()> {
    let kind = board.hash_kind();
    let header_unit = part.header_unit() as usize;
    // Block 0 as it must read until the header unit is written.
    let mut block0 = block_contents(image, part, 0);
    block0[..header_unit].fill(0xff);
    let mut header_written = false;
    board.unmount_rom()?;
    if plan.steps.iter().any(|s| {
        matches!(s, Step::Write { write: Write::Assemble { recipe, .. }, .. }
            if recipe.ops.iter().any(|op| matches!(op, crate::board::DeltaOp::Saved { .. })))
    }) {
        board.save_block0(part)?;
    }
    for step in &plan.steps {
        match step {
            Step::Invalidate { erase } => {
                let done = if *erase > 0 {
                    board.erase(part, 0, *erase).map(|_| ())
                } else {
                    board.invalidate(part)
                };
                if let Err(e) = done {
                    // The first write failing: a firmware that cannot write
                    // the partition.
                    return Err(match e.kind {
                        ErrorKind::Ioctl { code, .. } => {
                            board.error(ErrorKind::ReadOnly { id: part.id, code })
                        }
                        _ => e,
                    });
                }
                *holds = Holds::NoImage;
                report.erased.extend(0..(*erase).div_ceil(part.block_size));
            }
            Step::Write {
                block,
                erase,
                write,
            } => {
                let range = part.block_range(*block);
                let want = if *block == 0 {
                    block0.clone()
                } else {
                    block_contents(image, part, *block)
                };
                let from = if *block == 0 && part.program_unit as usize <= header_unit {
                    header_unit
                } else {
                    0
                };
                let erase_range = erase.then_some((range.start, range.end - range.start));
                match write {
                    Write::Send(p) => send(board, part, erase_range, p)?,
                    Write::Assemble {
                        offset,
                        len,
                        recipe,
                    } => {
                        board.build_and_write(
                            part,
                            *offset,
                            erase_range.map(|(_, n)| n),
                            *len,
                            &recipe.literal,
                            &recipe.ops,
                        )?;
                        report.assembled += 1;
                        if !block_holds(board, part, *block, &want, kind)? {
                            // Signatures can collide: send the bytes instead.
                            let again = (part.mode == EraseMode::Block)
                                .then_some((range.start, range.end - range.start));
                            send(board, part, again, &pieces(range.start, &want, from, part))?;
                            if again.is_some() && !*erase {
                                report.erased.push(*block);
                            }
                        }
                    }
                }
                if *erase {
                    report.erased.push(*block);
                }
                if *block != 0 {
                    report.written.push(*block);
                    progress.block_done();
                }
            }
            Step::Verify { blocks } => {
                let pending0 = (!header_written).then_some(&block0[..]);
                verify(board, part, image, blocks, pending0, kind)?;
            }
            Step::Header(bytes) => {
                board.erase_and_write(part, None, &[(0, bytes)])?;
                *holds = Holds::NewImage;
                header_written = true;
                report.written.push(0);
                progress.block_done();
            }
        }
    }
    Ok(())
}

/// Program `pieces`, the erase (offset, length) going with the first (one
/// exchange with the board).
fn send<T: Transport>(
    board: &mut Board<T>,
    part: &Partition,
    erase: Option<(u64, u64)>,
    pieces: &[(u64, Vec<u8>)],
) -> Result<()> {
    if pieces.is_empty() {
        if let Some((offset, len)) = erase {
            board.erase(part, offset, len)?;
        }
        return Ok(());
    }
    for (i, (offset, data)) in pieces.iter().enumerate() {
        board.erase_and_write(part, if i == 0 { erase } else { None }, &[(*offset, data)])?;
    }
    Ok(())
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
    survey: &Survey,
    hashes: &[Vec<u8>],
    previous: &[&[u8]],
) -> Result<Option<OldPieces>> {
    // Copies need old blocks that stay put until read (not on a
    // prefix-erase port) and fit what the board assembles at once.
    if part.block_size as usize > CHUNK
        || part.mode == EraseMode::Prefix
        || survey.blank.first() == Some(&true)
    {
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
    let old_blocks = declared.image_len().div_ceil(part.block_size).max(1);
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
                let got = match k.checked_sub(covered) {
                    None => hashes.get(k as usize),
                    Some(past) => beyond.get(past as usize),
                };
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
    let changed: std::collections::BTreeSet<u64> = survey.changed.iter().copied().collect();
    let mut ask = Vec::new();
    for k in 0..old_blocks.max(survey.blank.len() as u64) {
        let covered = (k as usize) < survey.blank.len();
        if covered && !changed.contains(&k) {
            pieces.add_known(part, k, &block_contents(image, part, k));
        } else if covered && survey.blank[k as usize] {
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

/// Hash `blocks` on the board and compare with the image; block 0 with
/// `pending0` when given (its header unit not yet written).
fn verify<T: Transport>(
    board: &mut Board<T>,
    part: &Partition,
    image: &[u8],
    blocks: &[u64],
    pending0: Option<&[u8]>,
    kind: HashKind,
) -> Result<()> {
    // Consecutive blocks are hashed in one request.
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i + 1;
        while j < blocks.len() && blocks[j] == blocks[j - 1] + 1 {
            j += 1;
        }
        let got = board.block_hashes(part, blocks[i], (j - i) as u64)?;
        for (k, hash) in blocks[i..j].iter().zip(got) {
            let want = match pending0 {
                Some(b0) if *k == 0 => b0.to_vec(),
                _ => block_contents(image, part, *k),
            };
            if hash != kind.hash(&want) {
                return Err(board.error(ErrorKind::Verify {
                    block: *k,
                    offset: k * part.block_size,
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

    #[test]
    fn sample_image_spans_three_blocks() {
        let image = sample_image();
        assert!(image.len() > 2 * 4096 && image.len() < 3 * 4096);
        assert!(romfs_format::header_is_write_safe(&image, 32));
    }
}
