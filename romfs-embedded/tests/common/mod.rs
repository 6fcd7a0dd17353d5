//! Shared helpers: deterministic pseudo-random data and realistic images.
#![allow(dead_code)]

use romfs_format::write::{MemoryTree, MetadataSpec, Options};

pub mod ab;

pub use romfs_testkit::Rng;

/// The files of a realistic app: (path, contents). `version` changes the
/// contents of one small file only.
pub fn app_files(seed: u64, total_kib: usize, version: u32) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut files = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < total_kib * 1024 {
        let len = 200 + rng.below(5000) as usize;
        let dir = ["lib", "app", "drivers"][i % 3];
        let mut data = b"M\x06\x00\x1f".to_vec();
        data.extend(rng.bytes(len));
        files.push((format!("{dir}/mod{i}.mpy"), data));
        size += len;
        i += 1;
    }
    files.push((
        "config.py".to_string(),
        format!("VERSION = {version}\n").into_bytes(),
    ));
    files
}

pub fn build(files: &[(String, Vec<u8>)], generation: u64, opts: Option<Options>) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let mut dirs: Vec<(String, romfs_format::write::NodeRef)> = Vec::new();
    for (path, data) in files {
        let mut parent = tree.root();
        let parts: Vec<&str> = path.split('/').collect();
        let mut prefix = String::new();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            parent = match dirs.iter().find(|(p, _)| *p == prefix) {
                Some((_, n)) => *n,
                None => {
                    let n = tree.add_dir(parent, part.as_bytes()).unwrap();
                    dirs.push((prefix.clone(), n));
                    n
                }
            };
        }
        tree.add_file(parent, parts[parts.len() - 1].as_bytes(), data.clone())
            .unwrap();
    }
    let opts = opts.unwrap_or_else(|| Options {
        metadata: Some(MetadataSpec {
            generation: Some(generation),
            ..MetadataSpec::default()
        }),
        ..Options::default()
    });
    tree.build(&opts).unwrap()
}

/// A realistic image of about `kib` KiB.
pub fn app_image(seed: u64, kib: usize, version: u32) -> Vec<u8> {
    build(&app_files(seed, kib, version), version as u64, None)
}

/// The image's identity, as a server would compute it from the image file.
pub fn identity(image: &[u8]) -> u32 {
    romfs_format::Image::parse(image).unwrap().identity()
}

/// The states an interrupted erase or write is left in, for power-cut tests.
pub fn partials(i: u64) -> [romfs_embedded::sim::Partial; 5] {
    use romfs_embedded::sim::Partial;
    [
        Partial::Nothing,
        Partial::Prefix { num: 1, den: 3 },
        Partial::Prefix { num: 2, den: 3 },
        Partial::RandomBits(0x5eed ^ i),
        Partial::Everything,
    ]
}

/// The image an A/B flash mounts from its contents alone (mapped, fully
/// verified, without counting a boot).
pub fn mounted_ab(contents: &[u8], layout: &romfs_embedded::AbLayout) -> Option<Vec<u8>> {
    let verify = romfs_embedded::Verify::Full;
    let (_, fs) = romfs_embedded::mapped::mount_ab(contents, layout, verify).ok()?;
    Some(fs.image().bytes().to_vec())
}
