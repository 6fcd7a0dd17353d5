//! Delta updates (`Updater::delta`): a patch from `romfs diff` applied from
//! the running A/B slot into the other one, fed in chunks of any size; a
//! patch for another image, a corrupt or cut patch, and a result that is
//! not the promised one are refused and leave the running image mounted.
//! The power-cut campaigns are in `power_cut.rs`.

mod common;

use common::ab::{layout, Flash, Result, E, SLOT};
use common::{app_files, build, identity};
use romfs_embedded::slots::Verify;
use romfs_embedded::update::{Report, UpdateError, Updater};
use romfs_embedded::Region;
use romfs_format::delta::{self, DeltaError, HEADER_LEN};

/// The app at `version`: config.py says so, one module is edited, one
/// grows (so later data moves and copies come from shifted offsets).
fn app(version: u32) -> Vec<u8> {
    let mut files = app_files(7, 40, version);
    if version > 1 {
        files[3].1[100] ^= 0x5a;
        files[5].1.extend(vec![b'+'; 1000]);
    }
    build(&files, u64::from(version), None)
}

/// Full A/B update.
fn install(flash: &mut Flash, image: &[u8]) -> Report {
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut *flash, layout(), Verify::CommitOnly, &mut buf).unwrap();
    up.write(image).unwrap();
    up.finish(None).unwrap()
}

/// Delta update with the patch cut into `chunk`-byte pieces.
fn apply(
    flash: &mut Flash,
    patch: &[u8],
    chunk: usize,
    expected_id: Option<u32>,
) -> Result<Report> {
    let mut buf = vec![0u8; E];
    let mut update = Updater::begin_ab(&mut *flash, layout(), Verify::CommitOnly, &mut buf)?;
    let mut up = update.delta()?;
    patch.chunks(chunk).try_for_each(|c| up.write(c))?;
    up.finish(expected_id)
}

/// The image mounted from flash alone.
fn mounted(flash: &Flash) -> Option<Vec<u8>> {
    common::mounted_ab(flash.contents(), &layout())
}

/// A device running `old` (slot A holds `previous`, B is active).
fn device(previous: &[u8], old: &[u8]) -> Flash {
    let mut flash = Flash::new(2 * SLOT as usize);
    install(&mut flash, previous);
    install(&mut flash, old);
    flash.reboot();
    flash.reset_stats();
    flash
}

#[test]
fn a_delta_makes_the_new_image_in_the_other_slot_whatever_the_chunk_size() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let patch = delta::diff(&old, &new);
    assert!(patch.len() < new.len() / 4, "{} byte patch", patch.len());
    let base = device(&previous, &old);
    let mut reports = Vec::new();
    for chunk in [1, 7, 333, 4096, patch.len()] {
        let mut flash = base.clone();
        let report = apply(&mut flash, &patch, chunk, Some(identity(&new))).unwrap();
        assert_eq!(mounted(&flash).as_deref(), Some(&new[..]), "chunk {chunk}");
        let slot = report.slot.unwrap();
        assert_eq!((slot.index, slot.generation), (0, 3));
        assert_eq!(report.image_id, identity(&new));
        // The running slot (B) was only read.
        assert_eq!(&flash.contents()[SLOT as usize..][..old.len()], &old[..]);
        reports.push((report.stats.erases, report.stats.bytes_written));
    }
    // The same writes, however the patch was cut.
    assert!(reports.windows(2).all(|w| w[0] == w[1]), "{reports:?}");
}

#[test]
fn a_delta_skips_the_sectors_the_target_already_holds() {
    // Slot A holds the old image too: only the sectors that differ move.
    let (old, new) = (app(1), app(2));
    let mut flash = device(&old, &old);
    let mut full = flash.clone();
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut full, layout(), Verify::CommitOnly, &mut buf).unwrap();
    up.write(&new).unwrap();
    let by_image = up.finish(None).unwrap();
    let by_delta = apply(&mut flash, &delta::diff(&old, &new), 1000, None).unwrap();
    assert!(by_delta.stats.sectors_skipped > 0);
    assert_eq!(
        (by_delta.stats.erases, by_delta.stats.bytes_written),
        (by_image.stats.erases, by_image.stats.bytes_written)
    );
    assert_eq!(flash.contents(), full.contents());
}

#[test]
fn a_delta_for_another_image_is_refused_before_anything_is_written() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let other_old = build(&app_files(8, 40, 1), 1, None);
    let cases = [
        ("another image", delta::diff(&other_old, &new)),
        ("the previous image", delta::diff(&previous, &new)),
        ("the same length, another CRC", {
            let mut p = delta::diff(&old, &new);
            p[9] ^= 1; // old identity
            p
        }),
    ];
    for (what, patch) in cases {
        let mut flash = device(&previous, &old);
        for chunk in [1, HEADER_LEN, patch.len()] {
            let r = apply(&mut flash, &patch, chunk, None).map(|_| ());
            assert_eq!(
                r,
                Err(UpdateError::Delta(DeltaError::WrongBase)),
                "{what}, chunk {chunk}"
            );
            let s = flash.stats();
            assert_eq!((s.erases, s.writes), (0, 0), "{what}: flash was written");
            assert_eq!(mounted(&flash).as_deref(), Some(&old[..]), "{what}");
        }
    }
}

#[test]
fn a_cut_patch_is_refused_and_the_old_image_stays() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let patch = delta::diff(&old, &new);
    let base = device(&previous, &old);
    for len in [
        0,
        1,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 1,
        patch.len() / 2,
        patch.len() - 1,
    ] {
        let mut flash = base.clone();
        let err = apply(&mut flash, &patch[..len], 97, None).unwrap_err();
        assert_eq!(
            err,
            UpdateError::Delta(DeltaError::Truncated),
            "cut at {len}"
        );
        assert_eq!(mounted(&flash).as_deref(), Some(&old[..]), "cut at {len}");
    }
    // Bytes after the patch's end.
    let mut flash = base.clone();
    let mut long = patch.clone();
    long.push(0);
    let err = apply(&mut flash, &long, 500, None).unwrap_err();
    assert_eq!(
        err,
        UpdateError::Delta(DeltaError::TrailingBytes(patch.len() as u64))
    );
    assert_eq!(mounted(&flash).as_deref(), Some(&old[..]));
}

#[test]
fn every_corrupt_patch_is_refused_or_makes_exactly_the_new_image() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let patch = delta::diff(&old, &new);
    let base = device(&previous, &old);
    let mut refused = 0;
    // Every byte of the header and the operations; a sample of the literals.
    let positions: Vec<usize> = (0..patch.len())
        .filter(|&i| i < 512 || i % 61 == 0)
        .collect();
    for &at in &positions {
        for flip in [0x01, 0x80] {
            let mut bad = patch.clone();
            bad[at] ^= flip;
            let mut flash = base.clone();
            match apply(&mut flash, &bad, 211, None) {
                Ok(_) => assert_eq!(mounted(&flash).as_deref(), Some(&new[..]), "byte {at}"),
                Err(e) => {
                    refused += 1;
                    assert!(!matches!(e, UpdateError::Flash(_)), "byte {at}: {e:?}");
                    assert_eq!(mounted(&flash).as_deref(), Some(&old[..]), "byte {at}: {e}");
                }
            }
        }
    }
    assert!(refused > positions.len(), "{refused} refused");
}

#[test]
fn a_result_that_is_not_the_promised_image_is_not_committed() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let patch = delta::diff(&old, &new);
    let base = device(&previous, &old);
    // The header promises another length or identity than the patch makes.
    for field in [13, 17] {
        let mut bad = patch.clone();
        bad[field] ^= 1;
        let mut flash = base.clone();
        let err = apply(&mut flash, &bad, 1000, None).unwrap_err();
        let expected = match field {
            // A longer promised image: the patch ends before it is complete.
            13 => UpdateError::Delta(DeltaError::Truncated),
            _ => UpdateError::Delta(DeltaError::WrongResult),
        };
        assert_eq!(err, expected, "header byte {field}");
        assert_eq!(mounted(&flash).as_deref(), Some(&old[..]));
    }
    // A byte altered, and the header's identity made to match: the image's
    // own checksum record refuses it.
    let mut altered = new.clone();
    altered[new.len() / 2] ^= 0x20;
    let mut bad = delta::diff(&old, &altered);
    bad[17..21].copy_from_slice(&identity(&new).to_le_bytes());
    let mut flash = base.clone();
    let err = apply(&mut flash, &bad, 1000, None).unwrap_err();
    assert!(
        matches!(err, UpdateError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(mounted(&flash).as_deref(), Some(&old[..]));
    // A valid result that is not the image the sender meant.
    let mut flash = base.clone();
    let err = apply(&mut flash, &patch, 1000, Some(identity(&new) ^ 1)).unwrap_err();
    assert!(matches!(err, UpdateError::WrongImage { .. }), "{err:?}");
    assert_eq!(mounted(&flash).as_deref(), Some(&old[..]));
}

#[test]
fn a_delta_needs_a_running_image() {
    let new = app(2);
    let patch = delta::diff(&app(1), &new);
    let mut blank = Flash::new(2 * SLOT as usize);
    assert_eq!(
        apply(&mut blank, &patch, 100, None).unwrap_err(),
        UpdateError::NoDeltaBase
    );
    let mut buf = vec![0u8; 2 * E];
    let mut single = Updater::begin_single(&mut blank, Region::new(0, SLOT), &mut buf).unwrap();
    assert_eq!(single.delta().unwrap_err(), UpdateError::NoDeltaBase);
    assert_eq!(blank.stats().writes, 0);
    // An update already fed cannot turn into a delta.
    let mut flash = device(&app(0), &app(1));
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(&mut flash, layout(), Verify::CommitOnly, &mut buf).unwrap();
    up.write(&new[..10]).unwrap();
    assert_eq!(up.delta().unwrap_err(), UpdateError::Aborted);
}

#[test]
fn after_an_error_the_delta_update_stays_aborted() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let patch = delta::diff(&old, &new);
    let mut flash = device(&previous, &old);
    let mut buf = vec![0u8; E];
    let mut update = Updater::begin_ab(&mut flash, layout(), Verify::CommitOnly, &mut buf).unwrap();
    let mut up = update.delta().unwrap();
    let mut bad = patch.clone();
    bad[0] = b'X';
    assert_eq!(
        up.write(&bad).unwrap_err(),
        UpdateError::Delta(DeltaError::BadMagic)
    );
    assert_eq!(up.write(&patch).unwrap_err(), UpdateError::Aborted);
    assert_eq!(up.finish(None).unwrap_err(), UpdateError::Aborted);
    // The updater itself is spent too.
    assert_eq!(update.write(&[0xd2]).unwrap_err(), UpdateError::Aborted);
}

#[test]
fn once_a_delta_update_finished_its_updater_is_spent() {
    let (previous, old, new) = (app(0), app(1), app(2));
    let mut flash = device(&previous, &old);
    let mut buf = vec![0u8; E];
    let mut update = Updater::begin_ab(&mut flash, layout(), Verify::CommitOnly, &mut buf).unwrap();
    let mut up = update.delta().unwrap();
    up.write(&delta::diff(&old, &new)).unwrap();
    up.finish(None).unwrap();
    assert_eq!(update.delta().unwrap_err(), UpdateError::Aborted);
    assert_eq!(update.finish(None).unwrap_err(), UpdateError::Aborted);
    assert_eq!(mounted(&flash).as_deref(), Some(&new[..]));
}

/// OLD, NEW and a device running OLD, built once for the property test.
fn fixture() -> &'static (Vec<u8>, Vec<u8>, Flash) {
    static FIXTURE: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Flash)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (previous, old, new) = (app(0), app(1), app(2));
        let flash = device(&previous, &old);
        (old, new, flash)
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// A header for the running image followed by arbitrary operations, in
    /// arbitrary chunks: never a panic; refused with the old image mounted,
    /// or (only if the bytes happen to make it) the new image.
    #[test]
    fn arbitrary_operations_after_a_valid_header_never_corrupt_the_device(
        ops in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
        copies in proptest::collection::vec((0u32..45_000, 1u32..5000), 0..8),
        chunk in 1usize..700,
    ) {
        let (old, new, base) = fixture();
        let mut patch = delta::diff(old, new)[..HEADER_LEN].to_vec();
        // Some well-formed copies first, so that writing starts.
        for (from, len) in copies {
            for mut v in [u64::from(len) << 1, u64::from(from) << 1] {
                loop {
                    let b = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        patch.push(b);
                        break;
                    }
                    patch.push(b | 0x80);
                }
            }
        }
        patch.extend_from_slice(&ops);
        let mut flash = base.clone();
        let result = apply(&mut flash, &patch, chunk, None);
        let now = mounted(&flash);
        match result {
            Ok(_) => proptest::prop_assert_eq!(now.as_deref(), Some(&new[..])),
            Err(e) => {
                proptest::prop_assert!(!matches!(e, UpdateError::Flash(_)), "{:?}", e);
                proptest::prop_assert_eq!(now.as_deref(), Some(&old[..]));
            }
        }
    }
}
