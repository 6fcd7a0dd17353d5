//! Signed test images, as `romfs build --sign` makes them, written into
//! `OUT_DIR` with the host crates: two generations for one product, one
//! for another product, and the public key firmware would compile in.

use std::path::Path;

use romfs_format::write::{MemoryTree, MetadataSpec, Options, SignatureSpec};
use romfs_sign::{sign, SigningKey};

/// The product the firmware trusts.
const PRODUCT: &str = "bench-board";

fn image(key: &SigningKey, product: &str, generation: u32) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let lib = tree.add_dir(root, b"lib").unwrap();
    let blob: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ generation as u8)
        .collect();
    tree.add_file(lib, b"blob.bin", blob).unwrap();
    let note = format!("generation {generation}\n");
    tree.add_file(root, b"note.txt", note.into_bytes()).unwrap();
    let mut bytes = tree
        .build(&Options {
            metadata: Some(MetadataSpec {
                product: Some(product.into()),
                generation: Some(generation.into()),
                ..MetadataSpec::default()
            }),
            signature: Some(SignatureSpec {
                product: product.into(),
                generation,
            }),
            ..Options::default()
        })
        .unwrap();
    sign(&mut bytes, key).unwrap();
    bytes
}

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    println!("cargo:rerun-if-changed=build.rs");
    let key = SigningKey::from_bytes(&[0x42; 32]);
    std::fs::write(out.join("key.bin"), key.public_key().to_bytes()).unwrap();
    std::fs::write(out.join("product.txt"), PRODUCT).unwrap();
    let v1 = image(&key, PRODUCT, 1);
    let manifest = &v1[v1.len() - romfs_format::signature::SIGNED_MANIFEST_LEN..];
    std::fs::write(out.join("v1.manifest"), manifest).unwrap();
    std::fs::write(out.join("v1.img"), &v1).unwrap();
    let v2 = image(&key, PRODUCT, 2);
    let patch = romfs_format::delta::diff(&v1, &v2);
    std::fs::write(out.join("v1-v2.delta"), patch).unwrap();
    std::fs::write(out.join("v2.img"), v2).unwrap();
    std::fs::write(out.join("other.img"), image(&key, "other-board", 3)).unwrap();
}
