//! Delta patches: what `diff` writes, `apply` (and the streaming decoder
//! fed in chunks of any size) turns back into the new image; garbage is
//! refused without a panic.

use proptest::prelude::*;
use romfs_format::delta::{apply, diff, Decoder, DeltaError, Op, HEADER_LEN};

/// Decode `patch` against `old` feeding `chunk` bytes at a time.
fn apply_chunked(old: &[u8], patch: &[u8], chunk: usize) -> Result<Vec<u8>, DeltaError> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for piece in patch.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let (n, op) = dec.feed(rest)?;
            assert!(n > 0, "no progress");
            rest = &rest[n..];
            match op {
                Some(Op::Copy { from, len }) => {
                    out.extend_from_slice(&old[from as usize..(from + len) as usize])
                }
                Some(Op::Literal(b)) => out.extend_from_slice(b),
                Some(Op::Header(_)) | None => {}
            }
        }
    }
    dec.finish()?;
    Ok(out)
}

fn edited(old: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = romfs_testkit::Rng(seed);
    let mut new = old.to_vec();
    for _ in 0..1 + rng.below(5) {
        let at = rng.below(new.len() as u64 + 1) as usize;
        match rng.below(3) {
            0 => {
                let n = rng.below(300) as usize;
                new.splice(at..at, (0..n).map(|_| rng.below(256) as u8));
            }
            1 => {
                let n = (rng.below(300) as usize).min(new.len() - at);
                new.drain(at..at + n);
            }
            _ => {
                if at < new.len() {
                    new[at] ^= 0xff;
                }
            }
        }
    }
    new
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn a_patch_makes_the_new_image(old in proptest::collection::vec(any::<u8>(), 0..5000), seed in any::<u64>(), chunk in 1usize..64) {
        let new = edited(&old, seed);
        let patch = diff(&old, &new);
        prop_assert_eq!(&apply(&old, &patch).unwrap(), &new);
        prop_assert_eq!(&apply_chunked(&old, &patch, chunk).unwrap(), &new);
    }

    #[test]
    fn garbage_is_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), chunk in 1usize..16) {
        let old = vec![7u8; 100];
        let _ = apply_chunked(&old, &bytes, chunk);
        // A valid header followed by garbage.
        let mut patch = diff(&old, &[1, 2, 3, 4])[..HEADER_LEN].to_vec();
        patch.extend_from_slice(&bytes);
        let _ = apply_chunked(&old, &patch, chunk);
        let _ = apply(&old, &patch);
    }
}

#[test]
fn a_small_edit_makes_a_small_patch() {
    let mut rng = romfs_testkit::Rng(5);
    let old: Vec<u8> = (0..200_000).map(|_| rng.below(256) as u8).collect();
    let mut new = old.clone();
    new[123_456] ^= 1;
    new.splice(50_000..50_000, [9u8; 1024]);
    let patch = diff(&old, &new);
    assert!(patch.len() < HEADER_LEN + 1024 + 40, "{}", patch.len());
    assert_eq!(apply(&old, &patch).unwrap(), new);
}

#[test]
fn a_patch_for_another_base_or_cut_short_is_refused() {
    let old = vec![1u8; 1000];
    let mut new = old.clone();
    new[500] = 2;
    let patch = diff(&old, &new);
    assert_eq!(apply(&[0u8; 1000], &patch), Err(DeltaError::WrongBase));
    assert_eq!(
        apply(&old, &patch[..patch.len() - 1]),
        Err(DeltaError::Truncated)
    );
    let mut long = patch.clone();
    long.push(0);
    assert!(matches!(
        apply(&old, &long),
        Err(DeltaError::TrailingBytes(_))
    ));
    let mut bad = patch.clone();
    bad[0] = b'X';
    assert_eq!(apply(&old, &bad), Err(DeltaError::BadMagic));
    // The promised CRC-32 of the result differs: refused at the end.
    let mut wrong = patch.clone();
    wrong[17] ^= 1;
    assert_eq!(apply(&old, &wrong), Err(DeltaError::WrongResult));
}

/// Two checksummed images of the same length whose `main.py` differs.
fn same_length_images() -> (Vec<u8>, Vec<u8>) {
    use romfs_format::write::{MemoryTree, Options};
    let build = |body: &[u8]| {
        let mut t = MemoryTree::new();
        t.add_file(t.root(), b"main.py", body.to_vec()).unwrap();
        t.add_file(t.root(), b"data.bin", vec![7u8; 3000]).unwrap();
        t.build(&Options::default()).unwrap()
    };
    (build(b"print(1)"), build(b"print(2)"))
}

#[test]
fn the_header_binds_images_by_identity_not_by_their_whole_file_crc() {
    use romfs_format::{crc32, Image};
    let (old, other) = same_length_images();
    assert_eq!(old.len(), other.len());
    // Every image ending with a checksum record has the same whole-file
    // CRC-32 (the residue): it cannot tell images apart.
    assert_eq!(crc32::checksum(&old), crc32::checksum(&other));
    let new = other.clone();
    let patch = diff(&old, &new);
    let mut dec = Decoder::new();
    let Ok((_, Some(Op::Header(h)))) = dec.feed(&patch) else {
        panic!("no header")
    };
    assert_eq!(h.old_id, Image::parse(&old).unwrap().identity());
    assert_eq!(h.new_id, Image::parse(&new).unwrap().identity());
    assert_ne!(h.old_id, h.new_id);
    assert_eq!(apply(&old, &patch).unwrap(), new);
    // A patch made for `other`, applied to `old`: the same length, the
    // same whole-file CRC, another image.
    assert_eq!(apply(&old, &diff(&other, &old)), Err(DeltaError::WrongBase));
    // Not an image: the CRC-32 of the whole file.
    assert_eq!(
        romfs_format::delta::identity(b"abc"),
        crc32::checksum(b"abc")
    );
}
