//! `romfs extract`: the tree comes back, nothing is overwritten unasked,
//! and no name or symlink can lead a write outside the destination.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use predicates::prelude::*;
use romfs_format::Image;

use crate::{built, fails, romfs, snapshot};

#[test]
fn extract_recreates_the_tree() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let dest = t.path().join("out");
    romfs()
        .arg("extract")
        .arg(&img)
        .arg(&dest)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "extracted 7 files and 3 directories",
        ));
    assert_eq!(
        snapshot(&dest)
            .into_iter()
            .map(|(p, d)| (p.strip_prefix(&dest).unwrap().to_path_buf(), d))
            .collect::<Vec<_>>(),
        snapshot(&t.path().join("app"))
            .into_iter()
            .map(|(p, d)| (
                p.strip_prefix(t.path().join("app")).unwrap().to_path_buf(),
                d
            ))
            .collect::<Vec<_>>()
    );
    assert!(dest.join("empty").is_dir());
    // Existing files are not overwritten without --force.
    fs::write(dest.join("main.py"), "changed").unwrap();
    refused_then_forced(&img, &dest, "already exists");
    assert_eq!(
        fs::read(dest.join("main.py")).unwrap(),
        fs::read(t.path().join("app/main.py")).unwrap()
    );
}

/// An image whose only entry is a file named `name` (hand-encoded: the
/// writer refuses such names).
fn image_with_name(name: &[u8]) -> Vec<u8> {
    let mut file_payload = vec![name.len() as u8];
    file_payload.extend_from_slice(name);
    file_payload.extend_from_slice(&[2, 3, b'a', b'b', b'c']);
    let mut rec = vec![5, file_payload.len() as u8];
    rec.extend_from_slice(&file_payload);
    let mut img = vec![0xd2, 0xcd, 0x31];
    if (4 + rec.len()) % 2 == 1 {
        img.push(0x80);
    }
    img.push(rec.len() as u8);
    img.extend_from_slice(&rec);
    img
}

#[test]
fn extract_refuses_escaping_names() {
    let t = tempfile::tempdir().unwrap();
    for name in [&b".."[..], b"../evil", b"/etc", b".", b"", b"a\0b"] {
        let img = t.path().join("evil.img");
        fs::write(&img, image_with_name(name)).unwrap();
        assert_eq!(
            Image::parse(&fs::read(&img).unwrap())
                .unwrap()
                .root()
                .entries()
                .count(),
            1
        );
        let dest = t.path().join("dest");
        fails(
            romfs().arg("extract").arg(&img).arg(&dest),
            1,
            "refusing to extract",
        );
        assert!(!dest.exists(), "nothing extracted for {name:?}");
        romfs().arg("verify").arg(&img).assert().code(1);
    }
    assert!(!t.path().join("evil").exists());
}

#[test]
fn extract_keeps_names_the_format_allows() {
    // Not UTF-8 (MicroPython cannot list it), but a valid host file name.
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("latin1.img");
    fs::write(&img, image_with_name(b"caf\xe9")).unwrap();
    let dest = t.path().join("dest");
    romfs()
        .arg("extract")
        .arg(&img)
        .arg(&dest)
        .assert()
        .success();
    use std::os::unix::ffi::OsStrExt;
    let path = dest.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    assert_eq!(fs::read(path).unwrap(), b"abc");
}

#[test]
fn extract_never_writes_through_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let victim = t.path().join("victim.txt");
    fs::write(&victim, "keep me").unwrap();

    // A symlink where a directory of the image goes.
    let dest = t.path().join("dest1");
    fs::create_dir(&dest).unwrap();
    symlink(&elsewhere, dest.join("lib")).unwrap();
    fails(
        romfs().arg("extract").arg(&img).arg(&dest).arg("--force"),
        1,
        "lib: exists and is not a directory",
    );
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A symlink where a file goes: replaced with --force, never followed.
    let dest = t.path().join("dest2");
    fs::create_dir(&dest).unwrap();
    symlink(&victim, dest.join("main.py")).unwrap();
    refused_then_forced(&img, &dest, "main.py: already exists");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!fs::symlink_metadata(dest.join("main.py"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// `romfs extract IMG DEST` refuses (naming `what`) to overwrite what DEST
/// holds, and with `--force` extracts.
fn refused_then_forced(img: &Path, dest: &Path, what: &str) {
    fails(romfs().arg("extract").arg(img).arg(dest), 1, what);
    romfs()
        .arg("extract")
        .arg(img)
        .arg(dest)
        .arg("--force")
        .assert()
        .success();
}
