//! The builder on adversarial trees, through the real `romfs` binary (and
//! the library where a change must land at an exact moment of the build):
//! every run ends in an image that `romfs verify` accepts and MicroPython's
//! own reader lists and reads as the source, or in a clear error naming the
//! path, with the previous image untouched and nothing left behind.
//!
//! Some cases need root (tmpfs mounts, `setpriv` to drop to `nobody`): CI
//! runs as root, and there they fail rather than skip.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use romfs_build::{BuildError, BuildOptions, MpyMode, Progress};
use romfs_format::Image;
use romfs_testkit::{in_ci, romfs_bin, run_micropython, venv_tool};

fn romfs(args: &[&OsStr]) -> Output {
    Command::new(romfs_bin()).args(args).output().unwrap()
}

/// `romfs build --no-mpy SRC -o OUT EXTRA...`.
fn build(src: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&OsStr> = vec!["build".as_ref(), "--no-mpy".as_ref()];
    args.extend(extra.iter().map(|s| OsStr::new(*s)));
    args.extend([src.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    romfs(&args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| PathBuf::from(e.unwrap().file_name()))
        .collect()
}

/// A build that must succeed; the image must verify clean.
fn build_ok(src: &Path, out: &Path, extra: &[&str]) {
    let o = build(src, out, extra);
    assert!(o.status.success(), "build failed: {}", stderr(&o));
    let v = romfs(&["verify".as_ref(), out.as_os_str()]);
    assert!(
        v.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&v.stdout),
        stderr(&v)
    );
}

/// A build that must fail with exit status 1 and a message containing each
/// of `needles`, leaving `out`'s directory exactly as it was.
fn build_fails(src: &Path, out: &Path, extra: &[&str], needles: &[&str]) -> String {
    let dir = out.parent().unwrap();
    let before = names(dir);
    let old = fs::read(out).ok();
    let o = build(src, out, extra);
    let msg = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    for needle in needles {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    assert_eq!(msg.matches("error:").count(), 1, "said once: {msg}");
    assert_eq!(fs::read(out).ok(), old, "the previous image changed");
    assert_eq!(names(dir), before, "something was left behind");
    msg
}

/// MicroPython (`vfs.VfsRom`, the unix port) walks the image without
/// recursion; one line per entry: `D hexpath` or `F hexpath size crc`,
/// reading only files whose name ends with `read_suffix` (`-` for others).
const MP_WALK: &str = r#"
import vfs, os, binascii
vfs.mount(vfs.VfsRom(open(IMAGE, "rb").read()), "/rom")
stack = [("/rom", "")]
while stack:
    path, rel = stack.pop()
    for name, typ, _ino, size in os.ilistdir(path):
        p = path + "/" + name
        r = rel + "/" + name
        h = binascii.hexlify(r.encode()).decode()
        if typ == 0x4000:
            print("D", h)
            stack.append((p, r))
        else:
            c = "-"
            if name.endswith(SUFFIX):
                with open(p, "rb") as f:
                    c = binascii.crc32(f.read())
            print("F", h, size, c)
print("END")
"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The same lines from the source tree on disk (sorted).
fn source_listing(src: &Path, read_suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(src.to_path_buf(), Vec::new())];
    while let Some((dir, rel)) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let mut r = rel.clone();
            r.push(b'/');
            r.extend_from_slice(e.file_name().as_bytes());
            let meta = fs::metadata(e.path()).unwrap();
            if meta.is_dir() {
                out.push(format!("D {}", hex(&r)));
                stack.push((e.path(), r));
            } else {
                let crc = if e.file_name().as_bytes().ends_with(read_suffix.as_bytes()) {
                    crc32fast::hash(&fs::read(e.path()).unwrap()).to_string()
                } else {
                    "-".into()
                };
                out.push(format!("F {} {} {crc}", hex(&r), meta.len()));
            }
        }
    }
    out.sort();
    out
}

/// MicroPython's reader sees exactly the source tree in `img`. Skipped
/// (saying so) outside CI when MicroPython cannot be installed.
fn micropython_sees_source(img: &Path, src: &Path, read_suffix: &str) {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let script = format!(
        "IMAGE = {:?}\nSUFFIX = {read_suffix:?}\n{MP_WALK}",
        img.to_str().unwrap()
    );
    let out = run_micropython(&micropython, &script, img.parent().unwrap());
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(lines.pop().as_deref(), Some("END"), "{out}");
    lines.sort();
    let want = source_listing(src, read_suffix);
    assert_eq!(lines.len(), want.len(), "entries seen by MicroPython");
    assert!(lines == want, "MicroPython's view differs from the source");
}

fn tempdir() -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix("romfs-hostile")
        .tempdir()
        .unwrap();
    // Reachable by `nobody` (for the tests that drop privileges).
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

#[test]
fn a_flat_directory_of_100000_files() {
    let t = tempdir();
    let src = t.path().join("src");
    let flat = src.join("flat");
    fs::create_dir_all(&flat).unwrap();
    for i in 0..100_000u32 {
        // Every 100th file has the same 40 bytes: stored once.
        let data = if i % 100 == 0 {
            vec![b's'; 40]
        } else {
            i.to_string().into_bytes()
        };
        fs::write(flat.join(format!("f{i:06}")), data).unwrap();
    }
    let img = t.path().join("flat.img");
    build_ok(&src, &img, &[]);
    // Every entry listed; one file in a thousand read (each open scans the
    // directory in MicroPython).
    micropython_sees_source(&img, &src, "000");
}

#[test]
fn a_spread_tree_of_100000_files() {
    let t = tempdir();
    let src = t.path().join("src");
    for d in 0..100u32 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..1000u32 {
            fs::write(dir.join(format!("m{i:03}.py")), format!("x = {d} * {i}\n")).unwrap();
        }
    }
    let img = t.path().join("spread.img");
    build_ok(&src, &img, &[]);
    micropython_sees_source(&img, &src, "");
}

#[test]
fn a_chain_of_1000_directories() {
    let t = tempdir();
    let src = t.path().join("src");
    let mut dir = src.clone();
    for level in 0..1000 {
        dir.push("d");
        fs::create_dir_all(&dir).unwrap();
        if level % 100 == 99 {
            fs::write(dir.join("here.txt"), format!("level {level}")).unwrap();
        }
    }
    fs::write(dir.join("bottom.py"), b"print('deep')\n").unwrap();
    let img = t.path().join("chain.img");
    build_ok(&src, &img, &[]);
    micropython_sees_source(&img, &src, "");
    // Our tools reach the bottom too.
    let deepest = format!("{}bottom.py", "d/".repeat(1000));
    let cat = romfs(&["cat".as_ref(), img.as_os_str(), deepest.as_ref()]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert_eq!(cat.stdout, b"print('deep')\n");
    let info = romfs(&["info".as_ref(), img.as_os_str()]);
    assert!(String::from_utf8_lossy(&info.stdout).contains("max depth 1000"));
}

/// Every byte Linux allows in a name (all but `/` and NUL): single bytes
/// up to 0x7f and UTF-8 sequences build in both layouts where the layout's
/// rules allow them; every byte from 0x80 on its own (not UTF-8) is a clear
/// error naming the entry.
#[test]
fn names_with_every_byte_a_filesystem_allows() {
    let t = tempdir();
    let src = t.path().join("ascii");
    fs::create_dir(&src).unwrap();
    for b in 1u8..=0x7f {
        if b == b'/' || b == b'.' {
            continue;
        }
        fs::write(src.join(OsStr::from_bytes(&[b])), [b]).unwrap();
    }
    for name in [
        "...",
        ".hidden",
        "trailing.",
        "with space",
        "-dash",
        &"n".repeat(255),
    ] {
        fs::write(src.join(name), name).unwrap();
    }
    fs::create_dir(src.join("\x01\n\t\x7f")).unwrap();
    fs::write(src.join("\x01\n\t\x7f").join("*?[]{}\\"), b"globs").unwrap();
    for (layout, file) in [("default", "ascii.img"), ("mpremote", "ascii-mpremote.img")] {
        let img = t.path().join(file);
        build_ok(&src, &img, &["--layout", layout]);
        micropython_sees_source(&img, &src, "");
    }

    // UTF-8 beyond ASCII: the default layout only.
    let utf8 = t.path().join("utf8");
    fs::create_dir(&utf8).unwrap();
    let long: String = "é".repeat(127) + "x"; // 255 bytes
    for name in ["é", "✓", "😀", "naïve café", "\u{fffd}", &long] {
        fs::write(utf8.join(name), name).unwrap();
    }
    let img = t.path().join("utf8.img");
    build_ok(&utf8, &img, &[]);
    micropython_sees_source(&img, &utf8, "");
    build_fails(
        &utf8,
        &t.path().join("utf8-mpremote.img"),
        &["--layout", "mpremote"],
        &["name is not ASCII"],
    );

    // Every byte that is not UTF-8 on its own, alone and inside a name.
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let img = out.join("bad.img");
    fs::write(&img, b"previous image").unwrap();
    for b in 0x80u8..=0xff {
        let bad = t.path().join(format!("bad{b:02x}"));
        fs::create_dir_all(bad.join("lib")).unwrap();
        fs::write(bad.join("ok.py"), b"ok").unwrap();
        let name = [&b"lib"[..], &[b], b".py"].concat();
        fs::write(bad.join("lib").join(OsStr::from_bytes(&name)), b"x").unwrap();
        build_fails(
            &bad,
            &img,
            &[],
            &[
                &format!("lib/lib\\{b:03o}.py: name is not valid UTF-8"),
                &bad.display().to_string(),
            ],
        );
    }
}

/// Runs `f` once, when the build starts writing (after the scan, the
/// comparison of identical files and the layout).
struct WhenWriting(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Progress for WhenWriting {
    fn phase(&self, name: &str, _total: u64, _bytes: bool) {
        if name == "writing" {
            if let Some(f) = self.0.lock().unwrap().take() {
                f();
            }
        }
    }
}

fn build_changing(src: &Path, out: &Path, change: impl FnOnce() + Send + 'static) -> BuildError {
    let dir = out.parent().unwrap();
    let before = names(dir);
    let old = fs::read(out).ok();
    let opts = BuildOptions {
        mpy: MpyMode::Never,
        ..BuildOptions::default()
    };
    let hook = WhenWriting(Mutex::new(Some(Box::new(change))));
    let e = romfs_build::build(src, out, &opts, &hook).expect_err("the build noticed nothing");
    assert_eq!(fs::read(out).ok(), old, "the previous image changed");
    assert_eq!(names(dir), before, "something was left behind");
    e
}

/// Files that grow, shrink, vanish, turn into directories or are rewritten
/// between the scan and the moment their bytes are copied.
#[test]
fn files_that_change_during_the_build() {
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let out = t.path().join("app.img");
    fs::write(&out, b"previous image").unwrap();
    let file = src.join("data.bin");
    let reset = || {
        fs::write(&file, [7u8; 5000]).unwrap();
        fs::write(src.join("copy-a.bin"), [1u8; 64]).unwrap();
        fs::write(src.join("copy-b.bin"), [1u8; 64]).unwrap();
    };
    let name = |e: &BuildError| e.to_string();

    reset();
    let f = file.clone();
    let e = build_changing(&src, &out, move || {
        fs::OpenOptions::new()
            .append(true)
            .open(&f)
            .unwrap()
            .set_len(6000)
            .unwrap();
    });
    assert!(
        matches!(e, BuildError::Changed { expected: 5000, .. }),
        "{e}"
    );
    assert!(name(&e).contains("data.bin: file changed while the image was built"));

    reset();
    let f = file.clone();
    let e = build_changing(&src, &out, move || fs::write(&f, [7u8; 10]).unwrap());
    assert!(
        matches!(
            e,
            BuildError::Changed {
                expected: 5000,
                actual: 10,
                ..
            }
        ),
        "{e}"
    );

    reset();
    let f = file.clone();
    let e = build_changing(&src, &out, move || fs::remove_file(&f).unwrap());
    assert!(
        name(&e).contains("data.bin: No such file or directory"),
        "{e}"
    );

    reset();
    let f = file.clone();
    let e = build_changing(&src, &out, move || {
        fs::remove_file(&f).unwrap();
        fs::create_dir(&f).unwrap();
    });
    assert!(name(&e).contains("data.bin: Is a directory"), "{e}");
    fs::remove_dir(&file).unwrap();

    // Two identical files share one copy of their bytes: if the one whose
    // bytes are written is rewritten with other bytes of the same length,
    // the other would silently get bytes it never had.
    reset();
    let a = src.join("copy-a.bin");
    let e = build_changing(&src, &out, move || fs::write(&a, [2u8; 64]).unwrap());
    assert!(matches!(e, BuildError::Rewritten { .. }), "{e}");
    assert!(name(&e).contains("copy-a.bin: file changed while the image was built"));

    // The follower rewritten: the image keeps the bytes it was compared
    // with (a state the file had during the build), and verifies.
    reset();
    let opts = BuildOptions {
        mpy: MpyMode::Never,
        ..BuildOptions::default()
    };
    let b = src.join("copy-b.bin");
    let hook = WhenWriting(Mutex::new(Some(Box::new(move || {
        fs::write(&b, [3u8; 64]).unwrap()
    }))));
    romfs_build::build(&src, &out, &opts, &hook).unwrap();
    let bytes = fs::read(&out).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(image.verify(|f| panic!("{f}")).findings, 0);
    let copy_b = image.lookup(b"copy-b.bin").unwrap().unwrap();
    assert_eq!(copy_b.as_file().unwrap().data(), [1u8; 64]);
}

/// A file appended to and files deleted and recreated by another thread
/// while the real binary builds: each run ends in a consistent image or a
/// clear error naming one of them.
#[test]
fn files_growing_and_vanishing_while_romfs_build_runs() {
    let t = tempdir();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..200 {
        fs::write(
            src.join(format!("steady{i:03}.txt")),
            format!("{i}").repeat(50),
        )
        .unwrap();
    }
    let log = src.join("log.bin");
    fs::write(&log, b"").unwrap();
    let chunk: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let out_dir = t.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("app.img");
    let stop = AtomicBool::new(false);
    let (mut ok, mut failed) = (0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                // Bursts of whole chunks (the log is always a run of them),
                // kept small, with pauses a build may fall into.
                if f.metadata().unwrap().len() >= 1 << 20 {
                    f.set_len(0).unwrap();
                }
                for _ in 0..4 {
                    f.write_all(&chunk).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
        });
        s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let p = src.join(format!("vanishing{}.txt", n % 20));
                if p.exists() {
                    fs::remove_file(&p).unwrap();
                } else {
                    fs::write(&p, format!("{}", n % 20).repeat(30)).unwrap();
                }
                n += 1;
            }
        });
        // The changers stop however this thread leaves the scope: a failed
        // assertion below must fail the test, not leave it waiting on them.
        let _stop = StopOnDrop(&stop);
        for _ in 0..12 {
            let before = names(&out_dir);
            let old = fs::read(&out).ok();
            let o = build(&src, &out, &[]);
            if o.status.success() {
                ok += 1;
                let bytes = fs::read(&out).unwrap();
                let image = Image::parse(&bytes).unwrap();
                assert_eq!(image.verify(|f| panic!("{f}")).findings, 0);
                // The log as it was at some moment: a prefix of the stream.
                let logged = image.lookup(b"log.bin").unwrap().unwrap();
                let data = logged.as_file().unwrap().data();
                assert!(data.chunks(4096).all(|c| c == &chunk[..c.len()]));
                for e in image.root().entries() {
                    let e = e.unwrap();
                    let name = String::from_utf8_lossy(e.name()).into_owned();
                    if let Some(k) = name
                        .strip_prefix("vanishing")
                        .and_then(|s| s.strip_suffix(".txt"))
                    {
                        // Whole, or caught between its creation and its
                        // one write (empty at the scan and at the read).
                        let data = e.as_file().unwrap().data();
                        assert!(data.is_empty() || data == k.repeat(30).as_bytes());
                    }
                }
            } else {
                failed += 1;
                let msg = stderr(&o);
                assert_eq!(o.status.code(), Some(1), "{msg}");
                // A vanishing file can also be caught half-written (created
                // empty, then filled): that too is a change.
                let changed = msg.contains(": file changed while the image was built");
                assert!(
                    (changed && (msg.contains("log.bin") || msg.contains("vanishing")))
                        || (msg.contains("vanishing") && msg.contains("No such file")),
                    "{msg}"
                );
                assert_eq!(fs::read(&out).ok(), old, "the previous image changed");
                assert_eq!(names(&out_dir), before, "something was left behind");
            }
        }
    });
    eprintln!("{ok} builds succeeded, {failed} noticed a change");
}

/// Sets the flag when dropped, also while unwinding from a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// True when running as root; outside CI, false (saying SKIPPED) otherwise.
fn root(what: &str) -> bool {
    let uid = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if uid == 0 {
        return true;
    }
    assert!(!in_ci(), "{what} needs root in CI");
    eprintln!("SKIPPED: {what} needs root");
    false
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "mount -t tmpfs failed (root without CAP_SYS_ADMIN?)"
        );
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `romfs ARGS` as user and group `nobody`.
fn as_nobody(args: &[&OsStr]) -> Output {
    let setpriv = romfs_testkit::system_tool("setpriv").expect("setpriv (util-linux)");
    Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(romfs_bin())
        .args(args)
        .output()
        .unwrap()
}

fn sample(src: &Path) {
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("main.py"), b"import lib.util\n").unwrap();
    fs::write(src.join("lib/util.py"), b"x = 1\n").unwrap();
}

#[test]
fn unreadable_files_and_directories() {
    if !root("dropping to nobody") {
        return;
    }
    // The binary must be reachable by nobody.
    let bin = romfs_bin();
    if bin
        .ancestors()
        .any(|d| fs::metadata(d).is_ok_and(|m| m.is_dir() && m.mode() & 0o001 == 0))
    {
        assert!(!in_ci(), "{} is not reachable by nobody", bin.display());
        eprintln!("SKIPPED: {} is not reachable by nobody", bin.display());
        return;
    }
    let t = tempdir();
    let out_dir = t.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    fs::set_permissions(&out_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let out = out_dir.join("app.img");
    let src = t.path().join("src");
    sample(&src);
    let secret = src.join("lib/secret.bin");
    fs::write(&secret, b"secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let build_as_nobody = || {
        let before = names(&out_dir);
        let o = as_nobody(&[
            "build".as_ref(),
            "--no-mpy".as_ref(),
            src.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(names(&out_dir), before, "something was left behind");
        stderr(&o)
    };
    let msg = build_as_nobody();
    assert!(msg.contains("lib/secret.bin: Permission denied"), "{msg}");
    fs::remove_file(&secret).unwrap();
    let locked = src.join("lib/locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("x.py"), b"x").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let msg = build_as_nobody();
    assert!(msg.contains("lib/locked: Permission denied"), "{msg}");
    // And nobody cannot write into root's directory: a clear error too.
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&out_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let msg = build_as_nobody();
    assert!(msg.contains("app.img: Permission denied"), "{msg}");
}

#[test]
fn a_read_only_output_directory() {
    if !root("mounting a tmpfs") {
        return;
    }
    let t = tempdir();
    let src = t.path().join("src");
    sample(&src);
    let ro = Tmpfs::mount(&t.path().join("ro"), "1m");
    let out = ro.0.join("app.img");
    fs::write(&out, b"previous image").unwrap();
    ro.remount("ro");
    let msg = build_fails(&src, &out, &[], &["Read-only file system"]);
    assert!(msg.contains(&out.display().to_string()), "{msg}");
}

#[test]
fn a_full_disk() {
    if !root("mounting a tmpfs") {
        return;
    }
    let t = tempdir();
    let src = t.path().join("src");
    sample(&src);
    // Incompressible, so the image cannot fit.
    fs::write(src.join("big.bin"), romfs_testkit::Rng(7).bytes(1 << 20)).unwrap();
    let small = Tmpfs::mount(&t.path().join("small"), "256k");
    let out = small.0.join("app.img");
    fs::write(&out, b"previous image").unwrap();
    let msg = build_fails(&src, &out, &[], &["No space left on device"]);
    assert!(msg.contains(&out.display().to_string()), "{msg}");
    // The space is free again: a smaller tree builds there.
    fs::remove_file(src.join("big.bin")).unwrap();
    build_ok(&src, &out, &[]);
    micropython_sees_source(&out, &src, "");
}

/// A sparse file just over 4 GiB: the image cannot exist (32-bit lengths);
/// the error says so, with the limit and the largest file, before anything
/// is read or written.
#[test]
fn an_image_over_4_gib_is_refused_up_front() {
    let t = tempdir();
    let src = t.path().join("src");
    sample(&src);
    let huge = src.join("huge.bin");
    fs::File::create(&huge)
        .unwrap()
        .set_len((1 << 32) + 1)
        .unwrap();
    let out = t.path().join("app.img");
    build_fails(
        &src,
        &out,
        &[],
        &[
            "app.img: the image would be",
            "the format allows at most 4 GiB (4294967295 bytes)",
            "huge.bin (4.0 GiB)",
        ],
    );
}
