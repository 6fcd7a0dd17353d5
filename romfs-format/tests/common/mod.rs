//! Helpers shared by romfs-format's integration tests.
#![allow(dead_code)]

use romfs_format::write::{MemoryTree, NodeRef};
use romfs_format::{Image, Node};

/// A tree description independent of any image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    Dir(Vec<u8>, Vec<Entry>),
    File(Vec<u8>, Vec<u8>),
}

pub fn add_all(tree: &mut MemoryTree, parent: NodeRef, entries: &[Entry]) {
    for e in entries {
        match e {
            Entry::Dir(name, children) => {
                let d = tree.add_dir(parent, name).unwrap();
                add_all(tree, d, children);
            }
            Entry::File(name, data) => {
                tree.add_file(parent, name, data.clone()).unwrap();
            }
        }
    }
}

/// Read an image back into entries (sorted, for comparison), iteratively.
pub fn read_back(image: &Image<'_>) -> Vec<Entry> {
    fn walk(dir: romfs_format::Dir<'_>) -> Vec<Entry> {
        let mut out: Vec<Entry> = dir
            .entries()
            .map(|e| match e.unwrap() {
                Node::Dir(d) => Entry::Dir(d.name().to_vec(), walk(d)),
                Node::File(f) => Entry::File(f.name().to_vec(), f.data().to_vec()),
            })
            .collect();
        out.sort();
        out
    }
    walk(image.root())
}

pub fn sorted(entries: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = entries
        .iter()
        .map(|e| match e {
            Entry::Dir(n, c) => Entry::Dir(n.clone(), sorted(c)),
            f => f.clone(),
        })
        .collect();
    out.sort();
    out
}

/// A sample tree with nested dirs, duplicates, empty files and an empty dir.
pub fn sample_tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    let root = t.root();
    t.add_file(
        root,
        b"main.py",
        b"import lib.helper\nprint(lib.helper.greet())\n".to_vec(),
    )
    .unwrap();
    let lib = t.add_dir(root, b"lib").unwrap();
    t.add_file(
        lib,
        b"helper.py",
        b"def greet():\n    return 'hello from rom'\n".to_vec(),
    )
    .unwrap();
    t.add_file(lib, b"__init__.py", Vec::new()).unwrap();
    let assets = t.add_dir(root, b"assets").unwrap();
    let blob: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    t.add_file(assets, b"a.bin", blob.clone()).unwrap();
    t.add_file(assets, b"b.bin", blob).unwrap();
    t.add_file_aligned(assets, b"model.tflite", vec![0x5a; 200], Some(16))
        .unwrap();
    t.add_dir(root, b"empty").unwrap();
    t
}
