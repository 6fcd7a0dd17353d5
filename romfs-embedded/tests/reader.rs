//! The streaming reader gives exactly romfs-format's answers: same nodes,
//! same listings, same contents, same errors at the same offsets, for random
//! images (intact and corrupted), random paths, several buffer and
//! READ_SIZE choices, and over a byte-addressable `ReadStorage`.

mod common;

use embedded_storage::nor_flash::ReadNorFlash;
use proptest::prelude::*;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::storage::StorageFlash;
use romfs_embedded::{Error, FlashError, FlashFs, NodeInfo};
use romfs_format::write::{MemoryTree, Options};
use romfs_format::{Image, Node};

/// A byte-addressable `ReadStorage` over bytes in RAM that counts reads
/// and refuses reads past its end.
#[derive(Debug)]
struct Bytes {
    data: Vec<u8>,
    reads: u32,
}

impl embedded_storage::ReadStorage for Bytes {
    type Error = &'static str;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let src = self
            .data
            .get(offset as usize..offset as usize + bytes.len())
            .ok_or("past the end")?;
        bytes.copy_from_slice(src);
        self.reads += 1;
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

fn flash_of<const R: usize>(bytes: &[u8]) -> SimFlash<R, R, 256> {
    let cap = bytes.len().div_ceil(256).max(1) * 256;
    let mut sim = SimFlash::<R, R, 256>::new(cap);
    sim.load(0, bytes);
    sim
}

fn same_node<F: ReadNorFlash, const N: usize>(fs: &mut FlashFs<F, N>, a: &NodeInfo, b: &Node) {
    assert_eq!(a.id(), b.id());
    assert_eq!(a.is_dir(), b.is_dir());
    assert_eq!(a.size(), b.size());
    let mut name = vec![0u8; a.name_len()];
    assert_eq!(fs.read_name(a, &mut name).unwrap(), b.name());
    if let Node::File(f) = b {
        assert_eq!(a.data_offset(), f.data_offset());
        // Read in odd-sized pieces from odd offsets.
        let mut got = Vec::new();
        let mut piece = [0u8; 7];
        loop {
            let n = fs.read_file(a, got.len(), &mut piece).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
        }
        assert_eq!(got, f.data());
        let mut big = vec![0u8; f.len() + 3];
        assert_eq!(fs.read_file(a, 0, &mut big).unwrap(), f.len());
        assert_eq!(&big[..f.len()], f.data());
    }
}

fn same_listing<F: ReadNorFlash, const N: usize>(fs: &mut FlashFs<F, N>, a: &NodeInfo, b: &Node) {
    let Node::Dir(d) = b else { return };
    let want: Vec<_> = d.entries().collect();
    let got: Vec<_> = fs.entries(a).collect();
    assert_eq!(got.len(), want.len(), "listing length");
    for (g, w) in got.iter().zip(want.iter()) {
        match (g, w) {
            (Ok(g), Ok(w)) => same_node(fs, g, w),
            (Err(Error::Format(g)), Err(w)) => assert_eq!(g, w),
            other => panic!("listing differs: {other:?}"),
        }
    }
}

/// Every lookup and listing agrees; returns how many paths were found.
fn check<const R: usize, const N: usize>(bytes: &[u8], paths: &[Vec<u8>]) -> usize {
    let sim = flash_of::<R>(bytes);
    let contents = sim.contents().to_vec();
    check_on::<_, N>(sim, &contents, paths)
}

/// The same over a `ReadStorage` holding what the simulated flash holds
/// (`exact`: just `bytes`, so reads near the end must stay inside them).
fn check_storage<const N: usize>(bytes: &[u8], paths: &[Vec<u8>], exact: bool) -> usize {
    let data = if exact {
        bytes.to_vec()
    } else {
        flash_of::<1>(bytes).contents().to_vec()
    };
    let storage = StorageFlash::new(Bytes {
        data: data.clone(),
        reads: 0,
    });
    check_on::<_, N>(storage, &data, paths)
}

fn check_on<F: ReadNorFlash, const N: usize>(
    flash: F,
    contents: &[u8],
    paths: &[Vec<u8>],
) -> usize {
    let image = Image::parse(contents);
    let mut fs = match (FlashFs::<_, N>::mount(flash), image) {
        (Ok(fs), Ok(img)) => {
            assert_eq!(fs.image_len(), img.len());
            (fs, img)
        }
        (Err(Error::Format(e)), Err(w)) => {
            assert_eq!(e, w);
            return 0;
        }
        (a, b) => panic!("mount differs: {:?} vs {:?}", a.err(), b.err()),
    };
    let (fs, image) = (&mut fs.0, fs.1);
    let mut found = 0;
    same_listing(fs, &fs.root(), &Node::Dir(image.root()));
    for path in paths {
        match (fs.lookup(path), image.lookup(path)) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some(a)), Ok(Some(b))) => {
                found += 1;
                same_node(fs, &a, &b);
                same_listing(fs, &a, &b);
            }
            (Err(Error::Format(a)), Err(b)) => assert_eq!(a, b, "path {path:?}"),
            (a, b) => panic!(
                "lookup of {:?} differs: {a:?} vs {b:?}",
                String::from_utf8_lossy(path)
            ),
        }
    }
    assert_eq!(fs.checksum().unwrap(), image.checksum());
    found
}

fn check_all(bytes: &[u8], paths: &[Vec<u8>]) -> usize {
    let a = check::<1, 8>(bytes, paths);
    assert_eq!(check::<4, 36>(bytes, paths), a);
    assert_eq!(check::<16, 512>(bytes, paths), a);
    assert_eq!(check_storage::<1>(bytes, paths, false), a);
    assert_eq!(check_storage::<100>(bytes, paths, false), a);
    check_storage::<7>(bytes, paths, true);
    a
}

fn tree_strategy() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let name = prop::collection::vec(prop::sample::select(b"abc-".to_vec()), 1..4);
    let path = prop::collection::vec(name, 1..4);
    let entry = (path, prop::collection::vec(any::<u8>(), 0..300));
    prop::collection::vec(entry, 0..20).prop_map(|entries| {
        entries
            .into_iter()
            .map(|(parts, data)| (parts.join(&b'/'), data))
            .collect()
    })
}

fn build(entries: &[(Vec<u8>, Vec<u8>)], opts: &Options) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut tree = MemoryTree::new();
    let mut dirs: Vec<(Vec<u8>, romfs_format::write::NodeRef)> = vec![(Vec::new(), tree.root())];
    let mut paths = Vec::new();
    for (path, data) in entries {
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        let mut parent = tree.root();
        let mut prefix = Vec::new();
        let mut ok = true;
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
            parent = match dirs.iter().find(|(p, _)| *p == prefix) {
                Some((_, n)) => *n,
                None => match tree.add_dir(parent, part) {
                    Ok(n) => {
                        dirs.push((prefix.clone(), n));
                        n
                    }
                    Err(_) => {
                        ok = false;
                        break;
                    }
                },
            };
        }
        if ok
            && tree
                .add_file(parent, parts[parts.len() - 1], data.clone())
                .is_ok()
        {
            paths.push(path.clone());
        }
    }
    for (d, _) in &dirs {
        paths.push(d.clone());
    }
    // Trees with duplicate names are refused by the writer.
    tree.build(opts).ok().map(|img| (img, paths))
}

fn query_paths(real: &[Vec<u8>], extra: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in real {
        out.push(p.clone());
        let mut slash = b"/".to_vec();
        slash.extend_from_slice(p);
        out.push(slash);
        let mut trailing = p.clone();
        trailing.push(b'/');
        out.push(trailing);
        let mut more = p.clone();
        more.extend_from_slice(b"/x");
        out.push(more);
        if p.len() > 1 {
            out.push(p[..p.len() - 1].to_vec());
        }
    }
    out.extend_from_slice(extra);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn same_answers_on_intact_images(
        entries in tree_strategy(),
        mpremote in any::<bool>(),
        align in prop::sample::select(vec![1u32, 4, 16]),
        extra in prop::collection::vec(prop::collection::vec(prop::sample::select(b"abc./".to_vec()), 0..8), 0..10),
    ) {
        let opts = if mpremote { Options::mpremote() } else { Options { align, ..Options::default() } };
        let built = build(&entries, &opts);
        prop_assume!(built.is_some());
        let (bytes, real) = built.unwrap();
        let paths = query_paths(&real, &extra);
        let found = check_all(&bytes, &paths);
        // Every real path is found (root counted through "").
        prop_assert!(found >= real.len());
    }

    #[test]
    fn same_answers_on_corrupted_images(
        entries in tree_strategy(),
        mpremote in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let opts = if mpremote { Options::mpremote() } else { Options::default() };
        let built = build(&entries, &opts);
        prop_assume!(built.is_some());
        let (mut bytes, real) = built.unwrap();
        for (at, v) in &flips {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        if let Some(t) = truncate {
            let n = t.index(bytes.len() + 1);
            bytes.truncate(n);
        }
        let paths = query_paths(&real, &[]);
        check_all(&bytes, &paths);
    }

    #[test]
    fn same_answers_on_random_bytes(mut bytes in prop::collection::vec(any::<u8>(), 0..400), paths in prop::collection::vec(prop::collection::vec(prop::sample::select(b"abc/\x01".to_vec()), 0..6), 0..10)) {
        if bytes.len() >= 4 && bytes[0] & 1 == 0 {
            // Often give it a valid header so the scanner gets to work.
            bytes[..3].copy_from_slice(&[0xd2, 0xcd, 0x31]);
            bytes[3] = (bytes.len() as u8).wrapping_sub(4) & 0x7f;
        }
        check_all(&bytes, &paths);
    }
}

#[test]
fn first_match_wins_and_kind_zero_stops() {
    // Hand-made payload: two files named "a" (first wins), then kind 0, then "b".
    let file = |name: &[u8], data: &[u8]| {
        let mut inner = vec![2u8, data.len() as u8];
        inner.extend_from_slice(data);
        let mut payload = vec![name.len() as u8];
        payload.extend_from_slice(name);
        payload.extend_from_slice(&inner);
        let mut rec = vec![5u8, payload.len() as u8];
        rec.extend_from_slice(&payload);
        rec
    };
    let mut payload = file(b"a", b"first");
    payload.extend(file(b"a", b"second"));
    payload.push(0);
    payload.extend(file(b"b", b"hidden"));
    let mut img = vec![0xd2, 0xcd, 0x31, payload.len() as u8];
    img.extend_from_slice(&payload);
    let mut fs = FlashFs::<_, 8>::mount(flash_of::<1>(&img)).unwrap();
    let a = fs.lookup(b"/a").unwrap().unwrap();
    let mut out = [0u8; 16];
    let n = fs.read_file(&a, 0, &mut out).unwrap();
    assert_eq!(&out[..n], b"first");
    assert!(fs.lookup(b"b").unwrap().is_none());
    assert_eq!(fs.entries(&fs.root()).count(), 2);
    assert_eq!(
        check_all(&img, &[b"a".to_vec(), b"b".to_vec(), b"/a".to_vec()]),
        2
    );
}

#[test]
fn realistic_image_and_read_costs() {
    let files = common::app_files(7, 40, 1);
    let img = common::build(&files, 1, None);
    let paths: Vec<Vec<u8>> = files.iter().map(|(p, _)| p.clone().into_bytes()).collect();
    assert_eq!(check_all(&img, &paths), paths.len());
    // Reads honour READ_SIZE: the simulator refuses misaligned reads, and
    // the buffer bounds every read but direct aligned bulk reads.
    let mut fs = FlashFs::<_, 64>::mount(flash_of::<16>(&img)).unwrap();
    fs.reset_stats();
    let node = fs.lookup(b"config.py").unwrap().unwrap();
    let s = fs.stats();
    assert!(s.reads > 0 && s.bytes <= s.reads * 64, "{s:?}");
    let mut out = [0u8; 32];
    let n = fs.read_file(&node, 0, &mut out).unwrap();
    assert_eq!(&out[..n], b"VERSION = 1\n");
}

#[test]
fn read_storage_mounts_and_reports_its_errors() {
    let (bytes, paths) = build(
        &[
            (b"a/b".to_vec(), b"hello".to_vec()),
            (b"c".to_vec(), vec![9; 1000]),
        ],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(check_storage::<16>(&bytes, &paths, true), paths.len());
    assert!(paths.len() >= 3);
    // Reads go straight to the storage, unaligned, never past its end.
    let mut fs = FlashFs::<_, 16>::mount(StorageFlash::new(Bytes {
        data: bytes.clone(),
        reads: 0,
    }))
    .unwrap();
    let c = fs.lookup(b"c").unwrap().unwrap();
    let mut out = [0u8; 3];
    assert_eq!(fs.read_file(&c, 997, &mut out).unwrap(), 3);
    assert_eq!(out, [9; 3]);
    assert!(fs.into_inner().storage().reads > 0);
    // A storage that fails: the error comes back as a flash error.
    #[derive(Debug)]
    struct Broken;
    impl embedded_storage::ReadStorage for Broken {
        type Error = u8;
        fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), u8> {
            Err(42)
        }
        fn capacity(&self) -> usize {
            1024
        }
    }
    assert_eq!(
        FlashFs::<_, 8>::mount(StorageFlash::new(Broken)).unwrap_err(),
        Error::Flash(FlashError::Device(42))
    );
    // The adapter itself refuses reads past the capacity.
    let mut s = StorageFlash::new(Bytes {
        data: vec![1, 2, 3],
        reads: 0,
    });
    let mut two = [0u8; 2];
    assert_eq!(
        ReadNorFlash::read(&mut s, 2, &mut two),
        Err(FlashError::OutOfBounds)
    );
    assert_eq!(
        ReadNorFlash::read(&mut s, u32::MAX, &mut two),
        Err(FlashError::OutOfBounds)
    );
    assert_eq!(ReadNorFlash::read(&mut s, 1, &mut two), Ok(()));
    assert_eq!(two, [2, 3]);
}
