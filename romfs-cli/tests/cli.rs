//! End-to-end tests of the `romfs` command: every subcommand, error paths
//! included (exit codes, messages, no leftover files).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;
use romfs_format::{Checksum, Image, Node};
use serde_json::Value;

fn romfs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_romfs"));
    // Tests decide about mpy-cross explicitly; never pick one up from PATH.
    c.env("PATH", "/usr/bin:/bin");
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// A small tree: nested dirs, a duplicate, binary data, an empty file and dir.
fn sample(dir: &Path) {
    fs::create_dir_all(dir.join("lib/pkg")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("main.py"), "import helper\nprint(helper.f())\n").unwrap();
    fs::write(dir.join("lib/helper.py"), "def f():\n    return 42\n").unwrap();
    fs::write(dir.join("lib/pkg/__init__.py"), "").unwrap();
    let blob: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    fs::write(dir.join("blob.bin"), &blob).unwrap();
    fs::write(dir.join("lib/blob_copy.bin"), &blob).unwrap();
    fs::write(dir.join("model.tflite"), vec![7u8; 100]).unwrap();
    fs::write(dir.join("notes.txt"), "hello\n").unwrap();
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".romfs-"))
        .collect()
}

fn files_of(image: &Image<'_>) -> Vec<(String, Vec<u8>, usize, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), image.root())];
    while let Some((prefix, dir)) = stack.pop() {
        for e in dir.entries() {
            let e = e.unwrap();
            let path = format!("{prefix}{}", String::from_utf8_lossy(e.name()));
            match e {
                Node::Dir(d) => stack.push((format!("{path}/"), d)),
                Node::File(f) => {
                    out.push((path, f.data().to_vec(), f.data_offset(), f.is_indirect()))
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn build_default_layout_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("app.img");
    romfs()
        .args(["build"])
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .assert()
        .success()
        .stderr(predicate::str::contains("7 files, 3 directories"))
        .stderr(predicate::str::contains("dedup saved 3000 bytes (1 files)"))
        .stderr(predicate::str::contains("checksum crc32 0x"))
        .stderr(predicate::str::contains(
            "mpy-cross not found on PATH: 3 .py file(s) stored as source",
        ));
    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert!(image.verify(|f| panic!("finding {f}")).is_clean());
    assert!(matches!(image.checksum(), Checksum::Valid(_)));
    let files = files_of(&image);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "blob.bin",
            "lib/blob_copy.bin",
            "lib/helper.py",
            "lib/pkg/__init__.py",
            "main.py",
            "model.tflite",
            "notes.txt"
        ]
    );
    for (path, data, offset, _) in &files {
        assert_eq!(data, &fs::read(src.join(path)).unwrap(), "{path}");
        if !data.is_empty() {
            assert_eq!(offset % 4, 0, "{path} aligned");
        }
    }
    // The duplicate is stored once.
    let blob = files.iter().find(|f| f.0 == "blob.bin").unwrap();
    let copy = files.iter().find(|f| f.0 == "lib/blob_copy.bin").unwrap();
    assert_eq!(blob.2, copy.2);
    assert!(copy.3 || blob.3);
    assert!(image.lookup(b"empty").unwrap().unwrap().is_dir());
    assert!(leftovers(t.path()).is_empty());

    // Reproducible: a second build is byte-identical.
    let img2 = t.path().join("again.img");
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img2)
        .arg("-q")
        .assert()
        .success()
        .stderr("");
    assert_eq!(bytes, fs::read(&img2).unwrap());
}

#[test]
fn build_options_align_dedup_metadata_exclude() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("a.img");
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args([
            "--no-mpy",
            "--align",
            "16",
            "--align-rule",
            "*.tflite=256",
            "--no-dedup",
        ])
        .args([
            "--label",
            "fw-1.2",
            "--generation",
            "7",
            "--build-time",
            "1700000000",
        ])
        .args(["--exclude", "*.txt", "--exclude", "lib/pkg"])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 excluded"));
    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let files = files_of(&image);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "blob.bin",
            "lib/blob_copy.bin",
            "lib/helper.py",
            "main.py",
            "model.tflite"
        ]
    );
    for (path, data, offset, shared) in &files {
        assert!(!shared, "--no-dedup: {path} not shared");
        if !data.is_empty() {
            let want = if path.ends_with(".tflite") { 256 } else { 16 };
            assert_eq!(offset % want, 0, "{path} at {offset:#x} aligned to {want}");
        }
    }
    let md = image.metadata().unwrap().unwrap();
    assert_eq!(md.label, Some(&b"fw-1.2"[..]));
    assert_eq!(md.generation, Some(7));
    assert_eq!(md.build_time, Some(1_700_000_000));

    // info --json reports the same.
    let out = romfs()
        .arg("info")
        .arg(&img)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(info["layout"], "romfs");
    assert_eq!(info["label"], "fw-1.2");
    assert_eq!(info["generation"], 7);
    assert_eq!(info["build_time"], 1_700_000_000u64);
    assert_eq!(info["checksum"], "valid");
    assert_eq!(info["files"], 5);
    assert_eq!(info["dirs"], 2);
    assert_eq!(info["image_size"], bytes.len() as u64);
    let list = info["file_list"].as_array().unwrap();
    let tfl = list.iter().find(|f| f["path"] == "model.tflite").unwrap();
    assert!(tfl["align"].as_u64().unwrap() >= 256);

    // SOURCE_DATE_EPOCH is used for --build-time now.
    let img3 = t.path().join("b.img");
    romfs()
        .env("SOURCE_DATE_EPOCH", "1234")
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img3)
        .args(["--no-mpy", "--build-time", "now", "-q"])
        .assert()
        .success();
    let b3 = fs::read(&img3).unwrap();
    assert_eq!(
        Image::parse(&b3)
            .unwrap()
            .metadata()
            .unwrap()
            .unwrap()
            .build_time,
        Some(1234)
    );
}

#[test]
fn build_verbose_prints_the_packed_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(t.path().join("v.img"))
        .args(["--no-mpy", "-v"])
        .assert()
        .success()
        .stdout(predicate::str::contains("  lib/\n"))
        .stdout(predicate::str::contains("    helper.py  (23 bytes at 0x"))
        .stdout(predicate::str::contains("blob_copy.bin  (3000 bytes at 0x"))
        .stdout(predicate::str::contains(", shared)"));
}

#[test]
fn max_size_error_says_by_how_much_and_keeps_the_old_image() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("app.img");
    fs::write(&img, b"previous image").unwrap();
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--no-mpy", "--max-size", "1K"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::is_match(
                r"image is \d+ bytes, \d+ bytes \(.*\) over the --max-size of 1024 bytes",
            )
            .unwrap(),
        );
    assert_eq!(fs::read(&img).unwrap(), b"previous image");
    assert!(leftovers(t.path()).is_empty());
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--no-mpy", "--max-size", "1M", "-q"])
        .assert()
        .success();
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--max-size", "lots"])
        .assert()
        .code(2);
}

fn build_fails(src: &Path, out: &Path, extra: &[&str], message: &str) {
    let parent = out.parent().unwrap();
    let before: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let old = fs::read(out).ok();
    romfs()
        .arg("build")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(extra)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("romfs: error:"))
        .stderr(predicate::str::contains(message));
    assert_eq!(old, fs::read(out).ok(), "output untouched");
    let after: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(before, after, "nothing left behind");
}

#[test]
fn bad_input_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let out_dir = t.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("x.img");
    fs::write(&out, b"old").unwrap();

    // Missing source.
    build_fails(&t.path().join("nope"), &out, &[], "nope: No such file");

    // Dangling symlink.
    let s = t.path().join("dangling");
    sample(&s);
    symlink("does-not-exist", s.join("lib/broken")).unwrap();
    build_fails(&s, &out, &[], "lib/broken: dangling symlink");

    // Symlink loop (a directory linking to its ancestor).
    let s = t.path().join("loop");
    sample(&s);
    symlink("..", s.join("lib/up")).unwrap();
    build_fails(&s, &out, &[], "lib/up: symlink loop");

    // Self-referencing symlink (ELOOP).
    let s = t.path().join("eloop");
    sample(&s);
    symlink("me", s.join("me")).unwrap();
    build_fails(&s, &out, &[], "eloop/me: symlink loop");

    // FIFO.
    let s = t.path().join("fifo");
    sample(&s);
    let st = std::process::Command::new("mkfifo")
        .arg(s.join("pipe"))
        .status()
        .unwrap();
    assert!(st.success());
    build_fails(&s, &out, &[], "pipe: a FIFO");

    // Socket.
    let s = t.path().join("sock");
    sample(&s);
    let _listener = std::os::unix::net::UnixListener::bind(s.join("sock")).unwrap();
    build_fails(&s, &out, &[], "sock: a socket");

    // Unreadable file (as root, a file whose reads fail).
    let s = t.path().join("unreadable");
    sample(&s);
    let secret = s.join("secret.bin");
    fs::write(&secret, b"x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&secret).is_ok() {
        fs::remove_file(&secret).unwrap();
        symlink("/proc/self/mem", &secret).unwrap();
    }
    build_fails(&s, &out, &["--no-mpy"], "secret.bin: ");

    // A file whose size changes between scan and read (/proc files report 0).
    let s = t.path().join("changing");
    sample(&s);
    symlink("/proc/version", s.join("version.txt")).unwrap();
    build_fails(
        &s,
        &out,
        &["--no-mpy"],
        "version.txt: file changed while the image was built",
    );

    // Output inside the source tree.
    let s = t.path().join("inside");
    sample(&s);
    romfs()
        .arg("build")
        .arg(&s)
        .arg("-o")
        .arg(s.join("lib/app.img"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is inside the source tree"));
    assert!(!s.join("lib/app.img").exists());

    // Non-UTF-8 name in default layout; non-ASCII name in mpremote layout.
    let s = t.path().join("names");
    sample(&s);
    use std::os::unix::ffi::OsStrExt;
    fs::write(s.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    build_fails(&s, &out, &["--no-mpy"], "not valid UTF-8");
    let s = t.path().join("names2");
    sample(&s);
    fs::write(s.join("café.txt"), b"x").unwrap();
    build_fails(
        &s,
        &out,
        &["--no-mpy", "--layout", "mpremote"],
        "café.txt: mpremote layout allows only ASCII",
    );
    romfs()
        .arg("build")
        .arg(&s)
        .arg("-o")
        .arg(out_dir.join("utf8.img"))
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
}

#[test]
fn usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let out = t.path().join("x.img");
    romfs().arg("build").arg(&src).assert().code(2); // -o is required
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--align", "3"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "alignment 3 is not a power of two",
        ));
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--align-rule", "*.bin"])
        .assert()
        .code(2);
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--march", "z80"])
        .assert()
        .code(2);
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--layout", "mpremote", "--label", "x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--label only apply to the default layout",
        ));
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--mpy"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--mpy: mpy-cross not found on PATH",
        ));
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--mpy-cross", "/nonexistent/mpy-cross"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "/nonexistent/mpy-cross: mpy-cross not found",
        ));
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(t.path())
        .arg("--no-mpy")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a directory"));
    assert!(!out.exists());
    romfs().arg("frobnicate").assert().code(2);
}

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
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
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
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
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
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img2)
        .arg("--mpy-cross")
        .arg(&fake)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("mpy-cross failed on"))
        .stderr(predicate::str::contains("lib/broken.py"))
        .stderr(predicate::str::contains("SyntaxError: invalid syntax"));
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
    romfs()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
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
    romfs()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
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

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
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
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--no-mpy", "--march", "armv7emdp"])
        .assert()
        .success();
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
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
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    let json = romfs()
        .arg("info")
        .arg(&out)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info: Value = serde_json::from_slice(&json).unwrap();
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

fn built(t: &Path) -> PathBuf {
    let src = t.join("app");
    sample(&src);
    let img = t.join("app.img");
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    img
}

#[test]
fn ls_tree_cat() {
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
        .stdout(predicate::str::is_match(r"dir +\d+ +-  pkg/\n").unwrap());
    let json = romfs()
        .arg("ls")
        .arg(&img)
        .arg("/lib")
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&json).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[1]["name"], "helper.py");
    assert_eq!(arr[1]["path"], "lib/helper.py");
    assert_eq!(arr[1]["type"], "file");
    assert_eq!(arr[1]["size"], 23);
    assert_eq!(arr[2]["type"], "dir");
    romfs()
        .arg("ls")
        .arg(&img)
        .arg("main.py")
        .assert()
        .success()
        .stdout("main.py\n");
    romfs()
        .arg("ls")
        .arg(&img)
        .arg("nope")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope: no such file"));

    romfs().arg("tree").arg(&img).assert().success().stdout(
        "/\n├── blob.bin\n├── empty/\n├── lib/\n│   ├── blob_copy.bin\n│   ├── helper.py\n│   └── pkg/\n│       └── __init__.py\n├── main.py\n├── model.tflite\n└── notes.txt\n\n3 directories, 7 files\n",
    );

    let blob: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("lib/blob_copy.bin")
        .assert()
        .success()
        .stdout(blob);
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("/lib/pkg/__init__.py")
        .assert()
        .success()
        .stdout("");
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("lib")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("lib: is a directory"));
    romfs()
        .arg("cat")
        .arg(&img)
        .arg("main.py/x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such file"));
    romfs()
        .arg("cat")
        .arg(t.path().join("missing.img"))
        .arg("x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.img: No such file"));
}

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
    romfs()
        .arg("extract")
        .arg(&img)
        .arg(&dest)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    fs::write(dest.join("main.py"), "changed").unwrap();
    romfs()
        .arg("extract")
        .arg(&img)
        .arg(&dest)
        .arg("--force")
        .assert()
        .success();
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
    for name in [&b".."[..], b"../evil", b"/etc", b"."] {
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
        romfs()
            .arg("extract")
            .arg(&img)
            .arg(&dest)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("refusing to extract"));
        assert!(!dest.exists(), "nothing extracted for {name:?}");
        romfs().arg("verify").arg(&img).assert().code(1);
    }
    assert!(!t.path().join("evil").exists());
}

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
    let json = romfs()
        .arg("verify")
        .arg(&img)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&json).unwrap();
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
    let v: Value = serde_json::from_slice(&json).unwrap();
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
    romfs()
        .arg("info")
        .arg(&junk)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("junk.img: not a ROMFS image"));
    let empty = t.path().join("empty.img");
    fs::write(&empty, b"").unwrap();
    romfs()
        .arg("ls")
        .arg(&empty)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("shorter than"));
}

#[test]
fn corrupt_images_never_panic() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let good = fs::read(&img).unwrap();
    let bad = t.path().join("bad.img");
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for cut in [3, 4, 5, 9, good.len() / 2, good.len() - 1] {
        variants.push(good[..cut].to_vec());
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        let mut v = good.clone();
        for _ in 0..(1 + i % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = (x as usize) % v.len();
            v[pos] = (x >> 32) as u8;
        }
        variants.push(v);
    }
    for v in variants {
        fs::write(&bad, &v).unwrap();
        for args in [
            &["ls", "-l"][..],
            &["ls", "--json", "lib"],
            &["tree"],
            &["info", "--json"],
            &["info"],
            &["verify"],
            &["cat", "lib/helper.py"],
        ] {
            let out = romfs()
                .arg(args[0])
                .arg(&bad)
                .args(&args[1..])
                .output()
                .unwrap();
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{args:?} exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
        let dest = t.path().join("x");
        let out = romfs()
            .arg("extract")
            .arg(&bad)
            .arg(&dest)
            .arg("--force")
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0) | Some(1)));
    }
}

#[test]
fn reads_mpremote_layout_and_detects_it() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("mp.img");
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--layout", "mpremote", "--no-mpy", "-q"])
        .assert()
        .success();
    let json = romfs()
        .arg("info")
        .arg(&img)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["layout"], "mpremote");
    assert_eq!(v["checksum"], "absent");
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
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img2)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    let json = romfs()
        .arg("info")
        .arg(&img2)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<Value>(&json).unwrap()["layout"],
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
    let json = romfs()
        .arg("info")
        .arg(&img3)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        serde_json::from_slice::<Value>(&json).unwrap()["layout"],
        "other"
    );
}

#[test]
fn completions() {
    for shell in ["bash", "zsh", "fish"] {
        romfs()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("romfs"))
            .stdout(predicate::str::contains("extract"));
    }
    romfs().args(["completions", "cmd.exe"]).assert().code(2);
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
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn build_flash_write_size_makes_the_header_safe() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let plain = t.path().join("plain.img");
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&plain)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    let plain = fs::read(&plain).unwrap();
    let expected = files_of(&Image::parse(&plain).unwrap());
    assert!(!Image::parse(&plain).unwrap().is_header_safe(4));
    for w in [4usize, 8, 16, 32] {
        let img = t.path().join(format!("w{w}.img"));
        romfs()
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(&img)
            .args(["--no-mpy", "-q", "--flash-write-size", &w.to_string()])
            .assert()
            .success();
        let bytes = fs::read(&img).unwrap();
        assert_eq!(&bytes[..3], &[0xd2, 0xcd, 0x31], "W={w}");
        assert!(
            bytes[3..w].iter().all(|&b| b == 0x80),
            "W={w}: {bytes:02x?}"
        );
        // The length's digits all lie after the first write unit.
        assert!(bytes[w] & 0x80 != 0, "W={w}");
        let image = Image::parse(&bytes).unwrap();
        assert!(image.is_header_safe(w));
        assert!(image.verify(|f| panic!("W={w}: {f}")).is_clean());
        assert!(matches!(image.checksum(), Checksum::Valid(_)));
        // Same files and contents; data still aligned.
        let files = files_of(&image);
        assert_eq!(
            files.iter().map(|f| (&f.0, &f.1)).collect::<Vec<_>>(),
            expected.iter().map(|f| (&f.0, &f.1)).collect::<Vec<_>>()
        );
        assert!(files.iter().all(|f| f.1.is_empty() || f.2 % 4 == 0));
        romfs().arg("verify").arg(&img).assert().success();
        let info = romfs()
            .arg("info")
            .arg(&img)
            .arg("--json")
            .assert()
            .success();
        let info: Value = serde_json::from_slice(&info.get_output().stdout).unwrap();
        assert!(
            info["header_safe_write_size"].as_u64().unwrap() >= w as u64,
            "W={w}"
        );
    }
    let info = romfs()
        .arg("info")
        .arg("--json")
        .arg(t.path().join("plain.img"))
        .assert()
        .success();
    let info: Value = serde_json::from_slice(&info.get_output().stdout).unwrap();
    assert_eq!(info["header_safe_write_size"], 3);
    let out = t.path().join("x.img");
    for bad in ["0", "33", "four"] {
        romfs()
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--flash-write-size", bad])
            .assert()
            .code(2);
    }
    romfs()
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--layout", "mpremote", "--flash-write-size", "8"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "--flash-write-size only apply to the default layout",
        ));
    assert!(!out.exists());
    romfs()
        .args(["build", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--flash-write-size <N>"));
}
