//! End-to-end tests of the `romfs` and `romfs-mount` commands, one module
//! per subcommand (error paths included: exit codes, messages, no leftover
//! files), the failure table of `errors`, and the reviewed outputs of
//! `golden`.
#![forbid(unsafe_code)]

mod build;
mod build_mpy;
mod cat;
mod completions;
mod damaged;
mod errors;
mod extract;
mod golden;
mod ignored_flags;
mod info;
mod ls;
mod messages;
mod mount;
mod outputs;
mod sign;
mod tree;
mod usage;
mod verify;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use romfs_format::{Image, Node};

/// The `romfs` command, with no mpy-cross on `PATH` and no
/// `SOURCE_DATE_EPOCH` (tests decide about both explicitly).
pub fn romfs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_romfs"));
    c.env("PATH", "/usr/bin:/bin");
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// `romfs build SRC -o OUT`, for more arguments.
pub fn build_cmd(src: impl AsRef<OsStr>, out: impl AsRef<OsStr>) -> Command {
    let mut c = romfs();
    c.arg("build").arg(src).arg("-o").arg(out);
    c
}

/// `romfs keygen --out PREFIX`, which must succeed: `PREFIX.pem` and
/// `PREFIX.pub.pem`.
pub fn key_pair(prefix: &Path) {
    romfs()
        .args(["keygen", "--out"])
        .arg(prefix)
        .assert()
        .success();
}

/// `romfs verify --key KEY IMAGE`, for more arguments.
pub fn verify_with_key(key: impl AsRef<OsStr>, image: impl AsRef<OsStr>) -> Command {
    let mut c = romfs();
    c.arg("verify").arg("--key").arg(key).arg(image);
    c
}

/// The `romfs-mount` command.
pub fn romfs_mount() -> Command {
    Command::new(env!("CARGO_BIN_EXE_romfs-mount"))
}

/// Run `cmd`, which must fail with exit status `code` and exactly one
/// error message (`PROGRAM: error: ...`) on stderr containing `message`.
/// Returns stderr.
#[track_caller]
pub fn fails(cmd: &mut Command, code: i32, message: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} in stderr: {stderr}"
    );
    assert_eq!(
        stderr.matches(": error: ").count(),
        1,
        "one error message: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The standard output of `cmd`, which must succeed.
#[track_caller]
pub fn stdout_of(cmd: &mut Command) -> Vec<u8> {
    cmd.assert().success().get_output().stdout.clone()
}

/// The JSON `cmd` prints (it must succeed).
#[track_caller]
pub fn json_of(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_slice(&stdout_of(cmd)).unwrap()
}

/// A small tree: nested dirs, a duplicate, binary data, an empty file and dir.
pub fn sample(dir: &Path) {
    fs::create_dir_all(dir.join("lib/pkg")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("main.py"), "import helper\nprint(helper.f())\n").unwrap();
    fs::write(dir.join("lib/helper.py"), "def f():\n    return 42\n").unwrap();
    fs::write(dir.join("lib/pkg/__init__.py"), "").unwrap();
    fs::write(dir.join("blob.bin"), blob()).unwrap();
    fs::write(dir.join("lib/blob_copy.bin"), blob()).unwrap();
    fs::write(dir.join("model.tflite"), vec![7u8; 100]).unwrap();
    fs::write(dir.join("notes.txt"), "hello\n").unwrap();
}

/// The contents of `blob.bin` (and its copy) in [`sample`].
pub fn blob() -> Vec<u8> {
    (0..=255u8).cycle().take(3000).collect()
}

/// The [`sample`] tree in `t/app`, built (no `.mpy`) into `t/app.img`.
pub fn built(t: &Path) -> PathBuf {
    let src = t.join("app");
    sample(&src);
    let img = t.join("app.img");
    build_cmd(&src, &img)
        .args(["--no-mpy", "-q"])
        .assert()
        .success();
    img
}

/// Temporary files a build left in `dir`.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".romfs-"))
        .collect()
}

/// Every file of `image`: (path, contents, data offset, shared), sorted.
pub fn files_of(image: &Image<'_>) -> Vec<(String, Vec<u8>, usize, bool)> {
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

/// Where the data of the file at `path` in `image` starts.
pub fn data_offset(image: &Image<'_>, path: &[u8]) -> usize {
    image
        .lookup(path)
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap()
        .data_offset()
}

/// The paths in what [`files_of`] gives.
pub fn names_of(files: &[(String, Vec<u8>, usize, bool)]) -> Vec<&str> {
    files.iter().map(|f| f.0.as_str()).collect()
}

/// Every file under `dir` with its contents, sorted.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
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
