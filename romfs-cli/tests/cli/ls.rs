//! `romfs ls`: names, long listing, JSON.

use predicates::prelude::*;

use crate::{built, fails, json_of, romfs};

#[test]
fn ls_lists_names_long_and_json() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    romfs()
        .arg("ls")
        .arg(&img)
        .assert()
        .success()
        .stdout("blob.bin\nempty/\nlib/\nmain.py\nmodel.tflite\nnotes.txt\n");
    romfs()
        .arg("ls")
        .arg(&img)
        .arg("lib")
        .arg("-l")
        .assert()
        .success()
        .stdout(
            predicate::str::is_match(r"file +3000 +0x[0-9a-f]+  blob_copy.bin \(shared\)\n")
                .unwrap(),
        )
        .stdout(predicate::str::is_match(r"dir +- +-  pkg/\n").unwrap());
    let v = json_of(romfs().arg("ls").arg(&img).arg("/lib").arg("--json"));
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[1]["name"], "helper.py");
    assert_eq!(arr[1]["path"], "lib/helper.py");
    assert_eq!(arr[1]["type"], "file");
    assert_eq!(arr[1]["size"], 23);
    assert_eq!(arr[2]["type"], "dir");
    // A directory has no size (nor offset), as in `ls -l` and the mount's 0.
    assert_eq!(arr[2].get("size"), None, "{v}");
    assert_eq!(arr[2].get("offset"), None, "{v}");
    romfs()
        .arg("ls")
        .arg(&img)
        .arg("main.py")
        .assert()
        .success()
        .stdout("main.py\n");
    fails(
        romfs().arg("ls").arg(&img).arg("nope"),
        1,
        "nope: no such file",
    );
}

#[test]
fn tree_json_gives_directories_no_size() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let v = json_of(romfs().arg("tree").arg(&img).arg("--json"));
    let lib = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "lib")
        .unwrap();
    assert_eq!(lib["type"], "dir");
    assert_eq!(lib.get("size"), None, "{lib}");
    let helper = &lib["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "helper.py")
        .unwrap()["size"];
    assert_eq!(*helper, 23);
}
