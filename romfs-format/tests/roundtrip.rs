//! Property tests: random trees built in each layout read back identically,
//! verify clean, and honour alignment and sharing.

mod common;

use common::{add_all, read_back, sorted, Entry};
use proptest::prelude::*;
use romfs_format::write::{MemoryTree, Options};
use romfs_format::{Checksum, Image, Node};

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short ASCII names, sometimes long ones (multi-byte name varuints).
    prop_oneof![
        8 => proptest::collection::vec(prop_oneof![b'a'..=b'z', b'0'..=b'9', Just(b'_'), Just(b'.')], 1..12),
        1 => proptest::collection::vec(b'a'..=b'z', 120..300),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..200),
        // Sizes that make 1-, 2- and 3-byte varuints and their boundaries.
        1 => (prop_oneof![Just(127usize), Just(128), Just(16383), Just(16384), 16_000usize..20_000], any::<u8>())
            .prop_map(|(n, b)| vec![b; n]),
        1 => Just(b"shared contents, stored once in the default layout".to_vec()),
    ]
}

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    let leaf = (name(), contents()).prop_map(|(n, c)| Entry::File(n, c));
    let tree = leaf.prop_recursive(6, 48, 8, |inner| {
        prop_oneof![
            (name(), contents()).prop_map(|(n, c)| Entry::File(n, c)),
            (name(), proptest::collection::vec(inner, 0..8))
                .prop_map(|(n, c)| Entry::Dir(n, dedup(c))),
        ]
    });
    proptest::collection::vec(tree, 0..10).prop_map(dedup)
}

/// Drop later entries whose names repeat in a directory.
fn dedup(entries: Vec<Entry>) -> Vec<Entry> {
    let mut seen = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter(|e| {
            seen.insert(match e {
                Entry::Dir(n, _) | Entry::File(n, _) => n.clone(),
            })
        })
        .collect()
}

fn check_layout(image: &Image<'_>, align: usize) {
    let mut stack = vec![image.root()];
    while let Some(dir) = stack.pop() {
        for e in dir.entries() {
            match e.unwrap() {
                Node::Dir(d) => stack.push(d),
                Node::File(f) if !f.is_empty() => {
                    assert_eq!(
                        f.data_offset() % align,
                        0,
                        "{:?} misaligned",
                        String::from_utf8_lossy(f.name())
                    )
                }
                Node::File(_) => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_layout_round_trips(entries in entries(), align_log in 0u32..7, write_size in 1u32..=32) {
        let mut tree = MemoryTree::new();
        let root = tree.root();
        add_all(&mut tree, root, &entries);
        let expected = sorted(&entries);

        let default = Options { align: 1 << align_log, ..Options::default() };
        let header_safe = Options { header_write_size: Some(write_size), ..default.clone() };
        for opts in [Options::mpremote(), default.clone(), Options { dedup: false, checksum: false, metadata: None, ..default.clone() }, header_safe] {
            let bytes = tree.build(&opts).unwrap();
            prop_assert_eq!(bytes.len() % 2, 0);
            let image = Image::parse(&bytes).unwrap();
            let summary = image.verify(|f| panic!("{f}"));
            prop_assert!(summary.is_clean());
            prop_assert_eq!(read_back(&image), expected.clone());
            if opts.layout == romfs_format::write::Layout::Default {
                check_layout(&image, opts.align as usize);
                prop_assert_eq!(matches!(image.checksum(), Checksum::Valid(_)), opts.checksum);
            }
            if let Some(w) = opts.header_write_size {
                let w = w as usize;
                prop_assert!(image.is_header_safe(w));
                if w > 3 {
                    prop_assert!(bytes[3..w].iter().all(|&b| b == 0x80));
                    prop_assert_eq!(
                        image.payload_offset(),
                        romfs_format::write::header_length_width(w as u32) + 3
                    );
                }
            }
            // Deterministic: building again gives the same bytes.
            prop_assert_eq!(tree.build(&opts).unwrap(), bytes);
        }
    }

    #[test]
    fn lookup_finds_every_path(entries in entries()) {
        let mut tree = MemoryTree::new();
        let root = tree.root();
        add_all(&mut tree, root, &entries);
        let bytes = tree.build(&Options::default()).unwrap();
        let image = Image::parse(&bytes).unwrap();
        let mut stack: Vec<(Vec<u8>, &Entry)> = entries.iter().map(|e| (Vec::new(), e)).collect();
        while let Some((prefix, e)) = stack.pop() {
            let (name, is_dir) = match e { Entry::Dir(n, _) => (n, true), Entry::File(n, _) => (n, false) };
            let mut path = prefix.clone();
            if !path.is_empty() { path.push(b'/'); }
            path.extend_from_slice(name);
            let found = image.lookup(&path).unwrap().expect("path exists");
            prop_assert_eq!(found.name(), name.as_slice());
            prop_assert_eq!(found.is_dir(), is_dir);
            let mut slashed = b"/".to_vec();
            slashed.extend_from_slice(&path);
            prop_assert_eq!(image.lookup(&slashed).unwrap().map(|n| n.id()), Some(found.id()));
            prop_assert_eq!(image.node(found.id()).unwrap(), found);
            match e {
                Entry::File(_, data) => {
                    prop_assert_eq!(found.as_file().unwrap().data(), data.as_slice());
                    let mut beyond = path.clone();
                    beyond.extend_from_slice(b"/x");
                    prop_assert!(image.lookup(&beyond).unwrap().is_none());
                }
                Entry::Dir(_, children) => stack.extend(children.iter().map(|c| (path.clone(), c))),
            }
        }
        prop_assert!(image.lookup(b"no/such/path").unwrap().is_none());
        prop_assert_eq!(image.lookup(b"").unwrap().map(|n| n.id()), Some(0));
        prop_assert_eq!(image.lookup(b"/").unwrap().map(|n| n.id()), Some(0));
    }
}

#[test]
fn sample_tree_aligns_and_shares() {
    let tree = common::sample_tree();
    let bytes = tree.build(&Options::default()).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert!(image.verify(|f| panic!("{f}")).is_clean());
    let a = image
        .lookup(b"assets/a.bin")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap();
    let b = image
        .lookup(b"assets/b.bin")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap();
    assert!(!a.is_indirect() && b.is_indirect(), "second copy is shared");
    assert_eq!(a.data_offset(), b.data_offset());
    let mut plain = romfs_format::write::Tree::new();
    let root = plain.root();
    for (name, class) in [(&b"x"[..], 7), (b"y", 7), (b"z", 8)] {
        let spec = romfs_format::write::FileSpec {
            len: 3000,
            source: 0,
            content: Some(class),
            align: None,
        };
        plain.add_file(root, name, spec).unwrap();
    }
    let stats = romfs_format::write::Plan::new(&plain, &Options::default())
        .unwrap()
        .stats();
    assert_eq!(
        (
            stats.dedup_files,
            stats.dedup_saved,
            stats.files,
            stats.bytes_in
        ),
        (1, 3000, 3, 9000)
    );
    let model = image
        .lookup(b"/assets/model.tflite")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap();
    assert_eq!(model.data_offset() % 16, 0);
    let md = image.metadata().unwrap().unwrap();
    assert!(md.tool.unwrap().starts_with(b"romfs "));
    assert!(matches!(image.checksum(), Checksum::Valid(_)));
    // Sharing makes the image smaller than mpremote's despite alignment.
    let mp = tree.build(&Options::mpremote()).unwrap();
    assert!(bytes.len() < mp.len(), "{} vs {}", bytes.len(), mp.len());
}

#[test]
fn metadata_fields_round_trip() {
    let tree = common::sample_tree();
    let opts = Options {
        metadata: Some(romfs_format::write::MetadataSpec {
            tool: Some("t".into()),
            label: Some("release-1".into()),
            generation: Some(42),
            build_time: Some(1_700_000_000),
            product: Some("board-x".into()),
        }),
        ..Options::default()
    };
    let bytes = tree.build(&opts).unwrap();
    let md = Image::parse(&bytes).unwrap().metadata().unwrap().unwrap();
    assert_eq!(md.label, Some(&b"release-1"[..]));
    assert_eq!(md.generation, Some(42));
    assert_eq!(md.build_time, Some(1_700_000_000));
    assert_eq!(md.tool, Some(&b"t"[..]));
    assert_eq!(md.product, Some(&b"board-x"[..]));
}

#[test]
fn every_alignment_costs_at_most_align_minus_one_per_file() {
    for align in [1u32, 2, 4, 8, 16, 64, 256, 4096] {
        let tree = common::sample_tree();
        let opts = Options {
            align,
            ..Options::default()
        };
        let unaligned = tree
            .build(&Options {
                align: 1,
                ..opts.clone()
            })
            .unwrap();
        let aligned = tree.build(&opts).unwrap();
        let image = Image::parse(&aligned).unwrap();
        assert!(image.verify(|f| panic!("align {align}: {f}")).is_clean());
        // model.tflite has its own rule (16), so check the smaller of the two.
        check_layout(&image, align.min(16) as usize);
        // 5 non-empty stored files (one shared), each pays < max(align, 16).
        let budget = 5 * (align.max(16) as usize) + 8;
        assert!(
            aligned.len() <= unaligned.len() + budget,
            "align {align}: {} vs {}",
            aligned.len(),
            unaligned.len()
        );
    }
}

#[test]
fn writer_rejects_bad_names() {
    // Not UTF-8: MicroPython could not list the directory holding it.
    for bad in [&b""[..], b"a/b", b"a\0b", b".", b"..", b"\xff"] {
        let mut t = MemoryTree::new();
        let root = t.root();
        t.add_file(root, bad, vec![1]).unwrap();
        assert!(t.build(&Options::default()).is_err(), "{bad:?} accepted");
    }
    let mut t = MemoryTree::new();
    let root = t.root();
    t.add_file(root, b"same", vec![1]).unwrap();
    t.add_dir(root, b"same").unwrap();
    let err = t.build(&Options::default()).unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    let mut t = MemoryTree::new();
    let root = t.root();
    t.add_file(root, "caf\u{e9}".as_bytes(), vec![1]).unwrap();
    assert!(
        t.build(&Options::mpremote()).is_err(),
        "mpremote layout is ASCII only"
    );
    assert!(t.build(&Options::default()).is_ok());
    assert!(t
        .build(&Options {
            align: 3,
            ..Options::default()
        })
        .is_err());
}

/// The fuzz seeds in `fuzz/seeds` are sample images in both layouts; this
/// keeps them in step with the writer (set ROMFS_WRITE_SEEDS=1 to refresh).
#[test]
fn fuzz_seeds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let tree = common::sample_tree();
    let small = {
        let mut t = MemoryTree::new();
        let root = t.root();
        let d = t.add_dir(root, b"a").unwrap();
        t.add_file(d, b"b", b"xyzxyzxyzxyzxyzxyz".to_vec()).unwrap();
        t.add_file(d, b"c", b"xyzxyzxyzxyzxyzxyz".to_vec()).unwrap();
        t
    };
    let seeds = [
        (
            "sample-default.bin",
            tree.build(&Options::default()).unwrap(),
        ),
        (
            "sample-mpremote.bin",
            tree.build(&Options::mpremote()).unwrap(),
        ),
        (
            "small-default.bin",
            small.build(&Options::default()).unwrap(),
        ),
        (
            "small-mpremote.bin",
            small.build(&Options::mpremote()).unwrap(),
        ),
    ];
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if std::env::var_os("ROMFS_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{name} is stale: rerun with ROMFS_WRITE_SEEDS=1"
        );
    }
}

#[test]
fn sizes_needing_four_byte_varuints_round_trip() {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let big = tree.add_dir(root, b"big").unwrap();
    for (i, len) in [(1usize << 21) - 1, 1 << 21, (1 << 21) + 3]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|k| (k % 253) as u8 ^ i as u8).collect();
        tree.add_file(big, format!("f{i}").as_bytes(), data)
            .unwrap();
    }
    tree.add_dir(root, b"empty").unwrap();
    for opts in [
        Options::mpremote(),
        Options::default(),
        Options {
            align: 4096,
            ..Options::default()
        },
    ] {
        let bytes = tree.build(&opts).unwrap();
        let image = Image::parse(&bytes).unwrap();
        assert!(image.verify(|f| panic!("{f}")).is_clean());
        // The top-level and directory lengths need 4-byte varuints here.
        assert!(image.payload_offset() >= 7);
        for i in 0..3 {
            let f = image
                .lookup(format!("big/f{i}").as_bytes())
                .unwrap()
                .unwrap()
                .as_file()
                .unwrap();
            assert!(f
                .data()
                .iter()
                .enumerate()
                .all(|(k, &b)| b == (k % 253) as u8 ^ i as u8));
            if opts.layout == romfs_format::write::Layout::Default {
                assert_eq!(f.data_offset() % opts.align as usize, 0);
            }
        }
    }
}

#[test]
fn restamp_checksum_matches_changed_bytes_and_leaves_unchecksummed_images() {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    tree.add_file(root, b"a.txt", b"hello".to_vec()).unwrap();
    let mut image = tree.build(&Options::default()).unwrap();
    let at = Image::parse(&image)
        .unwrap()
        .lookup(b"a.txt")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap()
        .data_offset();
    image[at] = b'j';
    assert!(matches!(
        Image::parse(&image).unwrap().checksum(),
        Checksum::Mismatch { .. }
    ));
    let crc = romfs_format::write::restamp_checksum(&mut image).unwrap();
    assert_eq!(
        Image::parse(&image).unwrap().checksum(),
        Checksum::Valid(crc.unwrap())
    );

    let mut plain = tree.build(&Options::mpremote()).unwrap();
    let before = plain.clone();
    assert_eq!(romfs_format::write::restamp_checksum(&mut plain), Ok(None));
    assert_eq!(plain, before);
    assert!(romfs_format::write::restamp_checksum(&mut [0u8; 8]).is_err());
}
