//! Damaged images (a flipped byte; signed bytes changed with the CRC made
//! to match): `cat`, `extract` and `sign` refuse them unless told
//! `--ignore-checksum`, `deploy` refuses them before opening a board,
//! `info` warns, `ls` reads only directory records and checks only those
//! (FORMAT.md, "What each command checks").

use std::fs;
use std::path::{Path, PathBuf};

use romfs_format::Image;

use crate::{blob, built, data_offset, fails, key_pair, romfs};

/// `img` with one byte of `blob.bin`'s data flipped, at `t/name`.
fn flipped(img: &Path, name: &str, fix_crc: bool) -> PathBuf {
    let mut bytes = fs::read(img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let off = data_offset(&image, b"blob.bin");
    let end = image
        .reader()
        .stored_checksum()
        .unwrap()
        .map(|(end, _)| end);
    bytes[off + 10] ^= 0x01;
    if fix_crc {
        let end = end.unwrap();
        let crc = romfs_format::crc32::checksum(&bytes[..end - 4]);
        bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    }
    let out = img.with_file_name(name);
    fs::write(&out, &bytes).unwrap();
    out
}

#[test]
fn cat_and_extract_refuse_a_corrupt_image() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let bad = flipped(&img, "bad.img", false);

    fails(
        romfs().arg("cat").arg(&bad).arg("blob.bin"),
        1,
        "bad.img: checksum mismatch",
    );
    let dest = t.path().join("out");
    let stderr = fails(
        romfs().arg("extract").arg(&bad).arg(&dest),
        1,
        "--ignore-checksum",
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(!dest.exists(), "nothing is extracted");

    // Told to, they read it, and warn.
    let out = romfs()
        .arg("cat")
        .arg(&bad)
        .arg("notes.txt")
        .arg("--ignore-checksum")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: "));
    let out = romfs()
        .arg("extract")
        .arg(&bad)
        .arg(&dest)
        .arg("--ignore-checksum")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: "));
    assert_ne!(fs::read(dest.join("blob.bin")).unwrap(), blob());

    // The intact image reads without a word.
    let out = romfs()
        .arg("cat")
        .arg(&img)
        .arg("blob.bin")
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
    assert_eq!(out.stdout, blob());
}

#[test]
fn cat_refuses_a_signed_image_whose_signed_bytes_changed() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    signed(t.path(), &img);
    // The CRC matches again: only the manifest's SHA-256 tells.
    let bad = flipped(&img, "changed.img", true);
    fails(
        romfs().arg("cat").arg(&bad).arg("blob.bin"),
        1,
        "do not match the SHA-256 in the signed manifest",
    );
    let out = romfs().arg("info").arg(&bad).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("warning: ") && stderr.contains("SHA-256"),
        "{stderr}"
    );
    // The mounter's own checks (structure, CRC) pass: the digest refuses it,
    // before anything is mounted.
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fails(
        romfs().arg("mount").arg(&bad).arg(&mnt),
        1,
        "do not match the SHA-256 in the signed manifest",
    );
    fails(
        crate::romfs_mount().arg(&bad).arg(&mnt),
        1,
        "do not match the SHA-256 in the signed manifest",
    );
}

#[test]
fn info_warns_and_ls_reads_only_directory_records() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let bad = flipped(&img, "bad.img", false);
    let out = romfs().arg("info").arg(&bad).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.matches("warning: ").count(),
        1,
        "said once: {stderr}"
    );
    assert!(stderr.contains("bad.img: checksum mismatch"), "{stderr}");
    // `ls` and `tree` do not read file data (nor the whole image for its
    // CRC, which would make them as slow as `verify`): the listing stands.
    for cmd in ["ls", "tree"] {
        let out = romfs().arg(cmd).arg(&bad).output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            out.stdout,
            romfs().arg(cmd).arg(&img).output().unwrap().stdout
        );
    }
}

/// `img` signed (with `t/k.pem`, made here).
fn signed(t: &Path, img: &Path) {
    key_pair(&t.join("k"));
    romfs()
        .arg("sign")
        .arg(img)
        .arg("--key")
        .arg(t.join("k.pem"))
        .args(["--product", "p", "--generation", "1"])
        .assert()
        .success();
}

#[test]
fn deploy_refuses_a_damaged_image_before_any_board() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    signed(t.path(), &img);
    let corrupt = flipped(&img, "corrupt.img", false);
    // The CRC matches again: only the manifest's SHA-256 tells.
    let changed = flipped(&img, "changed.img", true);
    for (bad, message) in [
        (&corrupt, "corrupt.img: checksum mismatch"),
        (&changed, "do not match the SHA-256 in the signed manifest"),
    ] {
        // No board is opened: the port does not exist.
        let stderr = fails(
            romfs()
                .arg("deploy")
                .arg(bad)
                .args(["--port", "/nonexistent/tty"]),
            1,
            message,
        );
        assert_eq!(
            stderr.matches(&*bad.display().to_string()).count(),
            1,
            "the file is named once: {stderr}"
        );
        assert!(stderr.contains("nothing was deployed"), "{stderr}");
        assert!(!stderr.contains("/nonexistent/tty"), "{stderr}");
    }
}

#[test]
fn sign_refuses_a_changed_image_unless_told_to_ignore_the_checksum() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let unsigned_corrupt = flipped(&img, "unsigned-corrupt.img", false);
    signed(t.path(), &img);
    let corrupt = flipped(&img, "corrupt.img", false);
    // The CRC matches again: only the manifest's SHA-256 tells, and
    // signing again would vouch for the change.
    let changed = flipped(&img, "changed.img", true);
    let sign = |bad: &Path| {
        let mut c = romfs();
        c.arg("sign")
            .arg(bad)
            .arg("--key")
            .arg(t.path().join("k.pem"))
            .args(["--product", "p", "--generation", "2"]);
        c
    };
    for (bad, message) in [
        (&unsigned_corrupt, "checksum mismatch"),
        (&corrupt, "checksum mismatch"),
        (&changed, "do not match the SHA-256 in the signed manifest"),
    ] {
        let before = fs::read(bad).unwrap();
        let stderr = fails(&mut sign(bad), 1, message);
        assert_eq!(
            stderr.matches(&*bad.display().to_string()).count(),
            1,
            "the file is named once: {stderr}"
        );
        assert!(stderr.contains("--ignore-checksum"), "{stderr}");
        assert_eq!(fs::read(bad).unwrap(), before, "nothing changes");

        // Told to, it signs the bytes as they are, checksum made to match,
        // and warns.
        let out = sign(bad).arg("--ignore-checksum").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("warning: ") && stderr.contains(message),
            "{stderr}"
        );
        let resigned = fs::read(bad).unwrap();
        let key = romfs_sign::SigningKey::load(&t.path().join("k.pem")).unwrap();
        romfs_sign::verify(&resigned, &key.public_key()).unwrap();
        let image = Image::parse(&resigned).unwrap();
        let node = image.lookup(b"blob.bin").unwrap().unwrap();
        assert_ne!(node.as_file().unwrap().data(), blob(), "signed as it is");
        romfs()
            .arg("cat")
            .arg(bad)
            .arg("blob.bin")
            .assert()
            .success();
    }
}
