//! The stable layout (`build_stable`): images that verify and read back
//! exactly, unchanged files that keep their offsets, few erase blocks
//! changed by a small edit, and a fresh layout when the base cannot help.

use std::collections::BTreeMap;

use proptest::prelude::*;
use romfs_format::write::{FreshReason, MemoryTree, Options, StableImage, StableOptions};
use romfs_format::{Image, Node};
use romfs_testkit::Rng;

type Files = BTreeMap<String, Vec<u8>>;

fn tree_of(files: &Files) -> MemoryTree {
    romfs_testkit::gen::tree_of_paths(files, |_| None)
}

/// Every file of the image, by path, with its data offset.
fn read_back(bytes: &[u8]) -> BTreeMap<String, (Vec<u8>, usize)> {
    let image = Image::parse(bytes).unwrap();
    assert!(
        image.verify(|f| panic!("finding: {f}")).is_clean(),
        "image does not verify"
    );
    let mut out = BTreeMap::new();
    let mut stack = vec![(image.root(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for e in dir.entries() {
            let e = e.unwrap();
            let path = format!("{prefix}{}", String::from_utf8_lossy(e.name()));
            match e {
                Node::Dir(d) => stack.push((d, format!("{path}/"))),
                Node::File(f) => {
                    out.insert(path, (f.data().to_vec(), f.data_offset()));
                }
            }
        }
    }
    out
}

fn build(files: &Files, base: Option<&[u8]>) -> StableImage {
    let image = tree_of(files)
        .build_stable(&Options::default(), &StableOptions::default(), base)
        .unwrap();
    let back = read_back(&image.bytes);
    assert_eq!(back.len(), files.len());
    for (path, data) in files {
        assert_eq!(&back[path].0, data, "{path}");
    }
    image
}

/// Erase blocks whose bytes differ (a block past the end of one image
/// counts as changed).
fn blocks_changed(old: &[u8], new: &[u8], block: usize) -> usize {
    let n = old.len().max(new.len()).div_ceil(block);
    (0..n)
        .filter(|&i| {
            let r = |b: &[u8]| {
                b.get(i * block..((i + 1) * block).min(b.len()))
                    .map(<[u8]>::to_vec)
            };
            r(old) != r(new)
        })
        .count()
}

/// A 400-module app: sizes like compiled modules, in ten packages.
fn app(seed: u64) -> Files {
    let mut rng = Rng(seed);
    let mut files = Files::new();
    for i in 0..400 {
        let len = 400 + rng.below(3600) as usize;
        let data = (0..len).map(|_| rng.below(256) as u8).collect();
        files.insert(format!("lib/pkg{}/mod{i:03}.mpy", i % 10), data);
    }
    files.insert("main.py".into(), b"import math\nprint(math.pi)\n".to_vec());
    files
}

fn offsets(image: &StableImage) -> BTreeMap<String, usize> {
    read_back(&image.bytes)
        .into_iter()
        .map(|(p, (_, off))| (p, off))
        .collect()
}

#[test]
fn a_fresh_stable_image_verifies_and_reads_back() {
    let image = build(&app(1), None);
    assert_eq!(image.report.fresh, Some(FreshReason::NoBase));
    assert_eq!(image.bytes.len() % 4096, 0);
    assert!(image.report.tail_slack >= 2 * 4096);
    assert!(image.report.cost() > 0);
}

#[test]
fn a_same_size_edit_changes_at_most_three_blocks() {
    let files = app(2);
    let old = build(&files, None);
    for (k, victim) in files.keys().step_by(37).enumerate() {
        let mut next = files.clone();
        let data = next.get_mut(victim).unwrap();
        let at = k * 131 % data.len();
        data[at] ^= 0x5a;
        let new = build(&next, Some(&old.bytes));
        assert_eq!(new.report.fresh, None);
        assert_eq!(new.report.kept, files.len() - 1);
        let changed = blocks_changed(&old.bytes, &new.bytes, 4096);
        assert!(changed <= 3, "{victim}: {changed} blocks changed");
        // Every file keeps its offset, the edited one included.
        assert!(offsets(&old) == offsets(&new), "{victim}: a file moved");
    }
}

#[test]
fn a_module_grown_by_1k_changes_at_most_three_blocks() {
    let files = app(3);
    let old = build(&files, None);
    let old_offsets = offsets(&old);
    for victim in files.keys().step_by(29) {
        let mut next = files.clone();
        next.get_mut(victim)
            .unwrap()
            .extend((0..1024).map(|i| i as u8));
        let new = build(&next, Some(&old.bytes));
        assert_eq!(new.report.fresh, None);
        let changed = blocks_changed(&old.bytes, &new.bytes, 4096);
        assert!(changed <= 3, "{victim}: {changed} blocks changed");
        for (path, off) in offsets(&new) {
            if &path != victim {
                assert_eq!(old_offsets[&path], off, "{path} moved");
            }
        }
    }
}

#[test]
fn successive_builds_stay_stable_and_reuse_holes() {
    let mut files = app(4);
    let mut prev = build(&files, None);
    let mut rng = Rng(44);
    for round in 0..20 {
        let keys: Vec<String> = files.keys().cloned().collect();
        let victim = &keys[rng.below(keys.len() as u64) as usize];
        match round % 3 {
            0 => {
                files.remove(victim);
            }
            1 => {
                let len = 300 + rng.below(3000) as usize;
                files.insert(
                    format!("lib/new/n{round}.mpy"),
                    (0..len).map(|_| rng.below(256) as u8).collect(),
                );
            }
            _ => {
                files.get_mut(victim).unwrap().extend([1, 2, 3]);
            }
        }
        let next = build(&files, Some(&prev.bytes));
        let before = offsets(&prev);
        if next.report.fresh.is_none() {
            for (path, off) in offsets(&next) {
                if let Some(&old) = before.get(&path) {
                    if read_back(&prev.bytes)[&path].0 == files[&path] {
                        assert_eq!(old, off, "round {round}: {path} moved");
                    }
                }
            }
        }
        prev = next;
    }
}

#[test]
fn too_many_holes_fall_back_to_a_fresh_layout() {
    let files = app(5);
    let old = build(&files, None);
    let half: Files = files.into_iter().step_by(2).collect();
    let new = build(&half, Some(&old.bytes));
    assert!(
        matches!(new.report.fresh, Some(FreshReason::TooManyHoles { .. })),
        "{:?}",
        new.report.fresh
    );
}

#[test]
fn a_default_layout_base_is_not_a_stable_base() {
    let files = app(6);
    let default = tree_of(&files).build(&Options::default()).unwrap();
    let new = build(&files, Some(&default));
    assert!(matches!(new.report.fresh, Some(FreshReason::NotStable(_))));
    let garbage = build(&files, Some(b"not an image"));
    assert!(matches!(
        garbage.report.fresh,
        Some(FreshReason::NotStable(_))
    ));
}

#[test]
fn a_tree_that_outgrows_its_slack_is_laid_out_afresh() {
    let files = app(7);
    let old = build(&files, None);
    let mut more = files.clone();
    for i in 0..200 {
        more.insert(
            format!("lib/extra/a_rather_long_module_name_{i:04}.mpy"),
            vec![i as u8; 40],
        );
    }
    let new = build(&more, Some(&old.bytes));
    assert!(matches!(
        new.report.fresh,
        Some(FreshReason::TreeOutgrewSlack { .. })
    ));
}

#[test]
fn metadata_changes_keep_the_tree_in_place() {
    let files = app(8);
    let tree = tree_of(&files);
    let opts = |label: &str, generation| {
        let mut o = Options::default();
        let md = o.metadata.as_mut().unwrap();
        md.label = Some(label.into());
        md.generation = Some(generation);
        o
    };
    let old = tree
        .build_stable(&opts("v1", 100), &StableOptions::default(), None)
        .unwrap();
    for (label, generation) in [("v1", 200), ("v1.1", 127), ("version-2", 5), ("v", 1)] {
        let new = tree
            .build_stable(
                &opts(label, generation),
                &StableOptions::default(),
                Some(&old.bytes),
            )
            .unwrap();
        assert_eq!(new.report.fresh, None, "{label}");
        read_back(&new.bytes);
        assert_eq!(blocks_changed(&old.bytes, &new.bytes, 4096), 2, "{label}");
    }
}

#[test]
fn signed_and_unchecked_stable_images_verify() {
    let files = app(9);
    let tree = tree_of(&files);
    let opts = Options {
        signature: Some(romfs_format::write::SignatureSpec {
            product: "board".into(),
            generation: 3,
        }),
        ..Options::default()
    };
    let signed = tree
        .build_stable(&opts, &StableOptions::default(), None)
        .unwrap();
    let at = signed.signature_offset.unwrap() as usize;
    assert_eq!(signed.bytes.len() - at, 167);
    let image = Image::parse(&signed.bytes).unwrap();
    assert!(image.signature().is_some());
    let plain = Options {
        checksum: false,
        ..Options::default()
    };
    let unchecked = tree
        .build_stable(&plain, &StableOptions::default(), Some(&signed.bytes))
        .unwrap();
    assert_eq!(unchecked.report.fresh, None);
    read_back(&unchecked.bytes);
}

#[test]
fn erase_block_size_is_recorded_and_checked() {
    let files = app(10);
    let tree = tree_of(&files);
    let big = StableOptions {
        erase_block: Some(65536),
    };
    let old = tree.build_stable(&Options::default(), &big, None).unwrap();
    assert_eq!(old.bytes.len() % 65536, 0);
    // The next build takes the base's block size without being told.
    let new = build(&files, Some(&old.bytes));
    assert_eq!(new.report.erase_block, 65536);
    assert_eq!(new.bytes, old.bytes);
    let bad = StableOptions {
        erase_block: Some(1000),
    };
    assert!(tree.build_stable(&Options::default(), &bad, None).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn any_sequence_of_edits_keeps_unchanged_files_in_place(seed in any::<u64>(), steps in 1usize..6) {
        let mut rng = Rng(seed);
        let mut files = Files::new();
        for i in 0..(1 + rng.below(40)) {
            let len = [0, 1, 15, 16, 17, 300, 5000, 9000][rng.below(8) as usize];
            files.insert(format!("d{}/f{i}", rng.below(4)), (0..len).map(|_| rng.below(4) as u8).collect());
        }
        let mut prev = build(&files, None);
        for _ in 0..steps {
            let keys: Vec<String> = files.keys().cloned().collect();
            let k = keys[rng.below(keys.len() as u64) as usize].clone();
            match rng.below(4) {
                0 if files.len() > 1 => { files.remove(&k); }
                1 => { files.get_mut(&k).unwrap().extend((0..rng.below(6000)).map(|x| x as u8)); }
                2 => { let d = files.get_mut(&k).unwrap(); if !d.is_empty() { let n = d.len(); d[rng.below(n as u64) as usize] ^= 1; } }
                _ => { files.insert(format!("n{}", rng.below(1000)), vec![7; rng.below(3000) as usize]); }
            }
            let next = build(&files, Some(&prev.bytes));
            if next.report.fresh.is_none() {
                let old = read_back(&prev.bytes);
                for (path, (data, off)) in read_back(&next.bytes) {
                    if let Some((old_data, old_off)) = old.get(&path) {
                        if *old_data == data && !data.is_empty() {
                            prop_assert_eq!(*old_off, off, "{} moved", path);
                        }
                    }
                }
            }
            prev = next;
        }
    }
}
