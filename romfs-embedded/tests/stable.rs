//! Stable-layout images (FORMAT.md 2.3: every file's data an indirect
//! record into a data area that sits in a padding record tagged `RFSD`,
//! with free space) on a device: the streaming reader over simulated flash
//! lists, opens and reads every file from where it lies, the mapped reader
//! hands out every file in place, and A/B updates (full and delta) from one
//! stable generation to the next install exactly the new image while
//! programming only the sectors that differ from what the slot held.

mod common;

use std::collections::BTreeMap;

use common::{app_files, identity};
use embedded_storage::nor_flash::ReadNorFlash;
use romfs_embedded::sim::{SimError, SimFlash};
use romfs_embedded::slots::{self, AbLayout, Verify};
use romfs_embedded::update::{Report, UpdateError, Updater};
use romfs_embedded::{mapped, Checksum, FlashFs, MappedFs, NodeInfo, Region};
use romfs_format::delta;
use romfs_format::ext::extension;
use romfs_format::write::{MemoryTree, MetadataSpec, Options, StableOptions, TAG_DATA_AREA};
use romfs_format::Image;

const E: usize = 4096;
const SLOT: u32 = 128 * 1024;
type Flash = SimFlash<1, 4, E>;
type Files = Vec<(String, Vec<u8>)>;

fn layout() -> AbLayout {
    AbLayout::for_flash::<Flash>(Region::new(0, SLOT), Region::new(SLOT, SLOT)).unwrap()
}

fn tree_of(files: &Files) -> MemoryTree {
    romfs_testkit::gen::tree_of_paths(files.iter().map(|(p, d)| (p, d)), |_| None)
}

/// The stable image of `files`; with a base, it must have been used.
fn stable(files: &Files, base: Option<&[u8]>, generation: u64) -> Vec<u8> {
    let opts = Options {
        metadata: Some(MetadataSpec {
            generation: Some(generation),
            ..MetadataSpec::default()
        }),
        ..Options::default()
    };
    let image = tree_of(files)
        .build_stable(&opts, &StableOptions::default(), base)
        .unwrap();
    if base.is_some() {
        assert_eq!(image.report.fresh, None, "the base was not used");
    }
    image.bytes
}

/// The shape that makes an image a stable one: a data-area record, and
/// every non-empty file's data held by an indirect record.
fn assert_stable_shape(image: &[u8]) {
    let parsed = Image::parse(image).unwrap();
    assert!(
        parsed
            .records()
            .filter_map(Result::ok)
            .any(|r| r.kind == 1 && extension(&r).is_some_and(|(t, _)| t == TAG_DATA_AREA)),
        "no data-area record"
    );
    let mut reader = parsed.reader();
    let mut stack = vec![reader.root()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        let mut entries = reader.entries(&dir);
        while let Some(node) = entries.next(&mut reader) {
            let node = node.unwrap();
            if node.is_dir() {
                stack.push(node);
            } else if node.size() > 0 {
                assert!(node.is_indirect(), "file {} is not indirect", node.id());
                files += 1;
            }
        }
    }
    assert!(files > 10);
}

/// Every file through the streaming reader: path -> contents, read in
/// 37-byte pieces from the offset the file's record gives. Also checks
/// that lookup by path finds each one, and that the image's checksum is
/// valid when read from flash.
fn read_all<F: ReadNorFlash, const N: usize>(fs: &mut FlashFs<F, N>) -> BTreeMap<String, Vec<u8>>
where
    F::Error: std::fmt::Debug,
{
    fn walk<F: ReadNorFlash, const N: usize>(
        fs: &mut FlashFs<F, N>,
        dir: &NodeInfo,
        prefix: &str,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) where
        F::Error: std::fmt::Debug,
    {
        let children: Vec<NodeInfo> = fs.entries(dir).map(|e| e.unwrap()).collect();
        for child in children {
            let mut name = vec![0u8; child.name_len()];
            let name =
                String::from_utf8(fs.read_name(&child, &mut name).unwrap().to_vec()).unwrap();
            let path = format!("{prefix}{name}");
            if child.is_dir() {
                walk(fs, &child, &format!("{path}/"), out);
                continue;
            }
            let found = fs.lookup(path.as_bytes()).unwrap().unwrap();
            assert_eq!(found, child, "lookup of {path}");
            let mut data = Vec::new();
            let mut piece = [0u8; 37];
            loop {
                let n = fs.read_file(&child, data.len(), &mut piece).unwrap();
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&piece[..n]);
            }
            assert_eq!(data.len(), child.size(), "{path}");
            out.insert(path, data);
        }
    }
    assert!(matches!(fs.checksum().unwrap(), Checksum::Valid(_)));
    let mut out = BTreeMap::new();
    let root = fs.root();
    walk(fs, &root, "", &mut out);
    out
}

fn as_map(files: &Files) -> BTreeMap<String, Vec<u8>> {
    files.iter().cloned().collect()
}

/// Every file of `files` opened through the mapped reader is a slice of
/// `device` at the offset its record gives: read in place, not copied.
fn assert_mapped_in_place(fs: &MappedFs<'_>, device: &[u8], files: &Files) {
    let image = fs.image();
    let base = image.bytes().as_ptr() as usize - device.as_ptr() as usize;
    for (path, data) in files {
        let slice = fs.open(path.as_bytes()).unwrap();
        assert_eq!(slice, &data[..], "{path}");
        if data.is_empty() {
            continue;
        }
        let Some(romfs_format::Node::File(f)) = fs.lookup(path.as_bytes()).unwrap() else {
            panic!("{path} is not a file");
        };
        let at = slice.as_ptr() as usize - device.as_ptr() as usize;
        assert_eq!(at, base + f.data_offset(), "{path} is not read in place");
        assert_eq!(&device[at..at + data.len()], &data[..]);
    }
}

/// Erase blocks whose bytes differ.
fn blocks_changed(old: &[u8], new: &[u8]) -> u32 {
    let n = old.len().max(new.len()).div_ceil(E);
    (0..n)
        .filter(|&i| {
            let r = |b: &[u8]| b.get(i * E..((i + 1) * E).min(b.len())).map(<[u8]>::to_vec);
            r(old) != r(new)
        })
        .count() as u32
}

/// The app at generations 1 to 4: one module grown by 1 KiB and another
/// edited in place; then one removed, one renamed and one added; then the
/// config edited.
fn generations() -> Vec<Files> {
    let g1: Files = app_files(21, 60, 1);
    let mut g2 = g1.clone();
    g2[4].1.extend(vec![b'+'; 1024]);
    g2[9].1[50] ^= 0x5a;
    let mut g3 = g2.clone();
    g3.remove(12);
    g3[3].0 = "lib/renamed.mpy".into();
    g3.push(("drivers/new.mpy".into(), vec![7; 2000]));
    let mut g4 = g3.clone();
    let config = g4.iter().position(|(p, _)| p == "config.py").unwrap();
    g4[config].1 = b"VERSION = 4\n".to_vec();
    vec![g1, g2, g3, g4]
}

/// The stable images of [`generations`], each built on the one before.
fn images(gens: &[Files]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (k, files) in gens.iter().enumerate() {
        let base = out.last().map(Vec::as_slice);
        out.push(stable(files, base, k as u64 + 1));
    }
    out
}

#[test]
fn stable_images_are_read_from_flash_and_in_place() {
    let gens = generations();
    for (files, image) in gens.iter().zip(images(&gens)) {
        assert_stable_shape(&image);
        let mut sim = Flash::new(image.len().div_ceil(E) * E);
        sim.load(0, &image);
        // Streaming, through a small buffer, and through a buffer as large
        // as an erase block.
        let mut fs = FlashFs::<_, 64>::mount(&mut sim).unwrap();
        assert_eq!(fs.image_len(), image.len());
        assert!(read_all(&mut fs) == as_map(files));
        let mut fs = FlashFs::<_, E>::mount(&mut sim).unwrap();
        assert!(read_all(&mut fs) == as_map(files));
        let device = sim.contents();
        let fs = MappedFs::mount(device).unwrap();
        assert_mapped_in_place(&fs, device, files);
    }
}

/// Full A/B update with the image cut into `chunk`-byte pieces.
fn install(flash: &mut Flash, image: &[u8], chunk: usize) -> Report {
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut *flash, layout(), Verify::Full, &mut buf).unwrap();
    image.chunks(chunk).try_for_each(|c| up.write(c)).unwrap();
    up.finish(None).unwrap()
}

/// Delta A/B update from the running slot, the patch cut into pieces.
fn install_delta(
    flash: &mut Flash,
    patch: &[u8],
    chunk: usize,
    expected: u32,
) -> Result<Report, UpdateError<SimError>> {
    let mut buf = vec![0u8; E];
    let mut update = Updater::begin_ab(&mut *flash, layout(), Verify::Full, &mut buf)?;
    let mut up = update.delta()?;
    patch.chunks(chunk).try_for_each(|c| up.write(c))?;
    up.finish(Some(expected))
}

/// What the device mounts after a reboot, both ways, equals `image` and
/// reads back as `files`.
fn check_device(flash: &mut Flash, image: &[u8], files: &Files) {
    flash.reboot();
    let contents = flash.contents().to_vec();
    let (info, fs) = mapped::mount_ab(&contents, &layout(), Verify::Full).unwrap();
    assert_eq!(fs.image().bytes(), image);
    assert_mapped_in_place(&fs, &contents, files);
    let (again, mut fs) = slots::mount_ab::<_, 64>(&mut *flash, &layout(), Verify::Full).unwrap();
    assert_eq!(again, info);
    assert!(read_all(&mut fs) == as_map(files));
}

#[test]
fn ab_updates_between_stable_generations_program_only_what_differs() {
    let gens = generations();
    let imgs = images(&gens);
    assert!(imgs
        .iter()
        .all(|i| i.len() <= layout().image_region(0).len as usize));
    let mut flash = Flash::new(2 * SLOT as usize);

    // Generation 1 in both slots (A, then B), as after a first deploy.
    install(&mut flash, &imgs[0], 1000);
    install(&mut flash, &imgs[0], 777);
    check_device(&mut flash, &imgs[0], &gens[0]);

    // Generation 2 into A, which holds its base: a grown and an edited
    // module change a few sectors, and only those are programmed.
    let changed = blocks_changed(&imgs[0], &imgs[1]);
    assert!(changed <= 6, "{changed} blocks differ");
    let r = install(&mut flash, &imgs[1], 4096);
    assert_eq!(r.slot.unwrap().index, 0);
    assert_eq!(r.image_id, identity(&imgs[1]));
    assert_eq!(r.stats.sectors_programmed, changed, "{:?}", r.stats);
    check_device(&mut flash, &imgs[1], &gens[1]);

    // Generation 3 by delta from A into B (which holds generation 1).
    let patch = delta::diff(&imgs[1], &imgs[2]);
    assert!(
        patch.len() * 8 < imgs[2].len(),
        "{} byte patch",
        patch.len()
    );
    let r = install_delta(&mut flash, &patch, 61, identity(&imgs[2])).unwrap();
    assert_eq!(r.slot.unwrap().index, 1);
    assert!(
        r.stats.sectors_programmed <= blocks_changed(&imgs[0], &imgs[2]),
        "{:?}",
        r.stats
    );
    assert!(r.stats.sectors_skipped > 0);
    check_device(&mut flash, &imgs[2], &gens[2]);

    // Generation 4 by delta from B into A (generation 2), in one piece.
    let patch = delta::diff(&imgs[2], &imgs[3]);
    let r = install_delta(&mut flash, &patch, patch.len(), identity(&imgs[3])).unwrap();
    assert_eq!(r.slot.unwrap().index, 0);
    assert!(r.stats.sectors_programmed <= blocks_changed(&imgs[1], &imgs[3]));
    check_device(&mut flash, &imgs[3], &gens[3]);

    // A patch made against another generation is refused, and the device
    // keeps running generation 4.
    let wrong = delta::diff(&imgs[1], &imgs[2]);
    assert!(install_delta(&mut flash, &wrong, 500, identity(&imgs[2])).is_err());
    check_device(&mut flash, &imgs[3], &gens[3]);
}
