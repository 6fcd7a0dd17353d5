//! Delta transfer: a changed erase block is usually the old contents moved
//! (a file that grew or shrank shifts everything after it). The board signs
//! the [`SUB_BLOCK`]-byte pieces of the blocks it holds; pieces of the new
//! block that match are copied on the board from where they are, and only
//! the rest is sent.
//!
//! A block's sources must still be intact when it is assembled: blocks are
//! written in an order where no block is overwritten before the blocks that
//! copy from it (a cycle is broken by sending a block's bytes instead), and
//! block 0, erased first, is copied into the board's RAM beforehand.

use std::collections::{BTreeSet, HashMap};

use crate::board::{DeltaOp, Partition, SIGNATURE, SUB_BLOCK};
use crate::reply::HashKind;

/// What the board's old blocks hold, as piece signatures.
#[derive(Debug, Clone)]
pub struct OldPieces {
    kind: HashKind,
    /// A signature and the partition offset of an old piece that has it.
    by_signature: HashMap<Vec<u8>, u64>,
    /// The signature of the old piece at each offset.
    at: HashMap<u64, Vec<u8>>,
    /// Old blocks whose bytes the host knows (matches extend byte by byte
    /// there).
    known: HashMap<u64, Vec<u8>>,
    erase_size: u64,
}

impl OldPieces {
    /// No old pieces known yet; `kind` is how the board hashes.
    pub fn new(kind: HashKind) -> Self {
        OldPieces {
            kind,
            by_signature: HashMap::new(),
            at: HashMap::new(),
            known: HashMap::new(),
            erase_size: 1,
        }
    }

    /// The signature of a piece, as the board computes it.
    pub fn signature(&self, piece: &[u8]) -> Vec<u8> {
        let mut h = self.kind.hash(piece);
        h.truncate(SIGNATURE);
        h
    }

    /// Add the signatures the board sent for erase block `k`
    /// (concatenated, one per piece).
    pub fn add_signed(&mut self, part: &Partition, k: u64, signatures: &[u8]) {
        let len = self.signature(&[]).len();
        let start = part.block_range(k).start;
        for (i, sig) in signatures.chunks(len).enumerate() {
            self.insert(start + (i * SUB_BLOCK) as u64, sig.to_vec());
        }
    }

    /// Add erase block `k` whose contents the host knows.
    pub fn add_known(&mut self, part: &Partition, k: u64, contents: &[u8]) {
        let start = part.block_range(k).start;
        self.erase_size = part.block_size;
        self.known.insert(k, contents.to_vec());
        for (i, piece) in contents.chunks(SUB_BLOCK).enumerate() {
            let sig = self.signature(piece);
            self.insert(start + (i * SUB_BLOCK) as u64, sig);
        }
    }

    /// The old byte at partition offset `at`, when the host knows it.
    fn byte(&self, at: u64) -> Option<u8> {
        let block = self.known.get(&(at / self.erase_size))?;
        block.get((at % self.erase_size) as usize).copied()
    }

    fn insert(&mut self, offset: u64, sig: Vec<u8>) {
        self.by_signature.entry(sig.clone()).or_insert(offset);
        self.at.insert(offset, sig);
    }
}

/// Where a block's source bytes can be read from when it is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// From the flash, as it is.
    Flash,
    /// Block 0, from the copy saved in the board's RAM.
    Saved,
    /// Not at all (already overwritten by then).
    Gone,
}

/// How to assemble one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The operations, in order; they produce `len` bytes.
    pub ops: Vec<DeltaOp>,
    /// The bytes [`DeltaOp::Literal`] takes, in order.
    pub literal: Vec<u8>,
    /// Bytes assembled.
    pub len: usize,
    /// Old erase blocks copied from (read from flash).
    pub sources: BTreeSet<u64>,
}

#[cfg(test)]
impl Recipe {
    /// The bytes the board assembles from `flash` (as it is) and `saved`
    /// (block 0's copy in RAM): what the tests check a recipe against.
    pub(crate) fn apply(&self, flash: &[u8], saved: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        let mut lit = 0;
        for op in &self.ops {
            match *op {
                DeltaOp::Literal(n) => {
                    out.extend_from_slice(&self.literal[lit..lit + n]);
                    lit += n;
                }
                DeltaOp::Copy { from, len } => {
                    out.extend_from_slice(&flash[from as usize..from as usize + len])
                }
                DeltaOp::Saved { from, len } => {
                    out.extend_from_slice(&saved[from as usize..from as usize + len])
                }
            }
        }
        out
    }
}

/// A recipe for `want` from the old pieces whose blocks `available` allows.
pub fn recipe(
    want: &[u8],
    old: &OldPieces,
    part: &Partition,
    available: &dyn Fn(u64) -> Availability,
) -> Recipe {
    let mut r = Recipe {
        ops: Vec::new(),
        literal: Vec::new(),
        len: want.len(),
        sources: BTreeSet::new(),
    };
    let block_of = |offset: u64| offset / part.block_size;
    let mut p = 0;
    let mut literal_from = 0;
    while p + SUB_BLOCK <= want.len() {
        let sig = old.signature(&want[p..p + SUB_BLOCK]);
        let mut from = match old.by_signature.get(&sig) {
            Some(&o) if available(block_of(o)) != Availability::Gone => o,
            _ => {
                p += 1;
                continue;
            }
        };
        // Extend over the following pieces while they match too, within
        // one source block.
        let mut len = SUB_BLOCK;
        while p + len + SUB_BLOCK <= want.len()
            && block_of(from + len as u64) == block_of(from)
            && old.at.get(&(from + len as u64))
                == Some(&old.signature(&want[p + len..p + len + SUB_BLOCK]))
        {
            len += SUB_BLOCK;
        }
        // Where the old bytes are known, extend byte by byte both ways.
        while p > literal_from
            && from % part.block_size > 0
            && old.byte(from - 1) == Some(want[p - 1])
        {
            p -= 1;
            from -= 1;
            len += 1;
        }
        while p + len < want.len()
            && block_of(from + len as u64) == block_of(from)
            && old.byte(from + len as u64) == Some(want[p + len])
        {
            len += 1;
        }
        if literal_from < p {
            r.ops.push(DeltaOp::Literal(p - literal_from));
            r.literal.extend_from_slice(&want[literal_from..p]);
        }
        let block = block_of(from);
        match available(block) {
            Availability::Saved => r.ops.push(DeltaOp::Saved { from, len }),
            _ => {
                r.ops.push(DeltaOp::Copy { from, len });
                r.sources.insert(block);
            }
        }
        p += len;
        literal_from = p;
    }
    if literal_from < want.len() {
        r.ops.push(DeltaOp::Literal(want.len() - literal_from));
        r.literal.extend_from_slice(&want[literal_from..]);
    }
    r
}

/// An order to write `blocks` in such that no block is overwritten while a
/// block still to be written copies from it. `plan(k, gone)` gives block
/// `k`'s recipe when the blocks in `gone` can no longer be copied from; a
/// cycle is broken by declaring the lowest pending block gone for the
/// others.
pub fn order(
    blocks: &[u64],
    plan: &mut dyn FnMut(u64, &BTreeSet<u64>) -> Recipe,
) -> Vec<(u64, Recipe)> {
    let mut gone = BTreeSet::new();
    let mut pending: Vec<(u64, Recipe)> = blocks.iter().map(|&k| (k, plan(k, &gone))).collect();
    let mut done = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let free = (0..pending.len()).find(|&i| {
            let k = pending[i].0;
            pending
                .iter()
                .all(|(j, r)| *j == k || !r.sources.contains(&k))
        });
        let i = match free {
            Some(i) => i,
            None => {
                let k = pending[0].0;
                gone.insert(k);
                for (j, r) in pending.iter_mut() {
                    if *j != k && r.sources.contains(&k) {
                        *r = plan(*j, &gone);
                    }
                }
                0
            }
        };
        let (k, r) = pending.remove(i);
        // Once written, a block's old contents are gone for the rest.
        gone.insert(k);
        done.push((k, r));
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::noise;

    fn part() -> Partition {
        Partition {
            id: 0,
            size: 16 * 4096,
            block_size: 4096,
            block_device: false,
            program_unit: 4,
            erase_unit: 4096,
            mode: crate::board::EraseMode::Block,
        }
    }

    /// Apply a recipe to `flash` as the board would.
    fn assemble(r: &Recipe, flash: &[u8], saved: &[u8]) -> Vec<u8> {
        r.apply(flash, saved)
    }

    #[test]
    fn a_grown_file_shifts_data_that_is_copied_not_sent() {
        let p = part();
        let old = noise(5 * 4096, 1);
        // 100 bytes inserted in block 1: blocks 1..5 all change.
        let mut new = old.clone();
        new.splice(5000..5000, noise(100, 2));
        new.truncate(5 * 4096);
        let mut pieces = OldPieces::new(HashKind::Sha256);
        for k in 0..5 {
            pieces.add_known(&p, k, &old[k as usize * 4096..(k as usize + 1) * 4096]);
        }
        let changed: Vec<u64> = (1..5).collect();
        let mut plan = |k: u64, gone: &BTreeSet<u64>| {
            let want = &new[k as usize * 4096..(k as usize + 1) * 4096];
            recipe(want, &pieces, &p, &|b| {
                if gone.contains(&b) {
                    Availability::Gone
                } else {
                    Availability::Flash
                }
            })
        };
        let steps = order(&changed, &mut plan);
        // Growth: each block copies from itself and the one before, so the
        // blocks go last to first.
        assert_eq!(
            steps.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![4, 3, 2, 1]
        );
        let mut flash = old.clone();
        let mut sent = 0;
        for (k, r) in &steps {
            let block = assemble(r, &flash, &[]);
            let at = *k as usize * 4096;
            assert_eq!(block, new[at..at + 4096]);
            flash[at..at + 4096].copy_from_slice(&block);
            sent += r.literal.len();
        }
        assert_eq!(flash, new);
        // Old bytes known: matches extend byte by byte, so only the
        // inserted bytes travel.
        assert_eq!(sent, 100);
    }

    #[test]
    fn a_cycle_is_broken_by_sending_bytes() {
        let p = part();
        let a = noise(4096, 3);
        let b = noise(4096, 4);
        // Blocks 1 and 2 swap places.
        let old = [a.clone(), b.clone()].concat();
        let mut pieces = OldPieces::new(HashKind::Sha256);
        pieces.add_known(&p, 1, &a);
        pieces.add_known(&p, 2, &b);
        let new = [b.clone(), a.clone()];
        let mut plan = |k: u64, gone: &BTreeSet<u64>| {
            recipe(&new[k as usize - 1], &pieces, &p, &|blk| {
                if gone.contains(&blk) {
                    Availability::Gone
                } else {
                    Availability::Flash
                }
            })
        };
        let steps = order(&[1, 2], &mut plan);
        let mut flash = vec![0u8; 4096];
        flash.extend_from_slice(&old);
        for (k, r) in &steps {
            let block = assemble(r, &flash, &[]);
            assert_eq!(block, new[*k as usize - 1]);
            let at = *k as usize * 4096;
            flash[at..at + 4096].copy_from_slice(&block);
        }
        // One block is sent whole, the other copied.
        let literal: Vec<usize> = steps.iter().map(|(_, r)| r.literal.len()).collect();
        assert!(
            literal.contains(&4096) && literal.contains(&0),
            "{literal:?}"
        );
    }
}
