//! `romfs build` with `.mpy`: compiling through mpy-cross (found on PATH
//! or given), and the device's header checks of every `.mpy` file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use romfs_format::Image;

use crate::build::build_fails;
use crate::{build_cmd, fails, files_of, json_of, leftovers, names_of, romfs, sample, snapshot};

/// A stand-in for mpy-cross: records its arguments and writes a bytecode
/// `.mpy` header followed by the source; fails on sources containing "SYNTAX".
fn fake_mpy_cross(dir: &Path) -> PathBuf {
    let path = dir.join("fake-mpy-cross");
    let log = dir.join("calls.log");
    fs::write(
        &path,
        format!(
            r#"#!/bin/sh
echo "$@" >> {log}
out=""; src=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2;;
    -s) shift 2;;
    -*) shift;;
    *) src="$1"; shift;;
  esac
done
if grep -q SYNTAX "$src"; then
  echo "Traceback (most recent call last):" >&2
  echo "  File \"$src\", line 1" >&2
  echo "SyntaxError: invalid syntax" >&2
  exit 1
fi
printf 'M\006\000\037' > "$out"
cat "$src" >> "$out"
"#,
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn mpy_compilation_plumbing() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    // A prebuilt .mpy beside its .py: the .py is stored, not compiled.
    fs::write(src.join("lib/pre.py"), "x = 1\n").unwrap();
    fs::write(src.join("lib/pre.mpy"), b"M\x06\x00\x1fprebuilt").unwrap();
    let fake = fake_mpy_cross(t.path());
    let before = snapshot(&src);
    let img = t.path().join("m.img");
    build_cmd(&src, &img)
        .arg("--mpy-cross")
        .arg(&fake)
        .args(["--march", "armv7emsp", "--mpy-cross-arg=-O2", "-j", "3"])
        .assert()
        .success()
        .stderr(predicate::str::contains("3 .py compiled to .mpy"));
    assert_eq!(
        before,
        snapshot(&src),
        "nothing written into the source tree"
    );
    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let files = files_of(&image);
    assert_eq!(
        names_of(&files),
        [
            "blob.bin",
            "lib/blob_copy.bin",
            "lib/helper.mpy",
            "lib/pkg/__init__.mpy",
            "lib/pre.mpy",
            "lib/pre.py",
            "main.mpy",
            "model.tflite",
            "notes.txt"
        ]
    );
    let helper = files.iter().find(|f| f.0 == "lib/helper.mpy").unwrap();
    assert_eq!(&helper.1[..4], b"M\x06\x00\x1f");
    assert_eq!(
        &helper.1[4..],
        fs::read(src.join("lib/helper.py")).unwrap().as_slice()
    );
    // Arguments: target flags, extra args, device path as the source name.
    let calls = fs::read_to_string(t.path().join("calls.log")).unwrap();
    assert_eq!(calls.lines().count(), 3, "{calls}");
    let helper_call = calls.lines().find(|l| l.contains("helper.py")).unwrap();
    assert!(
        helper_call.starts_with("-march=armv7emsp -O2 -s lib/helper.py -o "),
        "{helper_call}"
    );
    assert!(!calls.contains("pre.py"));

    // A compiler error shows the compiler's message and writes nothing.
    fs::write(src.join("lib/broken.py"), "SYNTAX error here\n").unwrap();
    let img2 = t.path().join("broken.img");
    let stderr = fails(
        build_cmd(&src, &img2).arg("--mpy-cross").arg(&fake),
        1,
        "mpy-cross failed on",
    );
    assert!(stderr.contains("lib/broken.py"), "{stderr}");
    assert!(stderr.contains("SyntaxError: invalid syntax"), "{stderr}");
    assert!(!img2.exists());
    assert!(leftovers(t.path()).is_empty());
    fs::remove_file(src.join("lib/broken.py")).unwrap();

    // mpremote layout passes the host path as mpremote does (DIR + "/" + rel)
    // and keeps foo.mpy at foo.py's sorted position.
    fs::write(t.path().join("calls.log"), "").unwrap();
    let img3 = t.path().join("mp.img");
    romfs()
        .current_dir(t.path())
        .args([
            "build",
            "app",
            "-o",
            "mp.img",
            "--layout",
            "mpremote",
            "--mpy-cross",
        ])
        .arg(&fake)
        .assert()
        .success();
    let calls = fs::read_to_string(t.path().join("calls.log")).unwrap();
    assert!(
        calls
            .lines()
            .any(|l| l.ends_with(" app/lib/helper.py") && !l.contains("-s ")),
        "{calls}"
    );
    let bytes = fs::read(&img3).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let lib = image.lookup(b"lib").unwrap().unwrap().as_dir().unwrap();
    let order: Vec<String> = lib
        .entries()
        .map(|e| String::from_utf8_lossy(e.unwrap().name()).into_owned())
        .collect();
    assert_eq!(
        order,
        ["blob_copy.bin", "helper.mpy", "pkg", "pre.mpy", "pre.py"]
    );
}

#[test]
fn mpy_cross_is_found_on_path() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let bin = t.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let fake = fake_mpy_cross(t.path());
    fs::rename(&fake, bin.join("mpy-cross")).unwrap();
    let img = t.path().join("p.img");
    build_cmd(&src, &img)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .assert()
        .success()
        .stderr(predicate::str::contains("3 .py compiled to .mpy"))
        .stderr(predicate::str::contains("note:").not());
    let bytes = fs::read(&img).unwrap();
    assert!(Image::parse(&bytes)
        .unwrap()
        .lookup(b"lib/helper.mpy")
        .unwrap()
        .is_some());
    // --no-mpy stores sources even with a compiler on PATH.
    build_cmd(&src, &img)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .arg("--no-mpy")
        .assert()
        .success()
        .stderr(predicate::str::contains("compiled").not());
    let bytes = fs::read(&img).unwrap();
    assert!(Image::parse(&bytes)
        .unwrap()
        .lookup(b"lib/helper.py")
        .unwrap()
        .is_some());
}

#[test]
fn mpy_headers_are_checked_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    fs::create_dir_all(src.join("lib")).unwrap();
    let out = t.path().join("x.img");
    // Wrong version.
    fs::write(src.join("lib/old.mpy"), b"M\x05\x00\x1frest").unwrap();
    build_fails(
        &src,
        &out,
        &["--no-mpy"],
        "lib/old.mpy: incompatible .mpy file: version 5",
    );
    fs::remove_file(src.join("lib/old.mpy")).unwrap();
    // Not a .mpy at all.
    fs::write(src.join("fake.mpy"), b"print(1)").unwrap();
    build_fails(&src, &out, &["--no-mpy"], "fake.mpy: not a .mpy file");
    fs::remove_file(src.join("fake.mpy")).unwrap();
    // Native code: armv7emsp (code 7), sub-version 3.
    fs::write(src.join("fast.mpy"), [b'M', 6, (7 << 2) | 3, 31, 0, 0]).unwrap();
    build_fails(
        &src,
        &out,
        &["--no-mpy", "--march", "armv6m"],
        "fast.mpy: incompatible .mpy arch: native code for armv7emsp, target is armv6m",
    );
    build_fails(
        &src,
        &out,
        &["--no-mpy", "--march", "xtensawin"],
        "target is xtensawin",
    );
    build_cmd(&src, &out)
        .args(["--no-mpy", "--march", "armv7emdp"])
        .assert()
        .success();
    build_cmd(&src, &out)
        .args(["--no-mpy", "-q"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: fast.mpy: contains native code for armv7emsp; pass --march to check",
        ));
    // Too many small-int bits for the target.
    fs::write(src.join("wide.mpy"), [b'M', 6, 0, 63]).unwrap();
    build_fails(
        &src,
        &out,
        &["--no-mpy", "--march", "armv7emdp"],
        "wide.mpy: incompatible .mpy file: compiled for 63-bit small ints",
    );
    // info groups .mpy files by version and arch.
    build_cmd(&src, &out)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    let info = json_of(romfs().arg("info").arg(&out).arg("--json"));
    let groups = info["mpy"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g["arch"] == "armv7emsp" && g["version"] == 6 && g["files"] == 1),
        "{groups:?}"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["arch"] == "none" && g["small_int_bits"] == 63),
        "{groups:?}"
    );
    romfs()
        .arg("info")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("1  v6 armv7emsp"));
}
