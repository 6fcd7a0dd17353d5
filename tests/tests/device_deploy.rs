//! `romfs_device` against the emulated MicroPython board (QEMU): query an
//! empty and a full partition, deploy a directory of bytecode, viper and
//! data files and run it from `/rom` and `/rom/lib`, redeploy after a
//! one-file change writing only the blocks that changed, refuse an image
//! too large, and a clear error from the stock (read-only) firmware.
#![forbid(unsafe_code)]

mod device_support;

use std::fs;

use device_support::*;
use romfs_device::deploy::{deploy, NoProgress};
use romfs_device::query::{ChecksumState, Contents};
use romfs_device::{query, ErrorKind};
use romfs_testkit::board::{Build, Qemu, PARTITION_SIZE};

#[test]
fn query_empty_then_full_partition() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    let mut board = connect(&qemu);
    let empty = query(&mut board, 0).unwrap();
    assert_eq!(empty.partition.size, PARTITION_SIZE as u64);
    assert_eq!(empty.partition.block_size, 4096);
    assert_eq!(empty.write_size, Some(4));
    assert!(empty.writable);
    assert_eq!(empty.contents, Contents::Empty);

    let (t, src) = app_dir(3);
    // A label and generation to read back.
    let img = t.path().join("app.img");
    let opts = romfs_build::BuildOptions {
        mpy: romfs_build::MpyMode::Always,
        mpy_cross: Some(mpy_cross),
        march: Some(board.mpy_target().unwrap().arch),
        label: Some("sensor-app".into()),
        generation: Some(42),
        ..romfs_build::BuildOptions::default()
    };
    romfs_build::build(&src, &img, &opts, &romfs_build::NoProgress).unwrap();
    let image = fs::read(&img).unwrap();
    let crc = u32::from_le_bytes(image[image.len() - 4..].try_into().unwrap());
    drop(board);
    drop(qemu);

    // Booted with the image in flash: the full partition.
    let qemu = Qemu::boot(&fw, Build::Writable, Some(&image));
    let mut board = connect(&qemu);
    let full = query(&mut board, 0).unwrap();
    let Contents::Image(summary) = &full.contents else {
        panic!("no image found: {full:?}")
    };
    assert_eq!(summary.len, image.len() as u64);
    assert_eq!(summary.label.as_deref(), Some("sensor-app"));
    assert_eq!(summary.generation, Some(42));
    assert_eq!(
        summary.tool.as_deref(),
        Some(concat!("romfs ", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(summary.checksum, ChecksumState::Matches(crc));
    // The image does not reach the last block: the write size is known.
    assert_eq!(full.write_size, Some(4));
    drop(board);
    drop(qemu);

    // One flipped bit in a file's data: the CRC no longer matches the flash.
    let mut corrupt = image.clone();
    let at = image.len() / 2;
    corrupt[at] ^= 0x10;
    let qemu = Qemu::boot(&fw, Build::Writable, Some(&corrupt));
    let mut board = connect(&qemu);
    let report = query(&mut board, 0).unwrap();
    let Contents::Image(summary) = &report.contents else {
        panic!("no image found: {report:?}")
    };
    assert!(
        matches!(summary.checksum, ChecksumState::Mismatch { stored, on_flash } if stored == crc && on_flash != crc),
        "{:?}",
        summary.checksum
    );
}

#[test]
fn deployed_directory_runs_from_rom_after_soft_reset() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let (mut qemu, mut board, target) = writable_board(&fw);
    let (t, src) = app_dir(10);
    let image = build_for(&src, &t.path().join("app.img"), &mpy_cross, target);
    let report = deploy(&mut board, &image, 0, &NoProgress).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.written.len() as u64, report.blocks);
    assert_eq!(
        *report.written.last().unwrap(),
        0,
        "block 0 is written last"
    );
    board.soft_reset().unwrap();

    let out = qemu.run(
        "import sys, os\n\
         print(sys.path)\n\
         print(sorted(os.listdir('/rom')))\n\
         import main, pkg, mod009\n\
         print(main.run())\n\
         print(pkg.VERSION, mod009.NAME, mod009.f3(2) - mod009.f3(1) == mod009.f3(1) - mod009.f3(0))\n\
         print(main.__file__, main.helper.__file__)\n\
         f = open('/rom/data/table.bin', 'rb')\n\
         import hashlib, binascii\n\
         print(binascii.hexlify(hashlib.sha256(f.read()).digest()).decode())\n",
    );
    let table = fs::read(src.join("data/table.bin")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "['', '/rom', '/rom/lib']", "{out}");
    assert_eq!(lines[1], "['data', 'fast.mpy', 'lib', 'main.mpy']", "{out}");
    assert_eq!(lines[2], "main hello rom 4950 42", "{out}");
    assert_eq!(lines[3], "(1, 2) mod009 True", "{out}");
    assert_eq!(lines[4], "/rom/main.mpy /rom/lib/helper.mpy", "{out}");
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&table)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(lines[5], want, "{out}");
}

#[test]
fn redeploy_after_one_file_change_writes_only_changed_blocks() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let (mut qemu, mut board, target) = writable_board(&fw);
    let (t, src) = app_dir(40);
    let old = build_for(&src, &t.path().join("old.img"), &mpy_cross, target);
    let first = deploy(&mut board, &old, 0, &NoProgress).unwrap();
    assert!(first.blocks >= 8, "the app spans several blocks: {first:?}");

    // Redeploying the same image writes nothing.
    let again = deploy(&mut board, &old, 0, &NoProgress).unwrap();
    assert!(again.up_to_date(), "{again:?}");
    assert!(again.erased.is_empty());
    assert_eq!(again.skipped, again.blocks);

    // Change one module in the middle of the image, keeping its size.
    let path = src.join("lib/mod020.py");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("'mod020'", "'MOD020'");
    fs::write(&path, text).unwrap();
    let new = build_for(&src, &t.path().join("new.img"), &mpy_cross, target);
    assert_eq!(old.len(), new.len());
    let before = qemu.partition_snapshot();
    let report = deploy(&mut board, &new, 0, &NoProgress).unwrap();
    let after = qemu.partition_snapshot();

    let mut expected = blocks_to_change(&before, &new);
    assert!(!expected.is_empty() && expected.len() < 4, "{expected:?}");
    // Block 0 is always rewritten (it is erased first, to invalidate).
    if !expected.contains(&0) {
        expected.insert(0, 0);
    }
    let mut written = report.written.clone();
    written.sort();
    assert_eq!(written, expected, "{report:?}");
    // The board side agrees: exactly these blocks' contents changed, and
    // the partition now holds the new image.
    let mut changed = changed_blocks(&before, &after);
    if !changed.contains(&0) {
        changed.insert(0, 0);
    }
    assert_eq!(changed, expected);
    assert_eq!(&after[..new.len()], &new[..]);
    assert!(
        report.bytes_sent * 2 < first.bytes_sent,
        "redeploy sent {} bytes, full deploy {}",
        report.bytes_sent,
        first.bytes_sent
    );
    board.soft_reset().unwrap();
    assert_eq!(
        qemu.run("import mod020\nprint(mod020.NAME)\n").trim(),
        "MOD020"
    );
}

#[test]
fn redeploy_after_a_file_grows_copies_shifted_data_on_the_board() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let (mut qemu, mut board, target) = writable_board(&fw);
    let (t, src) = app_dir(40);
    let old = build_for(&src, &t.path().join("old.img"), &mpy_cross, target);
    let first = deploy(&mut board, &old, 0, &NoProgress).unwrap();

    // An early module grows: everything after it moves.
    let path = src.join("lib/mod002.py");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("\ndef added(x):\n    return x + 1\n");
    fs::write(&path, text).unwrap();
    let new = build_for(&src, &t.path().join("new.img"), &mpy_cross, target);
    let before = qemu.partition_snapshot();
    let moved = blocks_to_change(&before, &new);
    assert!(
        moved.len() * 2 > first.blocks as usize,
        "most blocks change: {moved:?}"
    );

    let report = deploy(&mut board, &new, 0, &NoProgress).unwrap();
    assert!(
        report.assembled * 2 > report.written.len() as u64,
        "{report:?}"
    );
    assert!(
        report.bytes_sent * 4 < first.bytes_sent,
        "redeploy sent {} bytes, full deploy {}",
        report.bytes_sent,
        first.bytes_sent
    );
    let after = qemu.partition_snapshot();
    assert_eq!(&after[..new.len()], &new[..]);
    board.soft_reset().unwrap();
    assert_eq!(
        qemu.run("import mod002, mod039\nprint(mod002.added(1), mod039.NAME)\n")
            .trim(),
        "2 mod039"
    );
}

#[test]
fn image_too_large_is_refused_before_writing() {
    let Some((fw, _)) = setup() else { return };
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    let mut board = connect(&qemu);
    // One file of exactly the partition's size: the image is larger.
    let mut tree = romfs_format::write::MemoryTree::new();
    let root = tree.root();
    tree.add_file(root, b"big.bin", vec![0x5au8; PARTITION_SIZE])
        .unwrap();
    let image = tree
        .build(&romfs_format::write::Options::default())
        .unwrap();
    let over = image.len() - PARTITION_SIZE;
    let err = deploy(&mut board, &image, 0, &NoProgress).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::TooLarge { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the image ({} bytes) is larger than the ROM partition ({PARTITION_SIZE} bytes) by {over} bytes",
            qemu.pty(),
            image.len()
        )
    );
    // Nothing was written: the partition is still all zeros.
    let report = query(&mut board, 0).unwrap();
    assert_eq!(report.contents, Contents::Empty);
}

#[test]
fn stock_firmware_refuses_writes_with_a_clear_error() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let (t, src) = app_dir(1);
    let target = board_target(&fw);
    let image = build_for(&src, &t.path().join("app.img"), &mpy_cross, target);

    let qemu = Qemu::boot(&fw, Build::Stock, None);
    let mut board = connect(&qemu);
    let report = query(&mut board, 0).unwrap();
    assert!(!report.writable, "{report:?}");
    assert_eq!(report.write_size, None);
    let err = deploy(&mut board, &image, 0, &NoProgress).unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::ReadOnly { id: 0, code: -22 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: ROM partition 0 is read-only: the firmware refused to erase it (-22, EINVAL); flash a firmware whose vfs.rom_ioctl can write it",
            qemu.pty()
        )
    );
}
