//! `romfs tree`: the drawing and the nested JSON.

use crate::{built, json_of, romfs};

#[test]
fn tree_draws_the_image() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    romfs().arg("tree").arg(&img).assert().success().stdout(
        "/\n├── blob.bin\n├── empty/\n├── lib/\n│   ├── blob_copy.bin\n│   ├── helper.py\n│   └── pkg/\n│       └── __init__.py\n├── main.py\n├── model.tflite\n└── notes.txt\n\n3 directories, 7 files\n",
    );
}

#[test]
fn tree_json_nests_children() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let v = json_of(romfs().arg("tree").arg(&img).arg("--json"));
    let root = v.as_array().unwrap();
    let names: Vec<&str> = root.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "blob.bin",
            "empty",
            "lib",
            "main.py",
            "model.tflite",
            "notes.txt"
        ]
    );
    assert_eq!(
        root[1]["children"].as_array().unwrap().len(),
        0,
        "empty dir"
    );
    assert!(root[0].get("children").is_none(), "files have no children");
    let lib = root[2]["children"].as_array().unwrap();
    assert_eq!(lib[2]["path"], "lib/pkg");
    assert_eq!(lib[2]["children"][0]["path"], "lib/pkg/__init__.py");
    assert_eq!(lib[0]["shared"], true);
}
