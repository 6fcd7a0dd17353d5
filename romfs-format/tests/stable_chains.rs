//! Chains of stable builds (`build_stable`), each generation built with the
//! previous one as its base after random edits (files added, removed, grown,
//! shrunk, edited, renamed, copied; directories added and removed), for
//! several erase-block sizes. Every generation parses, verifies with a valid
//! checksum, lists exactly the source's files and reads back their bytes;
//! when the base was used, every file whose bytes the base held keeps the
//! base's offset for them, the image keeps its length (or grows by whole
//! erase blocks) and its data area stays where it was.

use std::collections::BTreeMap;

use proptest::prelude::*;
use romfs_format::ext::{self, extension};
use romfs_format::write::{MemoryTree, Options, StableImage, StableOptions, TAG_DATA_AREA};
use romfs_format::{Checksum, Image, Node};
use romfs_testkit::tree_edits::{self, Files, TreeShape};
use romfs_testkit::Rng;

fn tree_of(files: &Files) -> MemoryTree {
    romfs_testkit::gen::tree_of_paths(files, |_| None)
}

/// One file as the image holds it: its bytes and where they start.
struct Held {
    data: Vec<u8>,
    offset: usize,
}

/// Parse, verify (no finding at all), check the checksum, and read every
/// file back by walking the tree.
fn read_back(bytes: &[u8]) -> Result<BTreeMap<String, Held>, TestCaseError> {
    let image = Image::parse(bytes).map_err(|e| TestCaseError::fail(format!("parse: {e}")))?;
    let mut findings = Vec::new();
    image.verify(|f| findings.push(f.to_string()));
    prop_assert!(findings.is_empty(), "verify: {:?}", findings);
    prop_assert!(
        matches!(image.checksum(), Checksum::Valid(_)),
        "checksum: {:?}",
        image.checksum()
    );
    let mut out = BTreeMap::new();
    let mut stack = vec![(image.root(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for e in dir.entries() {
            let e = e.map_err(|e| TestCaseError::fail(format!("walk: {e}")))?;
            let path = format!("{prefix}{}", String::from_utf8_lossy(e.name()));
            match e {
                Node::Dir(d) => stack.push((d, format!("{path}/"))),
                Node::File(f) => {
                    // Lookup by path finds the same file.
                    let found = image.lookup(path.as_bytes()).ok().flatten();
                    prop_assert_eq!(found.map(|n| n.id()), Some(f.id()), "lookup {}", path);
                    out.insert(
                        path,
                        Held {
                            data: f.data().to_vec(),
                            offset: f.data_offset(),
                        },
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Offset of the data-area record ("RFSD"), which must be there.
fn data_area(bytes: &[u8]) -> Option<usize> {
    let image = Image::parse(bytes).ok()?;
    image
        .records()
        .filter_map(Result::ok)
        .find(|r| r.kind == 1 && extension(r).is_some_and(|(tag, _)| tag == TAG_DATA_AREA))
        .map(|r| r.offset)
}

/// Random contents: mostly random bytes, some runs, some copies of a few
/// fixed patterns (so that identical contents occur and are shared).
fn contents(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(8) {
        0 => 0,
        1 => rng.below(16),
        2 => 16 + rng.below(8),
        3 => 4000 + rng.below(300),
        4 => 9000 + rng.below(2000),
        _ => 100 + rng.below(2500),
    } as usize;
    match rng.below(6) {
        0 => vec![b"abcdef"[rng.below(6) as usize]; len],
        1 => (0..len).map(|i| (i % 251) as u8).collect(),
        _ => rng.bytes(len),
    }
}

fn name(rng: &mut Rng) -> String {
    format!(
        "{}{}",
        ["m", "lib", "drv", "x"][rng.below(4) as usize],
        rng.below(500)
    )
}

fn dir(rng: &mut Rng) -> String {
    ["", "a/", "b/", "a/c/", "d/e/"][rng.below(5) as usize].to_string()
}

fn random_files(rng: &mut Rng) -> Files {
    let mut files = Files::new();
    for _ in 0..1 + rng.below(30) {
        files.insert((SHAPE.path)(rng), contents(rng));
    }
    files
}

/// What this test's source trees are made of.
const SHAPE: TreeShape = TreeShape {
    contents,
    path: |rng| format!("{}{}.py", dir(rng), name(rng)),
    new_path: |rng| format!("{}new/{}.mpy", dir(rng), name(rng)),
    dir,
};

/// One random edit of the source tree; returns what it did.
fn edit(files: &mut Files, rng: &mut Rng) -> String {
    tree_edits::edit(files, rng, &SHAPE)
}

fn build(files: &Files, block: u32, base: Option<&[u8]>) -> Result<StableImage, TestCaseError> {
    let stable = StableOptions {
        erase_block: Some(block),
    };
    let image = tree_of(files)
        .build_stable(&Options::default(), &stable, base)
        .map_err(|e| TestCaseError::fail(format!("build: {e}")))?;
    let back = read_back(&image.bytes)?;
    prop_assert_eq!(
        back.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>(),
        "listing"
    );
    for (path, data) in files {
        prop_assert!(back[path].data == *data, "{} reads back wrong", path);
    }
    prop_assert_eq!(image.bytes.len() % block as usize, 0, "length");
    prop_assert!(data_area(&image.bytes).is_some(), "no data-area record");
    Ok(image)
}

/// What must hold between a generation and its base when the base was used.
fn check_kept(old: &[u8], new: &[u8], block: usize) -> Result<(), TestCaseError> {
    let before = read_back(old)?;
    let after = read_back(new)?;
    for (path, held) in &after {
        if held.data.is_empty() {
            continue;
        }
        match before.get(path) {
            // Same path, same bytes: same place.
            Some(was) if was.data == held.data => {
                prop_assert_eq!(was.offset, held.offset, "{} moved", path)
            }
            // Bytes the base held under another path: one of their places.
            _ => {
                let places: Vec<usize> = before
                    .values()
                    .filter(|w| w.data == held.data)
                    .map(|w| w.offset)
                    .collect();
                if !places.is_empty() {
                    prop_assert!(
                        places.contains(&held.offset),
                        "{} holds bytes the base had at {:?}, but is at {}",
                        path,
                        places,
                        held.offset
                    );
                }
            }
        }
    }
    prop_assert!(new.len() >= old.len(), "the image shrank");
    prop_assert_eq!(
        (new.len() - old.len()) % block,
        0,
        "grew by part of a block"
    );
    prop_assert_eq!(data_area(old), data_area(new), "the data area moved");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn every_generation_of_a_chain_verifies_reads_back_and_keeps_offsets(
        seed in any::<u64>(),
        generations in 2usize..10,
        block_log in prop::sample::select(vec![8u32, 10, 12]),
    ) {
        let block = 1u32 << block_log;
        let mut rng = Rng(seed);
        let mut files = random_files(&mut rng);
        let mut prev = build(&files, block, None)?;
        for g in 0..generations {
            let mut done = Vec::new();
            for _ in 0..1 + rng.below(4) {
                done.push(edit(&mut files, &mut rng));
            }
            let next = build(&files, block, Some(&prev.bytes))?;
            if next.report.fresh.is_none() {
                check_kept(&prev.bytes, &next.bytes, block as usize)
                    .map_err(|e| TestCaseError::fail(format!("generation {g} after {done:?}: {e}")))?;
            }
            prev = next;
        }
    }
}

/// The chains above use their bases: over a fixed set of seeds most
/// generations are laid out over the previous one rather than afresh.
#[test]
fn chains_mostly_reuse_their_base() {
    let (mut reused, mut total) = (0, 0);
    for seed in 0..40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut files = random_files(&mut rng);
        let block = 4096;
        let mut prev = build(&files, block, None).unwrap();
        for _ in 0..6 {
            edit(&mut files, &mut rng);
            let next = build(&files, block, Some(&prev.bytes)).unwrap();
            total += 1;
            if next.report.fresh.is_none() {
                reused += 1;
                check_kept(&prev.bytes, &next.bytes, block as usize).unwrap();
            }
            prev = next;
        }
    }
    assert!(
        reused * 4 >= total * 3,
        "only {reused} of {total} builds used their base"
    );
}

#[test]
fn the_data_area_record_is_found_by_its_tag() {
    // A guard on the helper the chains rely on: a default-layout image has
    // no data-area record, a stable one has exactly one.
    let mut files = Files::new();
    files.insert("main.py".into(), b"print(1)\n".to_vec());
    let default = tree_of(&files).build(&Options::default()).unwrap();
    assert_eq!(data_area(&default), None);
    let stable = build(&files, 4096, None).unwrap();
    let at = data_area(&stable.bytes).unwrap();
    assert_eq!(&stable.bytes[at + 6..at + 9], &ext::MAGIC);
    assert_eq!(stable.bytes[at + 9], TAG_DATA_AREA);
}

/// The stable-layout fuzz seeds (`fuzz/seeds/stable-*.bin` for
/// `read_image`, and the patches of `fuzz/seeds/delta/` for `delta`, each
/// after its chunk-size byte) are what the writer makes now (set
/// ROMFS_WRITE_SEEDS=1 to refresh them).
#[test]
fn stable_fuzz_seeds_are_current() {
    use romfs_format::delta;
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let small_blocks = StableOptions {
        erase_block: Some(256),
    };
    let mut v1 = Files::new();
    v1.insert("main.py".into(), b"import lib.a\nprint(lib.a.X)\n".to_vec());
    v1.insert("lib/a.py".into(), b"X = 1\n".to_vec());
    v1.insert("lib/b.mpy".into(), (0..300u32).map(|i| i as u8).collect());
    v1.insert("lib/c.mpy".into(), (0..300u32).map(|i| i as u8).collect());
    v1.insert("empty".into(), Vec::new());
    v1.insert("big.bin".into(), vec![0x42; 700]);
    let mut v2 = v1.clone();
    v2.insert("lib/a.py".into(), b"X = 22\n".to_vec());
    v2.get_mut("lib/b.mpy").unwrap().extend([9u8; 100]);
    v2.remove("big.bin");
    v2.insert("lib/d.py".into(), b"Y = 3\n".to_vec());
    let old = tree_of(&v1)
        .build_stable(&Options::default(), &small_blocks, None)
        .unwrap();
    let new = tree_of(&v2)
        .build_stable(&Options::default(), &small_blocks, Some(&old.bytes))
        .unwrap();
    assert_eq!(new.report.fresh, None);
    let bare_options = Options {
        checksum: false,
        metadata: None,
        ..Options::default()
    };
    let bare: Files = v2
        .iter()
        .take(2)
        .map(|(p, d)| (p.clone(), d.clone()))
        .collect();
    let bare = tree_of(&bare)
        .build_stable(&bare_options, &small_blocks, None)
        .unwrap();
    let default_old = tree_of(&v1).build(&Options::default()).unwrap();
    let default_new = tree_of(&v2).build(&Options::default()).unwrap();
    let patch = |cut: u8, old: &[u8], new: &[u8]| {
        let mut seed = vec![cut];
        seed.extend(delta::diff(old, new));
        seed
    };
    let files = [
        ("stable-fresh.bin", old.bytes.clone()),
        ("stable-with-base.bin", new.bytes.clone()),
        ("stable-bare.bin", bare.bytes.clone()),
        ("delta/stable-v1-v2", patch(0, &old.bytes, &new.bytes)),
        (
            "delta/stable-v2-v1-chunks-of-6",
            patch(5, &new.bytes, &old.bytes),
        ),
        (
            "delta/default-v1-v2-chunks-of-17",
            patch(16, &default_old, &default_new),
        ),
        ("delta/identical", patch(0, &default_old, &default_old)),
    ];
    for (name, bytes) in files {
        let path = seeds.join(name);
        if std::env::var_os("ROMFS_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name} is stale: rerun with ROMFS_WRITE_SEEDS=1"
        );
    }
}
