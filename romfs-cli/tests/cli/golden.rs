//! The outputs of `info`, `ls -l`, `tree` and `verify`, plain and `--json`,
//! on a fixed image, compared with the files in `tests/golden/`: an output
//! change shows up as a diff to review. After a deliberate change, rewrite
//! them with `UPDATE_GOLDEN=1 cargo test -p romfs-cli --test cli golden`.

use std::fs;
use std::path::{Path, PathBuf};

use romfs_format::write::{MemoryTree, MetadataSpec, Options, SignatureSpec};
use romfs_format::Image;
use romfs_sign::SigningKey;

use crate::{data_offset, romfs};

/// A fixed image: nested directories, an empty one, a duplicate (stored
/// once), bytecode and native `.mpy` files, a `.mpy` that is not one,
/// metadata without a build time (so nothing depends on the clock or the
/// crate version). Signed by [`golden_key`] when `signed`.
fn golden_image(signed: bool) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let lib = tree.add_dir(root, b"lib").unwrap();
    let drivers = tree.add_dir(lib, b"drivers").unwrap();
    tree.add_dir(root, b"empty").unwrap();
    let blob: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mpy = |arch_byte: u8, body: &str| [&[b'M', 6, arch_byte, 31][..], body.as_bytes()].concat();
    tree.add_file(root, b"main.mpy", mpy(0, "main")).unwrap();
    tree.add_file(root, b"config.json", b"{\"name\": \"demo\"}\n".to_vec())
        .unwrap();
    tree.add_file(root, b"logo.bin", blob.clone()).unwrap();
    tree.add_file(lib, b"util.mpy", mpy(0, "util")).unwrap();
    tree.add_file(lib, b"logo_copy.bin", blob).unwrap();
    tree.add_file(lib, b"fake.mpy", b"print(1)\n".to_vec())
        .unwrap();
    // armv7emsp (7), native sub-version 3.
    tree.add_file(drivers, b"fast.mpy", mpy((7 << 2) | 3, "fast"))
        .unwrap();
    tree.add_file(drivers, b"empty.txt", Vec::new()).unwrap();
    let opts = Options {
        metadata: Some(MetadataSpec {
            tool: Some("romfs golden-test".into()),
            label: Some("fw-1.2".into()),
            generation: Some(7),
            build_time: None,
            product: Some("demo-board".into()),
        }),
        signature: signed.then(|| SignatureSpec {
            product: "demo-board".into(),
            generation: 7,
        }),
        ..Options::default()
    };
    let mut image = tree.build(&opts).unwrap();
    if signed {
        // Ed25519 is deterministic: the same key gives the same bytes.
        romfs_sign::sign(&mut image, &golden_key()).unwrap();
    }
    image
}

/// The key the signed golden image is signed with.
fn golden_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5e; 32])
}

/// The golden image with one byte of `config.json`'s data flipped.
fn corrupt(mut image: Vec<u8>) -> Vec<u8> {
    let parsed = Image::parse(&image).unwrap();
    let at = data_offset(&parsed, b"config.json");
    image[at] ^= 0x20;
    image
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compare `actual` with the golden file `name` (or rewrite it under
/// `UPDATE_GOLDEN=1`); a description of the difference, if any.
fn compare(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&path, actual).unwrap();
        return None;
    }
    let Ok(expected) = fs::read_to_string(&path) else {
        return Some(format!(
            "{name}: no golden file (run with UPDATE_GOLDEN=1 to create it); output:\n{actual}"
        ));
    };
    if expected == actual {
        return None;
    }
    let mut diff = format!("{name} differs (- golden, + now):\n");
    let (old, new): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..old.len().max(new.len()) {
        match (old.get(i), new.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    diff.push_str(&format!("{:>4} - {a}\n", i + 1));
                }
                if let Some(b) = b {
                    diff.push_str(&format!("{:>4} + {b}\n", i + 1));
                }
            }
        }
    }
    Some(diff)
}

#[test]
fn golden_outputs() {
    let t = tempfile::tempdir().unwrap();
    let image = golden_image(false);
    fs::write(t.path().join("app.img"), &image).unwrap();
    fs::write(t.path().join("bad.img"), corrupt(image)).unwrap();
    let signed = golden_image(true);
    fs::write(t.path().join("signed.img"), &signed).unwrap();
    fs::write(t.path().join("altered.img"), corrupt(signed)).unwrap();
    romfs_sign::write_key_pair(&golden_key(), &t.path().join("key")).unwrap();
    romfs_sign::write_key_pair(
        &SigningKey::from_bytes(&[0x77; 32]),
        &t.path().join("other"),
    )
    .unwrap();
    // (golden file, arguments, exit status); run in the image's directory
    // so the outputs name it as `app.img`.
    let cases: &[(&str, &[&str], i32)] = &[
        ("info.txt", &["info", "app.img"], 0),
        ("info.json", &["info", "--json", "app.img"], 0),
        ("info-corrupt.txt", &["info", "bad.img"], 0),
        ("ls-l.txt", &["ls", "-l", "app.img"], 0),
        ("ls-l-lib.txt", &["ls", "-l", "app.img", "lib"], 0),
        ("ls-lib.json", &["ls", "--json", "app.img", "lib"], 0),
        ("tree.txt", &["tree", "app.img"], 0),
        ("tree.json", &["tree", "--json", "app.img"], 0),
        ("verify.txt", &["verify", "app.img"], 0),
        ("verify.json", &["verify", "--json", "app.img"], 0),
        ("verify-corrupt.txt", &["verify", "bad.img"], 1),
        ("verify-corrupt.json", &["verify", "--json", "bad.img"], 1),
        ("info-signed.txt", &["info", "signed.img"], 0),
        ("info-signed.json", &["info", "--json", "signed.img"], 0),
        ("info-signed-altered.txt", &["info", "altered.img"], 0),
        (
            "verify-signed.txt",
            &["verify", "--key", "key.pub.pem", "signed.img"],
            0,
        ),
        (
            "verify-signed.json",
            &["verify", "--json", "--key", "key.pub.pem", "signed.img"],
            0,
        ),
        (
            "verify-signed-other-key.txt",
            &["verify", "--key", "other.pub.pem", "signed.img"],
            1,
        ),
        (
            "verify-signed-altered.txt",
            &["verify", "--key", "key.pub.pem", "altered.img"],
            1,
        ),
        (
            "verify-unsigned-with-key.json",
            &["verify", "--json", "--key", "key.pub.pem", "app.img"],
            1,
        ),
    ];
    let mut differences = Vec::new();
    for &(name, args, code) in cases {
        let out = romfs().current_dir(t.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "romfs {args:?}");
        // Inspecting a damaged image warns (on stderr).
        let stderr = String::from_utf8_lossy(&out.stderr);
        match args.contains(&"info") && (args.contains(&"bad.img") || args.contains(&"altered.img"))
        {
            true => assert!(stderr.contains(": warning: "), "romfs {args:?}: {stderr}"),
            false => assert!(stderr.is_empty(), "romfs {args:?}: {stderr}"),
        }
        let stdout = String::from_utf8(out.stdout).unwrap();
        if name.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&stdout).expect(name);
        }
        differences.extend(compare(name, &stdout));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
