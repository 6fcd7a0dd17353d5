//! Our mpremote layout is byte-for-byte what `mpremote romfs --no-mpy build`
//! writes, on generated trees; and our reader reads mpremote's images.
#![forbid(unsafe_code)]

use romfs_testkit::Rng;
use std::path::Path;
use std::process::Command;

use romfs_format::write::{MemoryTree, NodeRef, Options};
use romfs_format::{Image, Node};
use romfs_testkit::venv_tool;

/// Write a random tree to `dir` and mirror it into `tree`.
fn generate(rng: &mut Rng, dir: &Path, tree: &mut MemoryTree, parent: NodeRef, depth: usize) {
    let entries = 1 + rng.below(if depth == 0 { 12 } else { 6 });
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..entries {
        let name_len = 1 + rng.below(20) as usize;
        let name: String = (0..name_len)
            .map(|_| {
                let alphabet =
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~";
                alphabet[rng.below(alphabet.len() as u64) as usize] as char
            })
            .collect();
        if name == "." || name == ".." || !used.insert(name.clone()) {
            continue;
        }
        let path = dir.join(&name);
        if depth < 4 && rng.below(4) == 0 {
            std::fs::create_dir(&path).unwrap();
            let sub = tree.add_dir(parent, name.as_bytes()).unwrap();
            generate(rng, &path, tree, sub, depth + 1);
        } else {
            // Sizes around the 1-, 2- and 3-byte varuint boundaries.
            let size = match rng.below(6) {
                0 => 0,
                1 => rng.below(128),
                2 => 120 + rng.below(16),
                3 => 16_370 + rng.below(30),
                4 => rng.below(70_000),
                _ => rng.below(4096),
            } as usize;
            let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            std::fs::write(&path, &data).unwrap();
            tree.add_file(parent, name.as_bytes(), data).unwrap();
        }
    }
}

fn mpremote_build(mpremote: &Path, src: &Path, out: &Path) -> Vec<u8> {
    let status = Command::new(mpremote)
        .args(["romfs", "--no-mpy", "--output"])
        .arg(out)
        .arg("build")
        .arg(src)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run mpremote");
    assert!(status.success(), "mpremote failed");
    std::fs::read(out).unwrap()
}

fn collect(image: &Image<'_>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![(Vec::new(), image.root())];
    while let Some((prefix, dir)) = stack.pop() {
        for entry in dir.entries() {
            let entry = entry.unwrap();
            let mut path = prefix.clone();
            path.push(b'/');
            path.extend_from_slice(entry.name());
            match entry {
                Node::Dir(d) => {
                    out.push((path.clone(), None));
                    stack.push((path, d));
                }
                Node::File(f) => out.push((path, Some(f.data().to_vec()))),
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mpremote_layout_is_byte_identical() {
    let Some(mpremote) = venv_tool("mpremote") else {
        return;
    };
    for seed in 1..=8u64 {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let mut tree = MemoryTree::new();
        let root = tree.root();
        generate(
            &mut Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            &src,
            &mut tree,
            root,
            0,
        );
        let theirs = mpremote_build(&mpremote, &src, &tmp.path().join("theirs.img"));
        let ours = tree.build(&Options::mpremote()).unwrap();
        if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!("seed {seed}: first difference at byte {at:#x}");
        }
        assert_eq!(
            ours.len(),
            theirs.len(),
            "seed {seed}: image lengths differ"
        );

        // Our reader sees the same tree in mpremote's image and in our default layout.
        let theirs_img = Image::parse(&theirs).unwrap();
        assert!(theirs_img.verify(|f| panic!("seed {seed}: {f}")).is_clean());
        let default = tree.build(&Options::default()).unwrap();
        let default_img = Image::parse(&default).unwrap();
        assert!(default_img
            .verify(|f| panic!("seed {seed}: {f}"))
            .is_clean());
        assert_eq!(collect(&theirs_img), collect(&default_img), "seed {seed}");
    }
}

#[test]
fn empty_tree_matches_mpremote() {
    let Some(mpremote) = venv_tool("mpremote") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let theirs = mpremote_build(&mpremote, &src, &tmp.path().join("theirs.img"));
    assert_eq!(
        theirs,
        MemoryTree::new().build(&Options::mpremote()).unwrap()
    );
}

#[test]
fn four_byte_varuint_sizes_match_mpremote() {
    let Some(mpremote) = venv_tool("mpremote") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("nested/deeper")).unwrap();
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let nested = tree.add_dir(root, b"nested").unwrap();
    let deeper = tree.add_dir(nested, b"deeper").unwrap();
    for (name, len) in [("a.bin", (1usize << 21) - 1), ("b.bin", 1 << 21)] {
        let data: Vec<u8> = (0..len).map(|k| (k % 251) as u8).collect();
        std::fs::write(src.join("nested/deeper").join(name), &data).unwrap();
        tree.add_file(deeper, name.as_bytes(), data).unwrap();
    }
    let theirs = mpremote_build(&mpremote, &src, &tmp.path().join("theirs.img"));
    assert!(
        tree.build(&Options::mpremote()).unwrap() == theirs,
        "images differ"
    );
}
