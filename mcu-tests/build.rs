//! Picks the memory map for the target (`thumbv6m`: the micro:bit's
//! nRF51, otherwise the LM3S6965) and writes the test images into
//! `OUT_DIR` with romfs-format's own writer.

use std::path::Path;

use romfs_format::write::{MemoryTree, Options};
use romfs_format::{Image, Node};

#[path = "src/content.rs"]
mod content;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    let target = std::env::var("TARGET").unwrap_or_default();
    let memory = if target.starts_with("thumbv6m") {
        "memory/microbit.x"
    } else {
        "memory/lm3s6965evb.x"
    };
    std::fs::copy(memory, out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory");
    println!("cargo:rerun-if-changed=src/content.rs");
    println!("cargo:rerun-if-changed=build.rs");

    std::fs::write(out.join("main.img"), main_image()).expect("write main.img");
    let safe = Options {
        header_write_size: Some(content::WRITE_SIZE as u32),
        ..Options::default()
    };
    let v1 = update_image(content::NOTE_V1, b"new.txt", &safe);
    let v2 = update_image(content::NOTE_V2, b"other.txt", &safe);
    assert_ne!(v1, v2);
    let unsafe_header = update_image(content::NOTE_V1, b"new.txt", &Options::default());
    assert!(
        !romfs_format::header_is_write_safe(&unsafe_header, content::WRITE_SIZE),
        "the image meant to be refused in single-slot mode has a safe header"
    );
    // Delta patches: v1 to v2 (applied where v1 runs), and v2 to v1 (for
    // another base while v1 runs).
    let forward = romfs_format::delta::diff(&v1, &v2);
    assert!(
        forward.len() < v2.len() / 2,
        "the v1 -> v2 patch copies little"
    );
    std::fs::write(out.join("v1-v2.delta"), forward).expect("write v1-v2.delta");
    std::fs::write(out.join("v2-v1.delta"), romfs_format::delta::diff(&v2, &v1))
        .expect("write v2-v1.delta");
    std::fs::write(out.join("v1.img"), v1).expect("write v1.img");
    std::fs::write(out.join("v2.img"), v2).expect("write v2.img");
    std::fs::write(out.join("unsafe.img"), unsafe_header).expect("write unsafe.img");
}

fn words(n: usize, odd: bool) -> Vec<u8> {
    (0..n)
        .flat_map(|i| content::word(i, odd).to_le_bytes())
        .collect()
}

fn bytes(seed: u32, n: usize) -> Vec<u8> {
    (0..n).map(|i| content::byte(seed, i)).collect()
}

fn data_offset(img: &[u8], path: &[u8]) -> usize {
    match Image::parse(img).and_then(|i| i.lookup(path)) {
        Ok(Some(Node::File(f))) => f.data_offset(),
        other => panic!("{}: {other:?}", String::from_utf8_lossy(path)),
    }
}

/// The image the read tests mount: `table.u32`'s data 16-byte aligned,
/// `odd.u32`'s at an odd offset (the length of the unaligned file
/// stored before it is tried until it lands there).
fn main_image() -> Vec<u8> {
    for pad in 0..16 {
        let mut t = MemoryTree::new();
        let root = t.root();
        t.add_file(root, b"hello.txt", content::HELLO.to_vec())
            .unwrap();
        let lib = t.add_dir(root, b"lib").unwrap();
        t.add_file(lib, b"util.py", content::UTIL_PY.to_vec())
            .unwrap();
        let deep = t.add_dir(lib, b"deep").unwrap();
        t.add_file(
            deep,
            b"blob.bin",
            bytes(content::BLOB_SEED, content::BLOB_LEN),
        )
        .unwrap();
        t.add_file_aligned(root, b"o-pad.txt", vec![b'-'; pad], Some(1))
            .unwrap();
        t.add_file_aligned(root, b"odd.u32", words(content::ODD_WORDS, true), Some(1))
            .unwrap();
        t.add_file(root, b"seven.bin", content::SEVEN.to_vec())
            .unwrap();
        t.add_file_aligned(
            root,
            b"table.u32",
            words(content::TABLE_WORDS, false),
            Some(16),
        )
        .unwrap();
        let img = t.build(&Options::default()).expect("build main image");
        if data_offset(&img, b"odd.u32") % 2 == 1 {
            assert_eq!(data_offset(&img, b"table.u32") % 16, 0);
            return img;
        }
    }
    panic!("no padding put odd.u32 at an odd offset");
}

/// An update image: `note.txt` differs between versions, `big.bin` does not.
fn update_image(note: &[u8], extra: &[u8], opts: &Options) -> Vec<u8> {
    let mut t = MemoryTree::new();
    let root = t.root();
    t.add_file(root, b"big.bin", bytes(content::BIG_SEED, content::BIG_LEN))
        .unwrap();
    let lib = t.add_dir(root, b"lib").unwrap();
    t.add_file(lib, b"mod.py", content::UTIL_PY.to_vec())
        .unwrap();
    t.add_file(root, b"note.txt", note.to_vec()).unwrap();
    t.add_file(root, extra, extra.to_vec()).unwrap();
    t.build(opts).expect("build update image")
}
