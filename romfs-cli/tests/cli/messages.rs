//! What messages say: counts in the singular when there is one, names that
//! are not UTF-8 escaped as `ls -b` shows them (with the path as given), a
//! port that is no serial port said so, and `ls -l` with a header.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::{build_cmd, fails, romfs};

#[test]
fn one_is_singular() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("one");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"x").unwrap();
    let img = t.path().join("one.img");
    let out = build_cmd(&src, &img).arg("--no-mpy").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("  1 file, 0 directories, 1 byte in"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(" 1 files") && !stderr.contains(" 1 bytes"),
        "{stderr}"
    );

    let tree = String::from_utf8(romfs().arg("tree").arg(&img).output().unwrap().stdout).unwrap();
    assert!(tree.ends_with("\n0 directories, 1 file\n"), "{tree}");

    fs::write(src.join("b.py"), b"print(1)\n").unwrap();
    let out = build_cmd(&src, &img).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(": 1 .py file stored as source"), "{stderr}");

    let dest = t.path().join("x");
    let out = romfs()
        .arg("extract")
        .arg(&img)
        .arg(&dest)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("extracted 2 files and 0 directories"),
        "{stderr}"
    );
}

#[test]
fn a_name_that_is_not_utf8_is_escaped_with_the_path_as_given() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(
        src.join("sub")
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9\xff.py")),
        b"x",
    )
    .unwrap();
    let stderr = fails(
        build_cmd("app", "app.img")
            .current_dir(t.path())
            .arg("--no-mpy"),
        1,
        "app/sub/caf\\351\\377.py: name is not valid UTF-8",
    );
    assert!(!stderr.contains('\u{fffd}'), "{stderr}");
}

#[test]
fn a_port_that_is_no_serial_port_says_so() {
    fails(
        romfs().args(["query", "--port", "/dev/null"]),
        1,
        "/dev/null: not a serial port",
    );
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("file");
    fs::write(&file, b"").unwrap();
    fails(
        romfs().args(["query", "--port"]).arg(&file),
        1,
        "file: not a serial port",
    );
}

#[test]
fn ls_l_has_a_header_and_no_directory_size() {
    let t = tempfile::tempdir().unwrap();
    let img = crate::built(t.path());
    let out = romfs().args(["ls", "-l"]).arg(&img).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("TYPE") && header.contains("SIZE") && header.ends_with("NAME"),
        "{text}"
    );
    let lib = text.lines().find(|l| l.ends_with(" lib/")).unwrap();
    let fields: Vec<&str> = lib.split_whitespace().collect();
    assert_eq!(fields, ["dir", "-", "-", "lib/"], "{text}");
}

#[test]
fn deploy_of_a_file_that_is_no_image_names_the_file_once_before_any_board() {
    let t = tempfile::tempdir().unwrap();
    let notes = t.path().join("notes.txt");
    std::fs::write(&notes, "hello\n").unwrap();
    // No board is opened: the port does not exist.
    let out = romfs()
        .args(["deploy"])
        .arg(&notes)
        .args(["--port", "/nonexistent/tty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: not a ROMFS image", notes.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("not a ROMFS image").count(), 1, "{stderr}");
    assert!(!stderr.contains("/nonexistent/tty"), "{stderr}");
}
