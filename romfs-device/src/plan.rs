//! The write plan of a deploy: which blocks to skip, erase, send or
//! assemble on the board from what it already holds, and in what order.
//! It is decided on the host from the partition's geometry (what the
//! board's write layer derived for its port), the board's block hashes and
//! what the board's old blocks hold; it is a value tests can inspect and
//! run against a model of any port's flash, without a board.
//!
//! The order makes an interruption harmless (the single-slot update of
//! FORMAT.md section 5):
//! 1. [`Step::Invalidate`]: block 0 is erased (or, where nothing is erased,
//!    its header unit overwritten) first; from then on the board mounts
//!    nothing until the last step. On a prefix-erase port the one erase
//!    that covers every changed block is this step.
//! 2. Every other changed block is erased (unless it reads erased and the
//!    flash tolerates writing it as it is) and written, then all of them
//!    are hashed on the board and compared.
//! 3. Block 0 is written except its header unit, and checked.
//! 4. [`Step::Header`]: the header unit is written, and block 0 checked.

use std::collections::BTreeSet;

use crate::board::{EraseMode, Partition, CHUNK};
use crate::delta::{self, Availability, OldPieces, Recipe};
use crate::reply::HashKind;

/// How one block's bytes reach the flash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Send these pieces: (partition offset, bytes), each at most
    /// [`CHUNK`] bytes, aligned to the program unit and a whole number of
    /// units (the board pads the last one with 0xFF).
    Send(Vec<(u64, Vec<u8>)>),
    /// Assemble `len` bytes at `offset` on the board from what it holds
    /// (see [`crate::delta`]); checked at once, and sent instead when the
    /// board's bytes were not what the signatures promised.
    Assemble {
        /// Partition offset.
        offset: u64,
        /// Bytes assembled.
        len: usize,
        /// How.
        recipe: Recipe,
    },
}

/// One step of a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make the partition mount nothing: erase `[0, erase)` (block 0, or
    /// on a prefix-erase port every block up to the last changed one), or
    /// with `erase == 0` overwrite the header unit with 0xFF.
    Invalidate {
        /// Bytes erased from the partition start (0: overwritten instead).
        erase: u64,
    },
    /// Write block `block` (block 0: all but its header unit).
    Write {
        /// Block number.
        block: u64,
        /// Erase the block first (after assembling: a block may copy from
        /// itself).
        erase: bool,
        /// How.
        write: Write,
    },
    /// Hash these blocks on the board and compare with the image (block 0
    /// with its header unit still 0xFF until [`Step::Header`]).
    Verify {
        /// Block numbers, ascending.
        blocks: Vec<u64>,
    },
    /// Write the partition's first program unit, whose header unit was
    /// left erased until now: the last write.
    Header(Vec<u8>),
}

/// What the board reported of the blocks the new image covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Blocks whose contents differ, ascending.
    pub changed: Vec<u64>,
    /// Per block: it reads erased (all 0xFF).
    pub blank: Vec<bool>,
}

impl Survey {
    /// Compare the board's `hashes` (one per block from 0) with the blocks
    /// of `image` padded with 0xFF.
    pub fn new(image: &[u8], part: &Partition, hashes: &[Vec<u8>], kind: HashKind) -> Survey {
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
        Survey { changed, blank }
    }
}

/// A deploy's steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// In order.
    pub steps: Vec<Step>,
    /// Blocks the image covers.
    pub blocks: u64,
    /// Blocks left as they are.
    pub skipped: u64,
}

impl Plan {
    /// Plan writing `image` over what `survey` found; `old` describes the
    /// old blocks the board can copy from (see [`crate::delta`]), when it
    /// can.
    pub fn new(image: &[u8], part: &Partition, survey: &Survey, old: Option<&OldPieces>) -> Plan {
        let blocks = (image.len() as u64).div_ceil(part.block_size).max(1);
        if survey.changed.is_empty() {
            return Plan {
                steps: Vec::new(),
                blocks,
                skipped: blocks,
            };
        }
        let mut steps = Vec::new();
        let header_unit = part.header_unit() as usize;
        let erases = part.mode.erases();
        // Where the flash tolerates programming a unit that reads 0xFF
        // without an erase: not on ECC flash words (stm32 H7), where a
        // unit once programmed, even with 0xFF, must be erased first.
        let trust_blank = erases && part.program_unit < 16;
        let others: Vec<u64> = survey.changed.iter().copied().filter(|&k| k != 0).collect();

        // 1. Invalidate.
        let prefix = match part.mode {
            EraseMode::Prefix => {
                let last = survey.changed.last().copied().unwrap_or(0);
                (last + 1) * part.block_size
            }
            EraseMode::Block => part.block_range(0).end,
            _ => 0,
        };
        steps.push(Step::Invalidate { erase: prefix });

        // 2. The other blocks. On a prefix port every block below the
        // prefix is now erased and must be written (there is nothing left
        // to copy from there).
        let rewrite: Vec<u64> = if part.mode == EraseMode::Prefix {
            (1..prefix / part.block_size).collect()
        } else {
            others.clone()
        };
        let recipes: Vec<(u64, Option<Recipe>)> = match old {
            Some(old) if part.mode != EraseMode::Prefix => {
                delta::order(&rewrite, &mut |k, gone| {
                    let block = block_contents(image, part, k);
                    delta::recipe(used(&block, part), old, part, &|b| availability(b, gone))
                })
                .into_iter()
                .map(|(k, r)| (k, Some(r)))
                .collect()
            }
            _ => rewrite.iter().map(|&k| (k, None)).collect(),
        };
        for (k, recipe) in recipes {
            let range = part.block_range(k);
            let want = block_contents(image, part, k);
            let needs_erase = part.mode == EraseMode::Block
                && !(trust_blank && survey.blank.get(k as usize) == Some(&true));
            let data = used(&want, part);
            let write = match recipe {
                Some(r) if !data.is_empty() && cheaper(&r, data) => Write::Assemble {
                    offset: range.start,
                    len: data.len(),
                    recipe: r,
                },
                _ => Write::Send(pieces(range.start, &want, 0, part)),
            };
            if needs_erase || !matches!(&write, Write::Send(p) if p.is_empty()) {
                steps.push(Step::Write {
                    block: k,
                    erase: needs_erase,
                    write,
                });
            }
        }
        if !rewrite.is_empty() {
            steps.push(Step::Verify { blocks: rewrite });
        }

        // 3. Block 0 without its header unit (from the partition start
        // where a program unit is larger than the header unit).
        let mut want0 = block_contents(image, part, 0);
        let header = want0[..part.header_program() as usize].to_vec();
        want0[..header_unit].fill(0xff);
        let from = if part.program_unit as usize > header_unit {
            0
        } else {
            header_unit
        };
        let tail = used(&want0, part).get(from..).unwrap_or_default();
        let recipe0 = old.filter(|_| part.mode != EraseMode::Prefix).map(|old| {
            let gone: BTreeSet<u64> = others.iter().copied().collect();
            delta::recipe(tail, old, part, &|b| availability(b, &gone))
        });
        let write0 = match recipe0 {
            Some(r) if !tail.is_empty() && cheaper(&r, tail) => Write::Assemble {
                offset: from as u64,
                len: tail.len(),
                recipe: r,
            },
            _ => Write::Send(pieces(0, &want0, from, part)),
        };
        if !matches!(&write0, Write::Send(p) if p.is_empty()) {
            steps.push(Step::Write {
                block: 0,
                erase: false,
                write: write0,
            });
        }
        steps.push(Step::Verify { blocks: vec![0] });

        // 4. The header unit, last.
        steps.push(Step::Header(header));
        steps.push(Step::Verify { blocks: vec![0] });

        let skipped = blocks - survey.changed.len() as u64 - u64::from(survey.changed[0] != 0);
        let skipped = if part.mode == EraseMode::Prefix {
            blocks.saturating_sub(prefix / part.block_size)
        } else {
            skipped
        };
        Plan {
            steps,
            blocks,
            skipped,
        }
    }

    /// Blocks written (block 0 last), in order.
    pub fn written(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Write { block, .. } if *block != 0 => Some(*block),
                _ => None,
            })
            .collect();
        if !self.steps.is_empty() {
            out.push(0);
        }
        out
    }
}

/// What block `k` must hold: its part of the image, then 0xFF.
pub fn block_contents(image: &[u8], part: &Partition, k: u64) -> Vec<u8> {
    let range = part.block_range(k);
    let mut block = vec![0xff; (range.end - range.start) as usize];
    let start = (range.start as usize).min(image.len());
    let end = (range.end as usize).min(image.len());
    block[..end - start].copy_from_slice(&image[start..end]);
    block
}

/// The part of `block` that must be programmed: where erased flash reads
/// 0xFF, without its trailing 0xFF (rounded up to the program unit);
/// elsewhere all of it.
pub fn used<'a>(block: &'a [u8], part: &Partition) -> &'a [u8] {
    if !part.mode.erases() {
        return block;
    }
    let w = part.program_unit as usize;
    let n = block.iter().rposition(|&b| b != 0xff).map_or(0, |i| i + 1);
    &block[..(n.div_ceil(w) * w).min(block.len())]
}

/// The pieces that program `want` (a whole block at `base`) from byte
/// `from` on: at most [`CHUNK`] bytes each, ending on [`CHUNK`] boundaries
/// so they stay aligned; where erased flash reads 0xFF, each without its
/// trailing 0xFF and pieces of nothing but 0xFF left out.
pub fn pieces(base: u64, want: &[u8], from: usize, part: &Partition) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < want.len() {
        let end = ((start / CHUNK + 1) * CHUNK).min(want.len());
        let piece = used(&want[start..end], part);
        if !piece.is_empty() {
            out.push((base + start as u64, piece.to_vec()));
        }
        start = end;
    }
    out
}

/// Where old block `b` can be copied from once the blocks in `gone` are
/// overwritten: block 0 from its copy in the board's RAM (it is erased
/// first).
fn availability(b: u64, gone: &BTreeSet<u64>) -> Availability {
    if b == 0 {
        Availability::Saved
    } else if gone.contains(&b) {
        Availability::Gone
    } else {
        Availability::Flash
    }
}

/// Is assembling by `recipe` cheaper on the link than sending `want`?
fn cheaper(recipe: &Recipe, want: &[u8]) -> bool {
    let ops_text = recipe.ops.len() * 12;
    deflated_len(&recipe.literal) + ops_text < deflated_len(want)
}

fn deflated_len(data: &[u8]) -> usize {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = enc.write_all(data);
    enc.finish().map_or(data.len(), |v| v.len().min(data.len()))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Plans run against a model of each port's flash rules (FORMAT.md,
    //! "Writing a ROM partition"): every erase and program must be one the
    //! port's flash accepts, no unit is programmed twice between erases,
    //! nothing is written outside the partition, and after every step the
    //! partition mounts the old image, nothing, or the new image.
    use super::*;
    use romfs_format::write::{MemoryTree, Options};

    /// A flash that enforces a port's rules.
    struct Flash {
        part: Partition,
        bytes: Vec<u8>,
        /// Programs of each unit since it was erased.
        programs: Vec<u8>,
        saved0: Vec<u8>,
    }

    impl Flash {
        fn new(part: Partition, contents: &[u8], fill: u8) -> Flash {
            let mut bytes = vec![fill; part.size as usize];
            bytes[..contents.len()].copy_from_slice(contents);
            let units = (part.size / part.program_unit) as usize;
            // A partition that holds data counts as programmed.
            let programs = (0..units)
                .map(|u| {
                    let w = part.program_unit as usize;
                    u8::from(bytes[u * w..(u + 1) * w].iter().any(|&b| b != 0xff))
                })
                .collect();
            Flash {
                part,
                bytes,
                programs,
                saved0: Vec::new(),
            }
        }

        fn erase(&mut self, off: u64, n: u64) {
            let p = self.part;
            match p.mode {
                EraseMode::Block => assert!(
                    off.is_multiple_of(p.erase_unit) && n.is_multiple_of(p.erase_unit) && n > 0,
                    "erase {off:#x}+{n:#x} not in whole {:#x} units",
                    p.erase_unit
                ),
                EraseMode::Prefix => {
                    assert!(off == 0 && n.is_multiple_of(p.erase_unit), "prefix erase")
                }
                m => panic!("{m:?} flash erased"),
            }
            assert!(off + n <= p.size, "erase past the partition");
            self.bytes[off as usize..(off + n) as usize].fill(0xff);
            let w = p.program_unit;
            for u in off / w..(off + n) / w {
                self.programs[u as usize] = 0;
            }
        }

        fn program(&mut self, off: u64, data: &[u8]) {
            let w = self.part.program_unit as usize;
            assert!(
                off.is_multiple_of(w as u64),
                "program at {off:#x} not aligned to {w}"
            );
            let mut data = data.to_vec();
            data.resize(data.len().div_ceil(w) * w, 0xff);
            let end = off as usize + data.len();
            assert!(end as u64 <= self.part.size, "program past the partition");
            for (i, &b) in data.iter().enumerate() {
                let at = off as usize + i;
                if self.part.mode.erases() {
                    assert_eq!(
                        self.bytes[at] & b,
                        b,
                        "byte {at:#x} programmed over unerased data"
                    );
                    self.bytes[at] &= b;
                } else {
                    self.bytes[at] = b;
                }
            }
            for u in off as usize / w..end / w {
                self.programs[u] += 1;
                // NOR pages (rp2, mimxrt) take a second program that
                // changes only erased bytes; other flash one per erase.
                let most = if w > 32 { 2 } else { 1 };
                if self.part.mode.erases() {
                    assert!(self.programs[u] <= most, "unit {u} programmed too often");
                }
            }
        }

        fn assemble(&self, recipe: &Recipe) -> Vec<u8> {
            recipe.apply(&self.bytes, &self.saved0)
        }

        /// What MicroPython would mount.
        fn mounts<'a>(&self, old: &'a [u8], new: &'a [u8]) -> &'static str {
            if self.bytes[..3] != [0xd2, 0xcd, 0x31] {
                return "nothing";
            }
            if self.bytes.starts_with(new) {
                "new"
            } else if self.bytes.starts_with(old) {
                "old"
            } else {
                "a mix"
            }
        }

        fn run(&mut self, plan: &Plan, image: &[u8], old: &[u8]) {
            let part = self.part;
            self.saved0 = self.bytes[..part.block_size as usize].to_vec();
            let header_unit = part.header_unit() as usize;
            for step in &plan.steps {
                match step {
                    Step::Invalidate { erase } => {
                        if *erase > 0 {
                            self.erase(0, *erase)
                        } else {
                            self.program(0, &vec![0xff; header_unit.max(4)])
                        }
                    }
                    Step::Write {
                        block,
                        erase,
                        write,
                    } => {
                        let range = part.block_range(*block);
                        let assembled = match write {
                            Write::Assemble { recipe, len, .. } => {
                                let a = self.assemble(recipe);
                                assert_eq!(a.len(), *len);
                                Some(a)
                            }
                            Write::Send(_) => None,
                        };
                        if *erase {
                            self.erase(range.start, range.end - range.start);
                        }
                        match (write, assembled) {
                            (Write::Send(pieces), _) => {
                                for (off, data) in pieces {
                                    assert!(data.len() <= CHUNK);
                                    self.program(*off, data);
                                }
                            }
                            (Write::Assemble { offset, .. }, Some(a)) => self.program(*offset, &a),
                            _ => unreachable!(),
                        }
                    }
                    Step::Verify { .. } => {}
                    Step::Header(h) => {
                        assert_eq!(h.len() as u64, part.header_program());
                        self.program(0, h)
                    }
                }
                let m = self.mounts(old, image);
                assert!(m != "a mix", "after {step:?} the board would mount a mix");
            }
            assert_eq!(&self.bytes[..image.len()], image, "the new image");
        }
    }

    fn geometry(mode: EraseMode, block: u64, prog: u64) -> Partition {
        Partition {
            id: 0,
            size: 64 * block.max(4096),
            block_size: block,
            block_device: false,
            program_unit: prog,
            erase_unit: if mode.erases() { block } else { 0 },
            mode,
        }
    }

    /// Every port family's geometry (the models of ../shared/device and the
    /// ports without one).
    fn ports() -> Vec<(&'static str, Partition)> {
        vec![
            ("stm32 qspi", geometry(EraseMode::Block, 4096, 4)),
            ("rp2", geometry(EraseMode::Block, 4096, 256)),
            ("esp32", geometry(EraseMode::Block, 4096, 1)),
            ("nrf", geometry(EraseMode::Block, 4096, 4)),
            ("stm32 internal", geometry(EraseMode::Block, 128 << 10, 32)),
            ("esp8266", geometry(EraseMode::Prefix, 4096, 4)),
            ("alif mram", geometry(EraseMode::None, 4096, 16)),
            ("samd", geometry(EraseMode::Rewrite, 4096, 4)),
        ]
    }

    /// `n` bytes that do not repeat (a small LCG): file contents for the
    /// plan and delta tests.
    pub(crate) fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect()
    }

    fn image(files: &[(&str, Vec<u8>)], write_size: u64) -> Vec<u8> {
        let mut tree = MemoryTree::new();
        let root = tree.root();
        for (name, data) in files {
            tree.add_file(root, name.as_bytes(), data.clone()).unwrap();
        }
        let options = Options {
            header_write_size: Some(write_size.max(4) as u32),
            ..Options::default()
        };
        tree.build(&options).unwrap()
    }

    fn old_pieces(part: &Partition, old: &[u8]) -> OldPieces {
        let mut pieces = OldPieces::new(HashKind::Sha256);
        let blocks = (old.len() as u64).div_ceil(part.block_size);
        for k in 0..blocks {
            pieces.add_known(part, k, &block_contents(old, part, k));
        }
        pieces
    }

    fn deploy(part: &Partition, flash: &mut Flash, old: &[u8], new: &[u8], copies: bool) -> Plan {
        let kind = HashKind::Sha256;
        let blocks = (new.len() as u64).div_ceil(part.block_size).max(1);
        let hashes: Vec<Vec<u8>> = (0..blocks)
            .map(|k| {
                let r = part.block_range(k);
                kind.hash(&flash.bytes[r.start as usize..r.end as usize])
            })
            .collect();
        let survey = Survey::new(new, part, &hashes, kind);
        let pieces =
            (copies && part.block_size as usize <= CHUNK && part.mode != EraseMode::Prefix)
                .then(|| old_pieces(part, old));
        let plan = Plan::new(new, part, &survey, pieces.as_ref());
        flash.run(&plan, new, old);
        plan
    }

    #[test]
    fn every_port_deploys_redeploys_and_is_never_a_mix() {
        for (name, part) in ports() {
            let w = part.header_unit();
            let files = |grow: usize, edit: u8| {
                let mut a = noise(9000, 1);
                a[100] = edit;
                vec![
                    ("a.bin", a),
                    ("b.py", b"print('b')\n".repeat(300 + grow)),
                    ("c.bin", noise(7000, 3)),
                ]
            };
            let v1 = image(&files(0, 0), w);
            let v2 = image(&files(0, 1), w);
            let v3 = image(&files(40, 1), w);
            for fill in [0xff, 0x00] {
                if fill == 0 && part.mode.erases() {
                    // Erasing flash starts erased; only MRAM and samd may
                    // hold anything.
                    continue;
                }
                let mut flash = Flash::new(part, &[], fill);
                let first = deploy(&part, &mut flash, &[], &v1, false);
                assert!(!first.steps.is_empty(), "{name}");
                for (old, new) in [(&v1, &v2), (&v2, &v3), (&v3, &v1)] {
                    for copies in [false, true] {
                        let mut f = Flash::new(part, old, fill);
                        deploy(&part, &mut f, old, new, copies);
                    }
                }
                // Unchanged: nothing to do.
                let again = deploy(&part, &mut flash, &v1, &v1, true);
                assert!(again.steps.is_empty(), "{name}: {:?}", again.steps);
                assert_eq!(again.skipped, again.blocks);
            }
        }
    }

    #[test]
    fn a_one_byte_edit_rewrites_its_block_and_block_0_only() {
        for (name, part) in ports() {
            let w = part.header_unit();
            let mut a = noise(40_000, 5);
            let v1 = image(&[("a.bin", a.clone())], w);
            a[30_000] ^= 1;
            let v2 = image(&[("a.bin", a)], w);
            let mut flash = Flash::new(part, &v1, 0xff);
            let plan = deploy(&part, &mut flash, &v1, &v2, true);
            let written = plan.written();
            match part.mode {
                // The prefix erase takes every block up to the last change
                // (the checksum's, at the end).
                EraseMode::Prefix => {
                    assert_eq!(written.len() as u64, (v2.len() as u64 - 1) / 4096 + 1)
                }
                // Block 0, the edited block and the checksum's.
                _ => {
                    let edited = 30_000 / part.block_size;
                    let last = (v2.len() as u64 - 1) / part.block_size;
                    let mut want = vec![edited, last, 0];
                    want.dedup();
                    want.retain(|&k| k != 0);
                    want.dedup();
                    want.push(0);
                    assert_eq!(written, want, "{name}");
                }
            }
        }
    }

    #[test]
    fn blank_blocks_are_programmed_without_an_erase_except_on_ecc_flash() {
        let v1 = image(&[("a.bin", noise(20_000, 9))], 32);
        for (name, part) in ports() {
            if part.mode != EraseMode::Block {
                continue;
            }
            let mut flash = Flash::new(part, &[], 0xff);
            let plan = deploy(&part, &mut flash, &[], &v1, false);
            let erases = plan
                .steps
                .iter()
                .filter(|s| matches!(s, Step::Write { erase: true, .. }))
                .count();
            if part.program_unit >= 16 {
                assert_eq!(erases as u64, plan.blocks - 1, "{name}");
            } else {
                assert_eq!(erases, 0, "{name}");
            }
        }
    }

    #[test]
    fn blocks_are_padded_with_ff() {
        let part = geometry(EraseMode::Block, 4096, 4);
        let image = vec![7u8; 5000];
        let b1 = block_contents(&image, &part, 1);
        assert_eq!(b1.len(), 4096);
        assert!(b1[..904].iter().all(|&b| b == 7));
        assert!(b1[904..].iter().all(|&b| b == 0xff));
        assert!(block_contents(&image, &part, 3).iter().all(|&b| b == 0xff));
    }

    #[test]
    fn survey_finds_changed_and_blank_blocks() {
        let kind = HashKind::Sha256;
        let new = vec![1u8; 3 * 4096];
        let p = geometry(EraseMode::Block, 4096, 4);
        let hashes = vec![
            kind.hash(&block_contents(&new, &p, 0)),
            kind.hash(&[0xff; 4096]),
            kind.hash(&[0u8; 4096]),
        ];
        let survey = Survey::new(&new, &p, &hashes, kind);
        assert_eq!(survey.changed, vec![1, 2]);
        assert_eq!(survey.blank, vec![false, true, false]);
    }
}
