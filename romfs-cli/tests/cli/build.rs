//! `romfs build`: layouts, options, atomic output, and every way a build
//! can be refused.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use predicates::prelude::*;
use romfs_format::{Checksum, Image};

use crate::{build_cmd, fails, files_of, json_of, leftovers, names_of, romfs, sample};

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
        .stderr(predicate::str::contains("dedup saved 3000 bytes (1 file)"))
        .stderr(predicate::str::contains("checksum crc32 0x"))
        .stderr(predicate::str::contains(
            "mpy-cross not found on PATH: 3 .py files stored as source",
        ));
    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert!(image.verify(|f| panic!("finding {f}")).is_clean());
    assert!(matches!(image.checksum(), Checksum::Valid(_)));
    let files = files_of(&image);
    assert_eq!(
        names_of(&files),
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
    build_cmd(&src, &img2)
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
    build_cmd(&src, &img)
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
    assert_eq!(
        names_of(&files),
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
    let info = json_of(romfs().arg("info").arg(&img).arg("--json"));
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
    build_cmd(&src, &img3)
        .env("SOURCE_DATE_EPOCH", "1234")
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
    // A SOURCE_DATE_EPOCH that is no number is an error, not the clock.
    fails(
        build_cmd(&src, &img3)
            .env("SOURCE_DATE_EPOCH", "soon")
            .args(["--no-mpy", "--build-time", "now"]),
        1,
        "SOURCE_DATE_EPOCH \"soon\" is not a number of seconds",
    );
    fails(
        build_cmd(&src, &img3).args(["--build-time", "yesterday"]),
        2,
        "build time \"yesterday\": expected Unix seconds or `now`",
    );
}

#[test]
fn build_verbose_prints_the_packed_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let fresh = t.path().join("v.img");
    // Laid out afresh, then in the stable layout on that image as its base:
    // both report the tree as packed and what dedup saved.
    let base = ["--base".as_ref(), fresh.as_os_str()];
    for (out, extra) in [(&fresh, &[][..]), (&t.path().join("s.img"), &base[..])] {
        build_cmd(&src, out)
            .args(["--no-mpy", "-v"])
            .args(extra)
            .assert()
            .success()
            .stdout(predicate::str::contains("  lib/\n"))
            .stdout(predicate::str::contains("    helper.py  (23 bytes at 0x"))
            .stdout(predicate::str::contains("blob_copy.bin  (3000 bytes at 0x"))
            .stdout(predicate::str::contains(", shared)"))
            .stderr(predicate::str::contains("dedup saved 3000 bytes (1 file)"));
    }
}

#[test]
fn max_size_error_says_by_how_much_and_keeps_the_old_image() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("app.img");
    fs::write(&img, b"previous image").unwrap();
    let stderr = fails(
        build_cmd(&src, &img).args(["--no-mpy", "--max-size", "1K"]),
        1,
        "over the --max-size of 1024 bytes",
    );
    assert!(
        predicate::str::is_match(
            r"image is \d+ bytes, \d+ bytes \(.*\) over the --max-size of 1024 bytes",
        )
        .unwrap()
        .eval(&stderr),
        "{stderr}"
    );
    assert_eq!(fs::read(&img).unwrap(), b"previous image");
    assert!(leftovers(t.path()).is_empty());
    build_cmd(&src, &img)
        .args(["--no-mpy", "--max-size", "1M", "-q"])
        .assert()
        .success();
    fails(
        build_cmd(&src, &img).args(["--max-size", "lots"]),
        2,
        "invalid size \"lots\"",
    );
}

/// `romfs build SRC -o OUT EXTRA...` fails with `message`, leaving OUT and
/// its directory exactly as they were.
pub fn build_fails(src: &Path, out: &Path, extra: &[&str], message: &str) {
    let parent = out.parent().unwrap();
    let before: Vec<_> = fs::read_dir(parent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let old = fs::read(out).ok();
    fails(build_cmd(src, out).args(extra), 1, message);
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
    let s = sample_with(t.path(), "dangling", |s| {
        symlink("does-not-exist", s.join("lib/broken")).unwrap()
    });
    build_fails(&s, &out, &[], "lib/broken: dangling symlink");

    // Symlink loop (a directory linking to its ancestor).
    let s = sample_with(t.path(), "loop", |s| {
        symlink("..", s.join("lib/up")).unwrap()
    });
    build_fails(&s, &out, &[], "lib/up: symlink loop");

    // Self-referencing symlink (ELOOP).
    let s = sample_with(t.path(), "eloop", |s| symlink("me", s.join("me")).unwrap());
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
    let s = sample_with(t.path(), "sock", |s| {
        // The socket file stays when the listener is dropped.
        std::os::unix::net::UnixListener::bind(s.join("sock")).unwrap();
    });
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
    let s = sample_with(t.path(), "changing", |s| {
        symlink("/proc/version", s.join("version.txt")).unwrap()
    });
    build_fails(
        &s,
        &out,
        &["--no-mpy"],
        "version.txt: file changed while the image was built",
    );

    // Output inside the source tree.
    let s = t.path().join("inside");
    sample(&s);
    fails(
        &mut build_cmd(&s, s.join("lib/app.img")),
        1,
        "is inside the source tree",
    );
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
    // The reason is romfs_format::name's (the one place the rules are said).
    build_fails(
        &s,
        &out,
        &["--no-mpy", "--layout", "mpremote"],
        "café.txt: name is not ASCII (the mpremote layout allows only ASCII)",
    );
    build_cmd(&s, out_dir.join("utf8.img"))
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    // An excluded bad name is no error.
    build_cmd(&s, out_dir.join("ascii.img"))
        .args([
            "--no-mpy",
            "-q",
            "--layout",
            "mpremote",
            "--exclude",
            "*.txt",
        ])
        .assert()
        .success();
}

#[test]
fn usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let out = t.path().join("x.img");
    // -o is required.
    fails(romfs().arg("build").arg(&src), 2, "--output <IMG>");
    fails(
        build_cmd(&src, &out).args(["--align", "3"]),
        2,
        "alignment \"3\" is not a power of two",
    );
    fails(
        build_cmd(&src, &out).args(["--align-rule", "*.bin"]),
        2,
        "expected GLOB=N",
    );
    fails(
        build_cmd(&src, &out).args(["--march", "z80"]),
        2,
        "unknown architecture \"z80\"",
    );
    fails(
        build_cmd(&src, &out).args(["--layout", "mpremote", "--label", "x"]),
        2,
        "--label only applies to the default layout",
    );
    // Every setting the mpremote layout lacks, in one error.
    fails(
        build_cmd(&src, &out).args([
            "--layout",
            "mpremote",
            "--align",
            "8",
            "--no-dedup",
            "--no-checksum",
            "--build-time",
            "now",
        ]),
        2,
        "--align, --no-dedup, --no-checksum, --build-time only apply to the default layout",
    );
    fails(
        build_cmd(&src, &out).args(["--mpy"]),
        1,
        "mpy-cross not found on PATH, and this build must compile .py files",
    );
    fails(
        build_cmd(&src, &out).args(["--mpy-cross", "/nonexistent/mpy-cross"]),
        1,
        "/nonexistent/mpy-cross: mpy-cross not found",
    );
    fails(
        build_cmd(&src, t.path()).arg("--no-mpy"),
        1,
        "is a directory",
    );
    fails(
        build_cmd(&src, &out).args(["--exclude", "a["]),
        2,
        "invalid glob pattern \"a[\"",
    );
    assert!(!out.exists());
    fails(romfs().arg("frobnicate"), 2, "unrecognized subcommand");
}

#[test]
fn build_flash_write_size_makes_the_header_safe() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let plain = t.path().join("plain.img");
    build_cmd(&src, &plain)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    let plain = fs::read(&plain).unwrap();
    let expected = files_of(&Image::parse(&plain).unwrap());
    assert!(!Image::parse(&plain).unwrap().is_header_safe(4));
    for w in [4usize, 8, 16, 32] {
        let img = t.path().join(format!("w{w}.img"));
        build_cmd(&src, &img)
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
        let info = json_of(romfs().arg("info").arg(&img).arg("--json"));
        assert!(
            info["header_safe_write_size"].as_u64().unwrap() >= w as u64,
            "W={w}"
        );
    }
    let info = json_of(
        romfs()
            .arg("info")
            .arg("--json")
            .arg(t.path().join("plain.img")),
    );
    assert_eq!(info["header_safe_write_size"], 3);
    let out = t.path().join("x.img");
    for bad in ["0", "33", "four"] {
        fails(
            build_cmd(&src, &out).args(["--flash-write-size", bad]),
            2,
            "--flash-write-size <N>",
        );
    }
    fails(
        build_cmd(&src, &out).args(["--layout", "mpremote", "--flash-write-size", "8"]),
        2,
        "--flash-write-size only applies to the default layout",
    );
    assert!(!out.exists());
    romfs()
        .args(["build", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--flash-write-size <N>"));
}

/// A sample app folder `name` under `dir`, with what `add` puts in it.
fn sample_with(dir: &Path, name: &str, add: impl FnOnce(&Path)) -> PathBuf {
    let s = dir.join(name);
    sample(&s);
    add(&s);
    s
}
