//! `romfs verify`: every finding with its offset; exit status 1 when there
//! are any.

use std::fs;

use predicates::prelude::*;
use romfs_format::Image;

use crate::{built, data_offset, fails, json_of, key_pair, romfs, verify_with_key};

#[test]
fn verify_reports_findings_with_offsets() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    romfs()
        .arg("verify")
        .arg(&img)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "OK (7 files, 3 directories, checksum valid)",
        ));
    let v = json_of(romfs().arg("verify").arg(&img).arg("--json"));
    assert_eq!(v["clean"], true);
    assert_eq!(v["findings"].as_array().unwrap().len(), 0);

    // Flip a byte of file data: the checksum no longer matches.
    let mut bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let off = data_offset(&image, b"notes.txt");
    bytes[off] ^= 0xff;
    let bad = t.path().join("bad.img");
    fs::write(&bad, &bytes).unwrap();
    let at = format!("offset {:#x}: checksum mismatch", bytes.len() - 4);
    romfs()
        .arg("verify")
        .arg(&bad)
        .assert()
        .code(1)
        .stderr("")
        .stdout(predicate::str::contains(at));
    let json = romfs()
        .arg("verify")
        .arg(&bad)
        .arg("--json")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(v["checksum"], "mismatch");
    assert_eq!(v["findings"][0]["offset"], bytes.len() - 4);

    // Not an image at all.
    let junk = t.path().join("junk.img");
    fs::write(&junk, b"hello world").unwrap();
    romfs()
        .arg("verify")
        .arg(&junk)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("offset 0x0: not a ROMFS image"));
    fails(
        romfs().arg("info").arg(&junk),
        1,
        "junk.img: not a ROMFS image",
    );
    let empty = t.path().join("empty.img");
    fs::write(&empty, b"").unwrap();
    fails(romfs().arg("ls").arg(&empty), 1, "shorter than");
}

/// `app` signed for product `p`, generation 1 by `t/k.pem`; the other key
/// pair is `t/other.pem`. Returns the signed image's path.
fn signed(t: &std::path::Path) -> std::path::PathBuf {
    let img = built(t);
    for name in ["k", "other"] {
        key_pair(&t.join(name));
    }
    romfs()
        .arg("sign")
        .arg(&img)
        .arg("--key")
        .arg(t.join("k.pem"))
        .args(["--product", "p", "--generation", "1"])
        .assert()
        .success();
    img
}

/// The verdict lines (`IMAGE: OK ...` or `IMAGE: FAILED ...`) in `stdout`.
fn verdicts(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.contains(": OK") || l.contains(": FAILED"))
        .collect()
}

#[test]
fn verify_with_the_wrong_key_gives_one_verdict() {
    let t = tempfile::tempdir().unwrap();
    let img = signed(t.path());
    let out = verify_with_key(t.path().join("other.pub.pem"), &img)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("signature BAD: "), "{stdout}");
    let verdicts = verdicts(&stdout);
    assert_eq!(verdicts.len(), 1, "{stdout}");
    assert!(verdicts[0].contains("FAILED"), "{stdout}");
    let v = json_of_failing(verify_with_key(t.path().join("other.pub.pem"), &img).arg("--json"));
    assert_eq!(v["clean"], false, "{v}");
}

/// The JSON a command prints as it exits 1.
fn json_of_failing(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn verify_without_a_key_sees_signed_content_changed() {
    let t = tempfile::tempdir().unwrap();
    let img = signed(t.path());
    // Change a file's data and make the checksum match again: only the
    // manifest's SHA-256 still tells, and it needs no key.
    let mut bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let off = data_offset(&image, b"notes.txt");
    let (end, _) = image.reader().stored_checksum().unwrap().unwrap();
    bytes[off] ^= 0x20;
    let crc = romfs_format::crc32::checksum(&bytes[..end - 4]);
    bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    let bad = t.path().join("changed.img");
    fs::write(&bad, &bytes).unwrap();

    let out = romfs().arg("verify").arg(&bad).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("SHA-256"), "{stdout}");
    let verdicts = verdicts(&stdout);
    assert_eq!(verdicts.len(), 1, "{stdout}");
    assert!(verdicts[0].contains("FAILED"), "{stdout}");
    let v = json_of_failing(romfs().arg("verify").arg("--json").arg(&bad));
    assert_eq!(v["clean"], false, "{v}");
}
