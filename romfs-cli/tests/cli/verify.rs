//! `romfs verify`: every finding with its offset; exit status 1 when there
//! are any.

use std::fs;

use predicates::prelude::*;
use romfs_format::Image;

use crate::{built, fails, json_of, romfs};

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
    let off = image
        .lookup(b"notes.txt")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap()
        .data_offset();
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
