//! `romfs cat`: binary-safe output, errors, broken pipes.

use crate::{blob, built, fails, romfs};

#[test]
fn cat_writes_files() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("lib/blob_copy.bin")
        .assert()
        .success()
        .stdout(blob());
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("/lib/pkg/__init__.py")
        .assert()
        .success()
        .stdout("");
    fails(
        romfs().arg("cat").arg(&img).arg("lib"),
        1,
        "lib: is a directory",
    );
    fails(
        romfs().arg("cat").arg(&img).arg("main.py/x"),
        1,
        "no such file",
    );
    fails(
        romfs()
            .arg("cat")
            .arg(t.path().join("missing.img"))
            .arg("x"),
        1,
        "missing.img: No such file",
    );
}

#[test]
fn broken_pipe_is_not_an_error() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_romfs"))
        .arg("cat")
        .arg(&img)
        .arg("blob.bin")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(out.status.success(), "{:?}", out.status);
}
