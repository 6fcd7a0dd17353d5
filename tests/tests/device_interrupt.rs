//! Pulling the plug during `deploy`: the emulated board is frozen (QEMU
//! monitor `stop`) at many instants of a deploy that replaces one image by
//! another, its flash is saved (`pmemsave`) and booted in a fresh QEMU.
//! MicroPython must mount the old image, nothing, or the complete new
//! image, never anything else; and a second deploy must then complete.
//!
//! `ROMFS_INTERRUPTION_POINTS` sets how many instants are covered (CI
//! default below; a longer run: `ROMFS_INTERRUPTION_POINTS=100 cargo test
//! -p romfs-interop --test device_interrupt -- --nocapture`).
#![forbid(unsafe_code)]

mod device_support;

use std::time::{Duration, Instant};

use device_support::*;
use romfs_device::deploy::{deploy, NoProgress};
use romfs_device::query::{ChecksumState, Contents};
use romfs_device::{query, Board, Timeouts};
use romfs_testkit::board::{Build, Qemu, PARTITION_ADDR};

const CI_POINTS: usize = 8;

/// What MicroPython's reader mounts from a partition: the image's bytes,
/// or `None`.
fn mounted(partition: &[u8]) -> Option<&[u8]> {
    let (_, end) = romfs_testkit::micropython_mount(partition, PARTITION_ADDR, 32)?;
    Some(&partition[..(end - PARTITION_ADDR) as usize])
}

#[test]
fn interrupted_deploy_leaves_old_image_nothing_or_new_image() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let points: usize = std::env::var("ROMFS_INTERRUPTION_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_POINTS);
    let target = board_target(&fw);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 36);
    let old = build_for(&src, &t.path().join("old.img"), &mpy_cross, target);
    // The new image differs in most blocks: a new module early in the
    // order shifts everything after it.
    std::fs::write(src.join("lib/aaa.py"), "X = 1\n").unwrap();
    let new = build_for(&src, &t.path().join("new.img"), &mpy_cross, target);
    assert!(new.len() > 5 * 4096, "the image spans several blocks");
    let quick = Timeouts {
        answer: Duration::from_secs(1),
        work: Duration::from_secs(1),
    };

    // An uninterrupted deploy, to know how long one takes.
    let qemu = Qemu::boot(&fw, Build::Writable, Some(&old));
    let mut board = Board::open(Some(qemu.pty()), Timeouts::default()).unwrap();
    board.set_timeouts(quick);
    let started = Instant::now();
    let report = deploy(&mut board, &new, 0, &NoProgress).unwrap();
    let whole = started.elapsed();
    assert!(report.written.len() >= 5, "{report:?}");
    drop(board);
    drop(qemu);

    let mut outcomes = [0usize; 3]; // old, none, new
    for i in 0..points {
        let at = whole.mul_f64(i as f64 / points as f64);
        let mut qemu = Qemu::boot(&fw, Build::Writable, Some(&old));
        // Short timeouts once connected: the frozen board is noticed soon.
        let mut board = Board::open(Some(qemu.pty()), Timeouts::default()).unwrap();
        board.set_timeouts(quick);
        let mut stopper = qemu.stopper();
        let cut = std::thread::spawn(move || {
            std::thread::sleep(at);
            stopper.stop();
        });
        let result = deploy(&mut board, &new, 0, &NoProgress);
        cut.join().unwrap();
        drop(board);
        qemu.stop();
        let flash = qemu.partition();
        drop(qemu);

        // What the flash holds, as MicroPython's reader decides.
        let seen = mounted(&flash);
        let outcome = match seen {
            Some(image) if image == &old[..] => 0,
            None => 1,
            Some(image) if image == &new[..] => 2,
            Some(image) => panic!(
                "point {i} ({at:?}): MicroPython would mount a {}-byte image that is neither the old nor the new one (deploy: {result:?})",
                image.len()
            ),
        };
        outcomes[outcome] += 1;

        // Power up again from that flash: MicroPython agrees, and a second
        // deploy completes.
        let mut qemu = Qemu::boot(&fw, Build::Writable, Some(&flash));
        let listing = qemu.run(
            "import os\ntry:\n print(len(os.listdir('/rom')))\nexcept OSError:\n print('none')\n",
        );
        assert_eq!(
            listing.trim() == "none",
            seen.is_none(),
            "point {i}: {listing}"
        );
        let mut board = Board::open(Some(qemu.pty()), Timeouts::default()).unwrap();
        deploy(&mut board, &new, 0, &NoProgress)
            .unwrap_or_else(|e| panic!("point {i}: the second deploy failed: {e}"));
        let after = query(&mut board, 0).unwrap();
        match after.contents {
            Contents::Image(s) => {
                assert_eq!(s.len, new.len() as u64);
                assert!(matches!(s.checksum, ChecksumState::Matches(_)), "{s:?}");
            }
            other => panic!("point {i}: after the second deploy: {other:?}"),
        }
        if i + 1 == points {
            // (Every point's image was compared above; run one.)
            board.soft_reset().unwrap();
            assert_eq!(qemu.run("import aaa\nprint(aaa.X)\n").trim(), "1");
        }
    }
    eprintln!(
        "{points} interruption points over a {whole:?} deploy: old image {}, no image {}, new image {}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    // The points reach into the deploy: the first leaves the old image,
    // some leave none.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
