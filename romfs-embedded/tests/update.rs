//! The updater: A/B and single-slot updates, skipping of unchanged sectors,
//! every error leaving the current image active, mounting in both modes.

mod common;

use common::{app_files, app_image, build, identity, Rng};
use romfs_embedded::mapped::{self, MappedFs};
use romfs_embedded::sim::{Partial, SimError, SimFlash};
use romfs_embedded::slots::{self, AbLayout, Verify};
use romfs_embedded::update::{Report, UpdateError, Updater};
use romfs_embedded::{Error, LayoutError};
use romfs_embedded::{FlashFs, Partition, Region};

const E: usize = 4096;
type Flash = SimFlash<1, 4, E>;

fn layout() -> AbLayout {
    AbLayout::new(
        Region::new(0, 64 * 1024),
        Region::new(64 * 1024, 64 * 1024),
        E,
        4,
    )
    .unwrap()
}

fn update_ab(
    flash: &mut Flash,
    image: &[u8],
    chunk: usize,
) -> Result<Report, UpdateError<SimError>> {
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(flash, layout(), Verify::Full, &mut buf)?;
    image.chunks(chunk.max(1)).try_for_each(|c| up.write(c))?;
    up.finish(None)
}

fn update_single(
    flash: &mut Flash,
    image: &[u8],
    chunk: usize,
) -> Result<Report, UpdateError<SimError>> {
    let mut buf = vec![0u8; 2 * E];
    let mut up = Updater::begin_single(flash, Region::new(0, 64 * 1024), &mut buf)?;
    image.chunks(chunk.max(1)).try_for_each(|c| up.write(c))?;
    up.finish(None)
}

/// The image mounted from flash alone, via the mapped path.
fn active_ab(flash: &Flash) -> Option<Vec<u8>> {
    let (info, fs) = mapped::mount_ab(flash.contents(), &layout(), Verify::CommitOnly).ok()?;
    assert_eq!(fs.image().len(), info.image_len as usize);
    Some(fs.image().bytes().to_vec())
}

#[test]
fn ab_update_mount_and_generations() {
    let mut flash = Flash::new(128 * 1024);
    assert!(active_ab(&flash).is_none());
    let v1 = app_image(1, 40, 1);
    let v2 = app_image(2, 40, 2);
    let r1 = update_ab(&mut flash, &v1, 1000).unwrap();
    assert_eq!(r1.slot.unwrap().index, 0);
    assert_eq!(r1.slot.unwrap().generation, 1);
    assert_eq!(active_ab(&flash).unwrap(), v1);
    let r2 = update_ab(&mut flash, &v2, 333).unwrap();
    assert_eq!(
        (r2.slot.unwrap().index, r2.slot.unwrap().generation),
        (1, 2)
    );
    assert_eq!(active_ab(&flash).unwrap(), v2);
    // The old slot is untouched and still valid, but older.
    assert_eq!(
        slots::slot_state(&mut flash.contents(), &layout(), 0, Verify::Full)
            .unwrap()
            .unwrap()
            .generation,
        1
    );
    // Third update goes back to A.
    let r3 = update_ab(&mut flash, &v1, 4096).unwrap();
    assert_eq!(
        (r3.slot.unwrap().index, r3.slot.unwrap().generation),
        (0, 3)
    );
    // Re-installing v1 into A, which already held it: no data sector is
    // touched, only the commit (1 erase + 1 write).
    assert_eq!(r3.stats.erases, 1, "{:?}", r3.stats);
    assert_eq!(r3.stats.writes, 1, "{:?}", r3.stats);
    assert_eq!(r3.stats.sectors_programmed, 0);
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // Non-mapped mount agrees, through a 64-byte buffer.
    let (info, mut fs) = slots::mount_ab::<_, 64>(&mut flash, &layout(), Verify::Full).unwrap();
    assert_eq!(info.index, 0);
    let node = fs.lookup(b"/config.py").unwrap().unwrap();
    let mut out = [0u8; 64];
    let n = fs.read_file(&node, 0, &mut out).unwrap();
    assert_eq!(&out[..n], b"VERSION = 1\n");
}

/// `update_ab` with the updater in a place of the caller's.
fn update_ab_in_place(
    flash: &mut Flash,
    image: &[u8],
    chunk: usize,
    expected_id: Option<u32>,
) -> Result<Report, UpdateError<SimError>> {
    let mut buf = vec![0u8; E];
    let mut place = None;
    let up = Updater::begin_ab_in(&mut place, flash, layout(), Verify::Full, &mut buf)?;
    image.chunks(chunk.max(1)).try_for_each(|c| up.write(c))?;
    up.finish_in_place(expected_id)
}

#[test]
fn an_updater_in_the_callers_place_does_what_the_by_value_one_does() {
    let v1 = app_image(1, 40, 1);
    let v2 = app_image(2, 40, 2);
    let (mut by_value, mut in_place) = (Flash::new(128 * 1024), Flash::new(128 * 1024));
    for (image, chunk) in [(&v1, 1000), (&v2, 333), (&v1, 4096), (&v1, 77)] {
        let a = update_ab(&mut by_value, image, chunk).unwrap();
        let b = update_ab_in_place(&mut in_place, image, chunk, Some(identity(image))).unwrap();
        assert_eq!(a, b);
        assert_eq!(by_value.contents(), in_place.contents());
        assert_eq!(active_ab(&in_place).unwrap(), *image);
    }
    // The identity the sender meant is checked as by `finish`.
    let err = update_ab_in_place(&mut in_place, &v2, 500, Some(identity(&v2) ^ 1)).unwrap_err();
    assert!(matches!(err, UpdateError::WrongImage { .. }), "{err:?}");
    assert_eq!(active_ab(&in_place).unwrap(), v1);
}

#[test]
fn an_updater_in_the_callers_place_ends_with_its_finish() {
    let v1 = app_image(3, 20, 1);
    let mut flash = Flash::new(128 * 1024);
    let mut buf = vec![0u8; E];
    let mut place = None;
    let up =
        Updater::begin_ab_in(&mut place, &mut flash, layout(), Verify::Full, &mut buf).unwrap();
    up.write(&v1).unwrap();
    let report = up.finish_in_place(None).unwrap();
    assert_eq!(report.slot.unwrap().generation, 1);
    // Finished: nothing more is written or committed.
    let before = up.stats();
    assert_eq!(up.write(&v1).unwrap_err(), UpdateError::Aborted);
    assert_eq!(up.finish_in_place(None).unwrap_err(), UpdateError::Aborted);
    assert_eq!(up.stats(), before);
    assert!(place.is_some());
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // A failed finish ends it too: a cut stream is not committed later.
    let v2 = app_image(4, 20, 2);
    let mut place = None;
    let up =
        Updater::begin_ab_in(&mut place, &mut flash, layout(), Verify::Full, &mut buf).unwrap();
    up.write(&v2[..v2.len() - 1]).unwrap();
    assert!(matches!(
        up.finish_in_place(None).unwrap_err(),
        UpdateError::Truncated { .. }
    ));
    assert_eq!(
        up.write(&v2[v2.len() - 1..]).unwrap_err(),
        UpdateError::Aborted
    );
    assert_eq!(up.finish_in_place(None).unwrap_err(), UpdateError::Aborted);
    assert_eq!(active_ab(&flash).unwrap(), v1);
}

#[test]
fn a_refused_begin_leaves_the_callers_place_as_it_was() {
    let mut flash = Flash::new(128 * 1024);
    let mut small = vec![0u8; 60];
    let mut place = None;
    let err = Updater::begin_ab_in(&mut place, &mut flash, layout(), Verify::Full, &mut small)
        .unwrap_err();
    assert_eq!(err, UpdateError::BufferTooSmall { needed: 64 });
    assert!(place.is_none());
    // A/B reads the slots through the caller's buffer: it must hold one
    // READ_SIZE unit.
    let mut wide = SimFlash::<128, 4, E>::new(128 * 1024);
    let mut buf = vec![0u8; 64];
    let err = Updater::begin_ab(&mut wide, layout(), Verify::Full, &mut buf).unwrap_err();
    assert_eq!(err, UpdateError::BufferTooSmall { needed: 128 });
    let mut buf = vec![0u8; 128];
    let mut up = Updater::begin_ab(&mut wide, layout(), Verify::Full, &mut buf).unwrap();
    let v1 = app_image(5, 20, 1);
    up.write(&v1).unwrap();
    up.finish(None).unwrap();
    let (_, fs) = mapped::mount_ab(wide.contents(), &layout(), Verify::Full).unwrap();
    assert_eq!(fs.image().bytes(), &v1[..]);
}

#[test]
fn one_changed_file_rewrites_only_its_sectors() {
    let mut flash = Flash::new(128 * 1024);
    let files = app_files(5, 40, 1);
    let mut files2 = files.clone();
    // Change a few bytes of one file in the middle, same length.
    let mid = files2.len() / 2;
    files2[mid].1[100] ^= 0xff;
    let v1 = build(&files, 1, None);
    let v2 = build(&files2, 1, None);
    assert_eq!(v1.len(), v2.len());
    update_ab(&mut flash, &v1, 512).unwrap(); // A
    update_ab(&mut flash, &v1, 512).unwrap(); // B
    let r = update_ab(&mut flash, &v2, 512).unwrap(); // A again
    let differing = v1
        .chunks(E)
        .zip(v2.chunks(E))
        .filter(|(a, b)| a != b)
        .count() as u32;
    assert!(
        differing >= 2,
        "the CRC record's sector and the file's sector differ"
    );
    assert_eq!(r.stats.sectors_programmed, differing);
    assert_eq!(r.stats.erases, differing + 1, "{:?}", r.stats);
    assert_eq!(active_ab(&flash).unwrap(), v2);

    // Single slot: same image in place, one file changed.
    let mut flash = Flash::new(128 * 1024);
    let r0 = update_single(&mut flash, &v1, 700).unwrap();
    assert!(!r0.unchanged);
    let same = update_single(&mut flash, &v1, 700).unwrap();
    assert!(same.unchanged);
    assert_eq!((same.stats.erases, same.stats.writes), (0, 0));
    let r = update_single(&mut flash, &v2, 700).unwrap();
    // Differing sectors, plus sector 0 (erased to invalidate, rewritten last).
    let extra = u32::from(v1[..E] == v2[..E]);
    assert_eq!(r.stats.erases, differing + extra, "{:?}", r.stats);
    assert_eq!(&flash.contents()[..v2.len()], &v2[..]);
}

#[test]
fn errors_leave_the_active_image() {
    let v1 = app_image(1, 30, 1);
    let v2 = app_image(2, 30, 2);
    let mut flash = Flash::new(128 * 1024);
    update_ab(&mut flash, &v1, 4096).unwrap();

    // Too large for the slot.
    let huge = app_image(3, 70, 3);
    let err = update_ab(&mut flash, &huge, 100).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::TooLarge {
                capacity: 61440,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // Stream ends early.
    let err = update_ab(&mut flash, &v2[..v2.len() - 10], 100).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Truncated {
                image_len: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // Stream goes on past the image.
    let mut long = v2.clone();
    long.extend_from_slice(b"junk");
    let err = update_ab(&mut flash, &long, 100).unwrap_err();
    assert!(matches!(err, UpdateError::TooLong { .. }), "{err:?}");
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // Not an image.
    let err = update_ab(&mut flash, b"hello world", 3).unwrap_err();
    assert_eq!(err, UpdateError::NotAnImage);
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // Corrupted in transit: the image's own checksum record catches it.
    let mut bad = v2.clone();
    bad[v2.len() / 2] ^= 1;
    let err = update_ab(&mut flash, &bad, 100).unwrap_err();
    assert!(
        matches!(err, UpdateError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // An image without a checksum record, checked against the identity the
    // caller expected.
    let plain = build(
        &app_files(4, 20, 4),
        4,
        Some(romfs_format::write::Options::mpremote()),
    );
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut flash, layout(), Verify::Full, &mut buf).unwrap();
    up.write(&plain).unwrap();
    let err = up.finish(Some(identity(&plain) ^ 1)).unwrap_err();
    assert_eq!(
        err,
        UpdateError::WrongImage {
            expected: identity(&plain) ^ 1,
            received: identity(&plain)
        }
    );
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // A flash failure (power lost mid-way; every op fails afterwards).
    flash.cut_power_at(flash.ops() + 3, Partial::Nothing);
    let err = update_ab(&mut flash, &v2, 100).unwrap_err();
    assert_eq!(err, UpdateError::Flash(SimError::PowerLost));
    flash.reboot();
    assert_eq!(active_ab(&flash).unwrap(), v1);

    // A later error stops the update for good.
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut flash, layout(), Verify::Full, &mut buf).unwrap();
    assert!(up.write(b"xyz").is_err());
    assert_eq!(up.write(&v2).unwrap_err(), UpdateError::Aborted);

    // And a good one still works afterwards.
    update_ab(&mut flash, &plain, 999).unwrap();
    assert_eq!(active_ab(&flash).unwrap(), plain);
}

#[test]
fn config_errors() {
    let mut flash = Flash::new(128 * 1024);
    // Smaller than a sector is fine (pieces of sectors); below 64 bytes
    // (plus the held header unit for a single slot) is refused.
    let mut small = vec![0u8; 60];
    let err = Updater::begin_ab(&mut flash, layout(), Verify::Full, &mut small).unwrap_err();
    assert_eq!(err, UpdateError::BufferTooSmall { needed: 64 });
    let err = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut small).unwrap_err();
    assert_eq!(err, UpdateError::BufferTooSmall { needed: 68 });
    let mut one = vec![0u8; E];
    {
        let up = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut one).unwrap();
        assert!(!up.stages_whole_sectors());
    }
    let mut two = vec![0u8; 2 * E];
    let err = Updater::begin_single(&mut flash, Region::new(100, 64 * 1024), &mut two).unwrap_err();
    assert_eq!(err, UpdateError::Layout(LayoutError::NotAligned));
    let big = AbLayout::new(
        Region::new(0, 64 * 1024),
        Region::new(128 * 1024, 64 * 1024),
        E,
        4,
    )
    .unwrap();
    let err = Updater::begin_ab(&mut flash, big, Verify::Full, &mut one).unwrap_err();
    assert_eq!(err, UpdateError::Layout(LayoutError::OutOfBounds));
    assert!(AbLayout::new(Region::new(0, 8192), Region::new(4096, 8192), E, 4).is_err());
    assert!(AbLayout::new(Region::new(0, 4096), Region::new(8192, 8192), E, 4).is_err());
    assert!(AbLayout::new(Region::new(0, 8192), Region::new(8193, 8192), E, 4).is_err());
    assert_eq!(
        AbLayout::new(Region::new(0, 8192), Region::new(8192, 8192), E, 3),
        Err(LayoutError::Geometry)
    );
    let (_, nothing) = (
        0,
        slots::mount_ab::<_, 64>(&mut flash, &layout(), Verify::Full),
    );
    assert!(matches!(nothing, Err(Error::NoImage)));
}

#[test]
fn random_chunkings_and_write_sizes() {
    let mut rng = Rng(99);
    let images: Vec<Vec<u8>> = (0..4)
        .map(|i| app_image(10 + i, 10 + 8 * i as usize, i as u32))
        .collect();
    let mut flash = SimFlash::<4, 16, 1024>::new(256 * 1024);
    let layout = AbLayout::new(
        Region::new(0, 96 * 1024),
        Region::new(128 * 1024, 96 * 1024),
        1024,
        16,
    )
    .unwrap();
    for round in 0..12 {
        let img = &images[rng.below(images.len() as u64) as usize];
        let mut buf = vec![0u8; 1024];
        let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf).unwrap();
        let mut at = 0;
        while at < img.len() {
            let n = (1 + rng.below(3000) as usize).min(img.len() - at);
            up.write(&img[at..at + n]).unwrap();
            at += n;
        }
        let r = up.finish(Some(identity(img))).unwrap();
        assert_eq!(r.image_id, identity(img));
        assert_eq!(r.slot.unwrap().generation, round + 1);
        let (_, fs) = mapped::mount_ab(flash.contents(), &layout, Verify::Full).unwrap();
        assert_eq!(fs.image().bytes(), &img[..]);
    }
}

#[test]
fn mapped_files_and_typed_views() {
    use romfs_format::write::{MemoryTree, Options};
    use zerocopy::little_endian::U32;
    let mut tree = MemoryTree::new();
    let words: Vec<u8> = (0u32..64).flat_map(|w| w.to_le_bytes()).collect();
    tree.add_file_aligned(tree.root(), b"table.bin", words.clone(), Some(16))
        .unwrap();
    tree.add_file(tree.root(), b"odd.bin", vec![1, 2, 3, 4, 5])
        .unwrap();
    let img = tree.build(&Options::default()).unwrap();
    // Put the image at an aligned address, as flash would be.
    let mut backing = vec![0u64; img.len().div_ceil(8)];
    let region: &mut [u8] = zerocopy::IntoBytes::as_mut_bytes(&mut backing[..]);
    region[..img.len()].copy_from_slice(&img);
    let region: &[u8] = region;
    let fs = MappedFs::mount(region).unwrap();
    let data = fs.open(b"/table.bin").unwrap();
    assert_eq!(data, &words[..]);
    // Zero copy: the slice points into the region.
    let r = region.as_ptr_range();
    assert!(r.contains(&data.as_ptr()));
    let native: &[u32] = fs.open_typed(b"table.bin").unwrap();
    assert_eq!(native.len(), 64);
    assert_eq!(native[63], u32::from_le(63));
    let le: &[U32] = fs.open_typed(b"table.bin").unwrap();
    assert_eq!(le[10].get(), 10);
    // Wrong size: refused, not copied.
    let err = fs.open_typed::<U32>(b"odd.bin").unwrap_err();
    assert!(
        matches!(err, Error::WrongSize { len: 5, elem: 4 }),
        "{err:?}"
    );
    // Misaligned: a view one byte in.
    let err = mapped::view::<u32>(&data[1..5]).unwrap_err();
    assert!(matches!(err, Error::Misaligned { align: 4, .. }), "{err:?}");
    assert_eq!(fs.open(b"nope").unwrap_err(), Error::NotFound);
    assert_eq!(fs.open(b"/").unwrap_err(), Error::IsDir);

    // XipFlash pairs a mapping with the same partition's driver.
    let mut sim = Flash::new(8192);
    sim.load(0, &img);
    let snapshot = sim.contents().to_vec();
    let mut part = Partition::new(&mut sim, Region::new(0, 8192)).unwrap();
    let xip = romfs_embedded::XipFlash::new(&snapshot, &mut part).unwrap();
    assert_eq!(
        xip.mount().unwrap().open(b"odd.bin").unwrap(),
        &[1, 2, 3, 4, 5]
    );
    assert!(romfs_embedded::XipFlash::new(&snapshot[..4096], &mut part).is_err());
}

#[test]
fn partitions_keep_to_their_region() {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut sim = Flash::new(64 * 1024);
    let mut p = Partition::new(&mut sim, Region::new(8192, 8192)).unwrap();
    assert_eq!(p.capacity(), 8192);
    p.erase(0, 4096).unwrap();
    p.write(4, &[1, 2, 3, 4]).unwrap();
    assert!(p.write(8192, &[0; 4]).is_err());
    assert!(p.erase(4096, 12288).is_err());
    let mut b = [0u8; 4];
    p.read(4, &mut b).unwrap();
    assert_eq!(b, [1, 2, 3, 4]);
    assert!(p.read(8190, &mut b).is_err());
    assert_eq!(&sim.contents()[8196..8200], &[1, 2, 3, 4]);
    assert!(Partition::new(&mut sim, Region::new(100, 4096)).is_err());
    assert!(Partition::new(&mut sim, Region::new(61440, 8192)).is_err());
    // An image in a partition in the middle of a chip.
    let img = app_image(3, 5, 1);
    sim.load(16384, &img);
    let mut fs =
        FlashFs::<_, 32>::mount(Partition::new(&mut sim, Region::new(16384, 16384)).unwrap())
            .unwrap();
    assert!(fs.lookup(b"config.py").unwrap().is_some());
}

#[test]
fn reads_stay_aligned_at_the_end_of_an_odd_sized_flash() {
    use embedded_storage::nor_flash::ReadNorFlash;
    use romfs_embedded::sim::SimFlash;
    // A flash of READ_SIZE 4 whose capacity is not a multiple of 4 (as a
    // partition of a byte-addressable device can be): the last 2 bytes can
    // never be read through it, and no read may be unaligned.
    let img = app_image(5, 2, 1);
    let mut sim = SimFlash::<4, 4, 4096>::new(8192);
    sim.load(0, &img);
    assert_eq!(
        Partition::new_read_only(&mut sim, Region::new(0, 4098)).unwrap_err(),
        LayoutError::NotAligned
    );
    struct Odd<'a>(&'a mut SimFlash<4, 4, 4096>, usize);
    impl embedded_storage::nor_flash::ErrorType for Odd<'_> {
        type Error = SimError;
    }
    impl ReadNorFlash for Odd<'_> {
        const READ_SIZE: usize = 4;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
            self.0.read(offset, bytes)
        }
        fn capacity(&self) -> usize {
            self.1
        }
    }
    // The image ends well before the odd tail: everything reads.
    let cap = img.len().div_ceil(4) * 4 + 6;
    let mut fs = FlashFs::<_, 64>::mount(Odd(&mut sim, cap)).unwrap();
    let node = fs.lookup(b"config.py").unwrap().unwrap();
    let mut out = [0u8; 32];
    let n = fs.read_file(&node, 0, &mut out).unwrap();
    assert_eq!(&out[..n], b"VERSION = 1\n");
    // An image whose last bytes fall in the unreadable tail: an error, not
    // an unaligned read (the simulator would refuse that with NotAligned).
    let img = (0..)
        .map(|seed| app_image(seed, 2, 1))
        .find(|img| img.len() % 4 == 2)
        .unwrap();
    sim.load(0, &img);
    let mut fs = FlashFs::<_, 64>::mount(Odd(&mut sim, img.len())).unwrap();
    match fs.checksum() {
        Err(Error::Format(e)) => assert!(matches!(
            e.kind,
            romfs_format::ErrorKind::ImagePastEnd { .. }
        )),
        other => panic!("expected the tail to be unreadable, got {other:?}"),
    }
}

#[test]
fn simulator_enforces_nor_rules() {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    let mut sim = Flash::new(8192);
    sim.write(0, &[0x0f; 4]).unwrap();
    assert_eq!(
        sim.write(0, &[0x0f; 4]),
        Err(SimError::DoubleWrite { offset: 0 })
    );
    assert_eq!(sim.write(2, &[0; 4]), Err(SimError::NotAligned));
    assert_eq!(sim.write(8192, &[0; 4]), Err(SimError::OutOfBounds));
    assert_eq!(sim.erase(0, 100), Err(SimError::NotAligned));
    sim.allow_multiwrite(true);
    sim.write(0, &[0xf0; 4]).unwrap();
    assert_eq!(&sim.contents()[..4], &[0; 4], "writes only clear bits");
    sim.erase(0, 4096).unwrap();
    assert_eq!(&sim.contents()[..4], &[0xff; 4]);
    sim.allow_multiwrite(false);
    // Interrupted write: half landed.
    sim.cut_power_at(sim.ops() + 1, Partial::Prefix { num: 1, den: 2 });
    sim.write(0, &[0; 8]).unwrap();
    assert_eq!(sim.write(8, &[0; 8]), Err(SimError::PowerLost));
    let mut b = [0u8; 4];
    assert_eq!(sim.read(0, &mut b), Err(SimError::PowerLost));
    sim.reboot();
    assert_eq!(
        &sim.contents()[..16],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
    );
    // Interrupted erase with random bits: some bits set, not all.
    sim.cut_power_at(0, Partial::RandomBits(1));
    assert_eq!(sim.erase(0, 4096), Err(SimError::PowerLost));
    sim.reboot();
    let s = &sim.contents()[..16];
    assert!(
        s.iter().any(|&b| b != 0xff) && s.iter().any(|&b| b != 0),
        "{s:?}"
    );
}

fn header_safe_image(seed: u64, version: u32, write_size: u32) -> Vec<u8> {
    build(
        &app_files(seed, 20, version),
        version as u64,
        Some(romfs_format::write::Options {
            header_write_size: Some(write_size),
            ..romfs_format::write::Options::default()
        }),
    )
}

#[test]
fn single_slot_can_require_a_header_safe_image() {
    let old = app_image(90, 20, 1);
    let plain = app_image(91, 20, 2);
    let safe = header_safe_image(91, 2, 4);
    let mut flash = Flash::new(64 * 1024);
    assert!(!update_single(&mut flash, &old, 4096).unwrap().header_safe);

    // Required: the unsafe image is refused once its header has arrived,
    // before anything is written; the old image stays.
    let before = flash.contents().to_vec();
    let mut buf = vec![0u8; 2 * E];
    let mut up = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut buf)
        .unwrap()
        .require_header_safe();
    assert_eq!(up.header_safe(), None);
    assert_eq!(
        up.write(&plain[..100]).unwrap_err(),
        UpdateError::HeaderNotSafe { write_size: 4 }
    );
    assert_eq!(up.write(&plain[100..]).unwrap_err(), UpdateError::Aborted);
    assert_eq!(flash.contents(), &before[..]);
    assert!(UpdateError::<SimError>::HeaderNotSafe { write_size: 4 }
        .to_string()
        .contains("--flash-write-size 4"));

    // Required late (after the header arrived): refused at the next write.
    let mut up = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut buf).unwrap();
    up.write(&plain[..10]).unwrap();
    assert_eq!(up.header_safe(), Some(false));
    let mut up = up.require_header_safe();
    assert_eq!(
        up.write(&plain[10..]).unwrap_err(),
        UpdateError::HeaderNotSafe { write_size: 4 }
    );

    // The header-safe image goes through and reports it.
    let mut up = Updater::begin_single(&mut flash, Region::new(0, 64 * 1024), &mut buf)
        .unwrap()
        .require_header_safe();
    for c in safe.chunks(333) {
        up.write(c).unwrap();
        assert_eq!(up.header_safe(), Some(true));
    }
    let report = up.finish(None).unwrap();
    assert!(report.header_safe);
    assert_eq!(&flash.contents()[..safe.len()], &safe[..]);
    assert_eq!(&flash.contents()[..4], &[0xd2, 0xcd, 0x31, 0x80]);
    let mut fs =
        FlashFs::<_, 64>::mount(Partition::new(&mut flash, Region::new(0, 64 * 1024)).unwrap())
            .unwrap();
    assert!(fs.lookup(b"config.py").unwrap().is_some());
}

#[test]
fn header_safety_depends_on_the_write_size() {
    // A W=4 header-safe image is not safe for 8-byte writes; every image is
    // safe for 1- and 2-byte writes; A/B never needs it.
    let safe4 = header_safe_image(92, 1, 4);
    let mut f8 = SimFlash::<1, 8, E>::new(64 * 1024);
    let mut buf = vec![0u8; 2 * E];
    let mut up = Updater::begin_single(&mut f8, Region::new(0, 64 * 1024), &mut buf)
        .unwrap()
        .require_header_safe();
    assert_eq!(
        up.write(&safe4).unwrap_err(),
        UpdateError::HeaderNotSafe { write_size: 8 }
    );
    let plain = app_image(92, 20, 1);
    let mut f1 = SimFlash::<1, 1, E>::new(64 * 1024);
    let mut up = Updater::begin_single(&mut f1, Region::new(0, 64 * 1024), &mut buf)
        .unwrap()
        .require_header_safe();
    up.write(&plain).unwrap();
    assert!(up.finish(None).unwrap().header_safe);
    let mut flash = Flash::new(128 * 1024);
    let mut up = Updater::begin_ab(&mut flash, layout(), Verify::Full, &mut buf[..E])
        .unwrap()
        .require_header_safe();
    up.write(&plain).unwrap();
    assert!(up.finish(None).unwrap().header_safe);
}

#[test]
fn a_header_longer_than_a_tiny_sector_is_an_error_not_a_panic() {
    // 64-byte sectors: a 64-byte length varuint cannot be parsed from the
    // first sector; the updater must say so (it used to index past it).
    let mut image = vec![0xd2, 0xcd, 0x31];
    image.extend(std::iter::repeat_n(0x80, 63));
    image.push(0x00);
    let mut flash = SimFlash::<1, 4, 64>::new(64 * 64);
    let mut buf = vec![0u8; 128];
    let mut up = Updater::begin_single(&mut flash, Region::new(0, 64 * 64), &mut buf).unwrap();
    assert!(matches!(
        up.write(&image).unwrap_err(),
        UpdateError::BadHeader(_)
    ));
    let mut buf = vec![0u8; 64];
    let lay = AbLayout::new(
        Region::new(0, 32 * 64),
        Region::new(32 * 64, 32 * 64),
        64,
        4,
    )
    .unwrap();
    let mut up = Updater::begin_ab(&mut flash, lay, Verify::Full, &mut buf).unwrap();
    for c in image.chunks(7) {
        if let Err(e) = up.write(c) {
            assert!(matches!(e, UpdateError::BadHeader(_)), "{e:?}");
            return;
        }
    }
    panic!("the over-long header was accepted");
}

#[test]
fn slots_committed_by_version_1_records_still_mount() {
    use romfs_embedded::slots::{CommitRecord, COMMIT_VERSION_1};
    use zerocopy::IntoBytes;
    // What a version-1 updater left: the image, and a record whose
    // `image_id` field holds the CRC-32 of the whole image.
    let img = app_image(40, 20, 1);
    let mut rec = CommitRecord::new(7, img.len() as u32, romfs_format::crc32::checksum(&img));
    rec.version = COMMIT_VERSION_1;
    let rec = rec.sealed();
    let mut flash = Flash::new(128 * 1024);
    flash.load(0, &img);
    flash.load(layout().commit_offset(0) as usize, rec.as_bytes());
    for verify in [Verify::CommitOnly, Verify::Full] {
        let (info, fs) = mapped::mount_ab(flash.contents(), &layout(), verify).unwrap();
        assert_eq!((info.index, info.generation), (0, 7));
        assert_eq!(fs.image().bytes(), &img[..]);
    }
    // A damaged image fails the full check of a version-1 record too.
    let mut bad = flash.clone();
    bad.load(100, &[img[100] ^ 0x10]);
    assert!(mapped::mount_ab(bad.contents(), &layout(), Verify::Full).is_err());
    // The next update goes to B and writes a version-2 record.
    let v2 = app_image(41, 20, 2);
    let r = update_ab(&mut flash, &v2, 1000).unwrap();
    assert_eq!((r.slot.unwrap().index, r.slot.unwrap().generation), (1, 8));
    assert_eq!(r.image_id, identity(&v2));
}

#[test]
fn a_mount_counts_every_flash_read_it_makes() {
    // mount_ab reads commit records and headers to choose a slot before it
    // mounts one: those reads are in the file system's statistics too.
    let mut flash = Flash::new(128 * 1024);
    update_ab(&mut flash, &app_image(1, 20, 1), 1000).unwrap();
    let (info, mut fs) =
        slots::mount_ab::<_, 64>(&mut flash, &layout(), Verify::CommitOnly).unwrap();
    let with_choice = fs.stats();
    flash.reset_stats();
    let part = Partition::new_read_only(&mut flash, info.region).unwrap();
    let mut alone = FlashFs::<_, 64>::mount(part).unwrap();
    let mount_only = alone.stats();
    // The simulator saw exactly what the file system reports.
    assert_eq!(mount_only.reads, flash.stats().reads);
    assert!(
        with_choice.reads > mount_only.reads,
        "{with_choice:?} vs {mount_only:?}"
    );
    flash.reset_stats();
    let (_, mut fs) = slots::mount_ab::<_, 64>(&mut flash, &layout(), Verify::CommitOnly).unwrap();
    let reported = fs.stats();
    assert_eq!(reported.reads, flash.stats().reads);
    assert_eq!(reported.bytes, flash.stats().bytes_read);
}
