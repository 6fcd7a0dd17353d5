//! Where commands write (`build -o`, `sign -o`, `extract --force`):
//! through symlinks to their targets, in place into devices and FIFOs,
//! never replacing anything that is not a regular file (README, "Output
//! files").

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt};
use std::path::Path;

use romfs_format::Image;

use crate::{build_cmd, built, fails, key_pair, leftovers, romfs, sample};

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).unwrap().file_type().is_symlink()
}

fn is_fifo(path: &Path) -> bool {
    fs::symlink_metadata(path).unwrap().file_type().is_fifo()
}

#[test]
fn build_writes_through_a_symlink_to_its_target() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    fs::create_dir(t.path().join("out")).unwrap();
    let target = t.path().join("out/real.img");
    let link = t.path().join("app.img");
    symlink("out/real.img", &link).unwrap();

    // Dangling: the target is created, the link stays.
    build_cmd(&src, &link)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    assert!(is_symlink(&link));
    let first = fs::read(&target).unwrap();
    Image::parse(&first).unwrap();

    // Existing: replaced atomically, the link still a link.
    build_cmd(&src, &link)
        .args(["--no-mpy", "-q", "--label", "second"])
        .assert()
        .success();
    assert!(is_symlink(&link));
    assert_ne!(fs::read(&target).unwrap(), first);
    assert!(leftovers(t.path()).is_empty() && leftovers(&t.path().join("out")).is_empty());
}

#[test]
fn sign_writes_through_a_symlink_to_its_target() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    key_pair(&t.path().join("k"));
    let link = t.path().join("link.img");
    symlink("app.img", &link).unwrap();
    romfs()
        .arg("sign")
        .arg(&link)
        .arg("--key")
        .arg(t.path().join("k.pem"))
        .args(["--product", "p", "--generation", "1"])
        .assert()
        .success();
    assert!(is_symlink(&link));
    let signed = fs::read(&img).unwrap();
    assert!(Image::parse(&signed).unwrap().signature().is_some());
}

#[test]
fn build_into_a_fifo_writes_the_image_in_place() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let fifo = t.path().join("pipe");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            fs::File::open(&fifo)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            bytes
        })
    };
    build_cmd(&src, &fifo)
        .args(["--no-mpy", "-q"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let bytes = reader.join().unwrap();
    Image::parse(&bytes).unwrap();
    assert!(is_fifo(&fifo), "the FIFO was replaced");
}

#[test]
fn build_to_dev_stdout_writes_the_image_to_stdout() {
    // assert_cmd gives the command a pipe for stdout.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let out = build_cmd(&src, "/dev/stdout")
        .args(["--no-mpy", "-q"])
        .output()
        .unwrap();
    romfs_testkit::assert_succeeded(&out, "romfs build -o /dev/stdout");
    Image::parse(&out.stdout).unwrap();
}

#[test]
fn build_to_a_full_device_fails_and_leaves_the_node() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    // /dev/full through a symlink: the device is the output, and it is full.
    let link = t.path().join("full");
    symlink("/dev/full", &link).unwrap();
    for out in [Path::new("/dev/full"), &link] {
        fails(
            build_cmd(&src, out).args(["--no-mpy", "-q"]),
            1,
            "No space left on device",
        );
    }
    assert!(fs::metadata("/dev/full")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(is_symlink(&link));
}

#[test]
fn outputs_that_are_not_files_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let dir = t.path().join("adir");
    fs::create_dir(&dir).unwrap();
    fails(
        build_cmd(&src, &dir).args(["--no-mpy", "-q"]),
        1,
        "adir: is a directory",
    );
    let sock_path = t.path().join("sock");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    fails(
        build_cmd(&src, &sock_path).args(["--no-mpy", "-q"]),
        1,
        "sock: is a socket",
    );
    assert!(fs::symlink_metadata(&sock_path)
        .unwrap()
        .file_type()
        .is_socket());
    let looped = t.path().join("loop");
    symlink("loop", &looped).unwrap();
    fails(
        build_cmd(&src, &looped).args(["--no-mpy", "-q"]),
        1,
        "too many levels of symbolic links",
    );
}

#[test]
fn extract_never_replaces_a_fifo() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    mkfifo(&dest.join("main.py"));
    fails(
        romfs()
            .arg("extract")
            .arg(&img)
            .arg(&dest)
            .arg("--force")
            .timeout(std::time::Duration::from_secs(60)),
        1,
        "main.py: exists and is not a regular file",
    );
    assert!(is_fifo(&dest.join("main.py")));
}
