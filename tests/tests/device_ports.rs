//! `romfs deploy` on the emulated board's model of each port's ROM
//! partition (`../shared/device/MODELS.md`: rp2, esp32, stm32 internal
//! flash, alif MRAM; esp8266 and nrf when built): query, a first deploy of
//! bytecode, viper and data files that imports and runs from `/rom` after a
//! soft reset, a one-file redeploy, an unchanged redeploy, an image too
//! large, and a power cut (QEMU `stop` + the saved partition) in the middle
//! of a redeploy after which the board mounts nothing or the whole new
//! image and one rerun completes. After each, every rule counter the model
//! keeps (misaligned, overread, overprogrammed, out of range, ...) is zero.
//! Each model boots once for its cases (and once more per power cut).
#![forbid(unsafe_code)]

mod device_support;

use std::fs;
use std::time::Duration;

use device_support::*;
use romfs_device::deploy::{deploy, NoProgress};
use romfs_device::query::Contents;
use romfs_device::{query, Board, EraseMode, ErrorKind};
use romfs_testkit::board::{Build, Qemu};

/// The model's counters, asserting every rule counter is zero.
fn assert_clean(
    board: &mut Board<romfs_device::SerialTransport>,
    model: &str,
    when: &str,
) -> String {
    let counters = board
        .flash_counters()
        .unwrap()
        .unwrap_or_else(|| panic!("{model}: the model has no counters"));
    let body = counters.trim_matches(|c| c == '{' || c == '}');
    for pair in body.split(", ") {
        let (key, value) = pair.split_once(": ").unwrap();
        let key = key.trim_matches('\'');
        let rule = !matches!(key, "sector_erases" | "page_programs" | "program_calls");
        if rule {
            assert_eq!(value, "0", "{model} {when}: {key} = {value} ({counters})");
        }
    }
    counters
}

fn run_from_rom(qemu: &Qemu, model: &str) {
    let board = connect(qemu);
    board.soft_reset().unwrap();
    let mut board = connect(qemu);
    let out = board.exec("import main; print(main.run())").unwrap();
    assert!(
        out.stderr.is_empty(),
        "{model}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("main hello rom 4950 42"),
        "{model}: {text}"
    );
}

#[test]
fn every_port_model_deploys_redeploys_and_survives_power_cuts() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let target = board_target(&fw);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 30);
    let v1 = build_for(&src, &t.path().join("v1.img"), &mpy_cross, target);
    fs::write(
        src.join("lib/mod007.py"),
        "NAME = 'edited'\n\ndef f0(x):\n    return x\n",
    )
    .unwrap();
    let v2 = build_for(&src, &t.path().join("v2.img"), &mpy_cross, target);
    assert_ne!(v1, v2);

    for model in fw.models() {
        let qemu = Qemu::boot(&fw, Build::Model(model), None);
        let mut board = connect(&qemu);
        let q = query(&mut board, 0).unwrap();
        assert!(q.writable, "{model}: {q:?}");
        assert_eq!(q.contents, Contents::Empty, "{model}");
        let p = q.partition;
        // What each port's sources say (FORMAT.md, "Writing a ROM partition").
        let (mode, unit, blockdev) = match model {
            "rp2" => (EraseMode::Block, 256, true),
            "esp32" => (EraseMode::Block, 1, true),
            "nrf" => (EraseMode::Block, 4, true),
            "stm32-internal" => (EraseMode::Block, 32, false),
            "alif-mram" => (EraseMode::None, 16, false),
            "esp8266" => (EraseMode::Prefix, 4, false),
            other => panic!("unknown model {other}"),
        };
        assert_eq!(
            (p.mode, p.program_unit, p.block_device),
            (mode, unit, blockdev),
            "{model}"
        );
        // Query wrote nothing.
        let c = assert_clean(&mut board, model, "after query");
        assert!(c.contains("'program_calls': 0"), "{model}: {c}");

        let first = deploy(&mut board, &v1, 0, &NoProgress).unwrap();
        assert!(!first.up_to_date());
        assert_clean(&mut board, model, "after the first deploy");
        drop(board);
        run_from_rom(&qemu, model);

        let mut board = connect(&qemu);
        let again = deploy(&mut board, &v2, 0, &NoProgress).unwrap();
        // The edit moves what follows it (until builds keep the layout):
        // blocks before it stay.
        assert!(again.blocks == 1 || again.skipped > 0, "{model}: {again:?}");
        assert_clean(&mut board, model, "after the one-file redeploy");
        let same = deploy(&mut board, &v2, 0, &NoProgress).unwrap();
        assert!(same.up_to_date(), "{model}: {same:?}");

        // A real image that does not fit.
        let mut tree = romfs_format::write::MemoryTree::new();
        let root = tree.root();
        tree.add_file(root, b"big.bin", vec![7u8; p.size as usize])
            .unwrap();
        let big = tree
            .build(&romfs_format::write::Options::default())
            .unwrap();
        let e = deploy(&mut board, &big, 0, &NoProgress).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{model}: {e}");
        assert_clean(&mut board, model, "after the refused image");
        drop(board);
        run_from_rom(&qemu, model);
        drop(qemu);

        // Power cuts in the middle of a redeploy from v1 to v2.
        for delay_ms in [150u64, 400] {
            let mut qemu = Qemu::boot(&fw, Build::Model(model), None);
            let mut board = connect(&qemu);
            deploy(&mut board, &v1, 0, &NoProgress).unwrap();
            let stopper = qemu.stopper();
            let cut = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let mut stopper = stopper;
                stopper.stop();
            });
            let _ = deploy(&mut board, &v2, 0, &NoProgress);
            cut.join().unwrap();
            drop(board);
            let part = qemu.partition();
            drop(qemu);
            let part = &part[..p.size as usize];
            let mounts_new = part.starts_with(&v2);
            let mounts_old = part.starts_with(&v1);
            let mounts_nothing = part[..3] != [0xd2, 0xcd, 0x31];
            assert!(
                mounts_new || mounts_old || mounts_nothing,
                "{model}: a cut after {delay_ms} ms left a partition that mounts a mix"
            );
            // Power up with it; one rerun completes.
            let qemu = Qemu::boot(&fw, Build::Model(model), Some(part));
            let mut board = connect(&qemu);
            deploy(&mut board, &v2, 0, &NoProgress).unwrap();
            assert_clean(&mut board, model, "after the rerun");
            drop(board);
            run_from_rom(&qemu, model);
        }
    }
}
