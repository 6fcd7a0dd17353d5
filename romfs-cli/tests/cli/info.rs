//! `romfs info`: which builder's layout an image has.

use std::fs;

use crate::{build_cmd, json_of, romfs, sample};

#[test]
fn reads_mpremote_layout_and_detects_it() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("mp.img");
    build_cmd(&src, &img)
        .args(["--layout", "mpremote", "--no-mpy", "-q"])
        .assert()
        .success();
    let v = json_of(romfs().arg("info").arg(&img).arg("--json"));
    assert_eq!(v["layout"], "mpremote");
    assert_eq!(v["checksum"], "absent");
    assert!(v.get("checksum_value").is_none());
    assert_eq!(v["shared_files"], 0);
    romfs().arg("verify").arg(&img).assert().success();
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("lib/helper.py")
        .assert()
        .success()
        .stdout("def f():\n    return 42\n");
    // A default-layout image without our metadata is not taken for mpremote's.
    let img2 = t.path().join("d.img");
    build_cmd(&src, &img2)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    assert_eq!(
        json_of(romfs().arg("info").arg(&img2).arg("--json"))["layout"],
        "romfs"
    );
    // Without metadata, an aligned, deduplicated image is "other".
    let img3 = t.path().join("o.img");
    let mut tree = romfs_format::write::MemoryTree::new();
    let root = tree.root();
    tree.add_file(root, b"b", vec![1; 40]).unwrap();
    tree.add_file(root, b"a", vec![1; 40]).unwrap();
    let opts = romfs_format::write::Options {
        metadata: None,
        ..Default::default()
    };
    fs::write(&img3, tree.build(&opts).unwrap()).unwrap();
    assert_eq!(
        json_of(romfs().arg("info").arg(&img3).arg("--json"))["layout"],
        "other"
    );
}
