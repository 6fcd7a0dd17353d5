//! Real FUSE mounts of generated images, compared with their sources.
//!
//! These need `/dev/fuse` and `fusermount3` (Debian package `fuse3`). Outside
//! CI a missing `fusermount3` skips them (saying so); in CI it fails them.
#![forbid(unsafe_code)]

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getuid, truncate, Pid};
use romfs_testkit::Rng;
use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use romfs_format::write::{MemoryTree, MetadataSpec, NodeRef, Options};
use romfs_format::Image;

const BIN: &str = env!("CARGO_BIN_EXE_romfs-mount");

/// `fusermount3`, or `None` (skip) outside CI when it is missing.
fn fuse_ready() -> bool {
    if romfs_testkit::system_tool("fusermount3").is_none() {
        return false;
    }
    if !Path::new("/dev/fuse").exists() {
        assert!(!romfs_testkit::in_ci(), "/dev/fuse is missing in CI");
        eprintln!("SKIPPED: /dev/fuse is missing");
        return false;
    }
    true
}

/// A fresh [`Scratch`] when FUSE is usable, `None` (skip) when not.
fn fuse_scratch() -> Option<Scratch> {
    fuse_ready().then(Scratch::new)
}

/// Write a random tree under `dir`. `ascii` keeps names ASCII (mpremote).
fn generate(rng: &mut Rng, dir: &Path, depth: usize, ascii: bool) {
    let entries = 2 + rng.below(if depth == 0 { 14 } else { 8 });
    let mut shared: Option<Vec<u8>> = None;
    for i in 0..entries {
        let stem: String = (0..1 + rng.below(16))
            .map(|_| {
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.~ "
                    [rng.below(67) as usize] as char
            })
            .collect();
        let mut name = format!("{i}{}", stem.trim_end());
        if !ascii && rng.below(5) == 0 {
            name.push_str("-é✓");
        }
        let path = dir.join(&name);
        if depth < 4 && rng.below(4) == 0 {
            fs::create_dir(&path).unwrap();
            generate(rng, &path, depth + 1, ascii);
        } else {
            let size = match rng.below(10) {
                0 => 0,
                1 => rng.below(128),
                2 => 16_370 + rng.below(30),
                3 => 200_000 + rng.below(1_500_000),
                4 => 4096 * (1 + rng.below(8)),
                _ => rng.below(20_000),
            } as usize;
            // Some files share contents (the default layout dedups them).
            let data = match (&shared, rng.below(6)) {
                (Some(s), 0) => s.clone(),
                _ => rng.bytes(size),
            };
            if shared.is_none() && data.len() > 16 {
                shared = Some(data.clone());
            }
            fs::write(&path, &data).unwrap();
        }
    }
}

/// Mirror a directory on disk into a `MemoryTree` (sorted, as builders do).
fn tree_from_disk(dir: &Path, tree: &mut MemoryTree, parent: NodeRef) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if path.is_dir() {
            let sub = tree.add_dir(parent, name.as_bytes()).unwrap();
            tree_from_disk(&path, tree, sub);
        } else {
            tree.add_file(parent, name.as_bytes(), fs::read(&path).unwrap())
                .unwrap();
        }
    }
}

/// A generated tree big enough to be interesting: several random subtrees.
fn generate_tree(seed: u64, dir: &Path, ascii: bool) {
    let mut rng = Rng(seed);
    for part in 0..6 {
        let sub = dir.join(format!("part{part}"));
        fs::create_dir(&sub).unwrap();
        generate(&mut rng, &sub, 1, ascii);
    }
    generate(&mut rng, dir, 3, ascii);
}

/// `src/` in `s`, filled by [`generate_tree`] from `seed`.
fn generated_source(s: &Scratch, seed: u64, ascii: bool) -> PathBuf {
    let src = s.path("src");
    fs::create_dir(&src).unwrap();
    generate_tree(seed, &src, ascii);
    src
}

/// The image `opts` builds of the tree `fill` makes under the root.
fn build_tree(opts: &Options, fill: impl FnOnce(&mut MemoryTree, NodeRef)) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    fill(&mut tree, root);
    tree.build(opts).unwrap()
}

/// [`build_tree`] written to the file `name` in `s`: its path and bytes.
fn image_in(
    s: &Scratch,
    name: &str,
    opts: &Options,
    fill: impl FnOnce(&mut MemoryTree, NodeRef),
) -> (PathBuf, Vec<u8>) {
    let bytes = build_tree(opts, fill);
    let img = s.path(name);
    fs::write(&img, &bytes).unwrap();
    (img, bytes)
}

/// `src` (a directory on disk) built with `opts` into `app.img` in `s`.
fn build_image(s: &Scratch, src: &Path, opts: &Options) -> (PathBuf, Vec<u8>) {
    image_in(s, "app.img", opts, |tree, root| {
        tree_from_disk(src, tree, root)
    })
}

/// Cut (or extend) the image file at `img` to `len` bytes, under a mount.
fn set_image_len(img: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(img)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn mounted(mnt: &Path) -> bool {
    romfs_mount::is_mounted(mnt)
}

fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (10 s at most) for nothing to be mounted on `mnt`.
fn wait_unmounted(mnt: &Path, what: &str) {
    wait_until(what, Duration::from_secs(10), || !mounted(mnt));
}

/// Wait (10 s at most) for process `pid` to be gone.
fn wait_exited(pid: i32, what: &str) {
    wait_until(what, Duration::from_secs(10), || !pid_alive(pid));
}

/// `romfs umount MNT` (the real CLI), lazily (`-z`) or not.
fn romfs_umount(mnt: &Path, lazy: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_romfs"));
    cmd.arg("umount");
    if lazy {
        cmd.arg("-z");
    }
    cmd.arg(mnt).output().unwrap()
}

/// A scratch directory with a mountpoint; unmounts on drop, even when the
/// test failed, so nothing stale is left behind.
struct Scratch {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    foreground: Option<Child>,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("romfs-mount-test")
            .tempdir()
            .unwrap();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        Scratch {
            dir,
            mnt,
            foreground: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Output {
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Mount `image` (daemon mode) with extra arguments; panics on failure.
    fn mount(&self, image: &Path, extra: &[&str]) {
        let mut args: Vec<&std::ffi::OsStr> = extra.iter().map(|s| s.as_ref()).collect();
        args.push(image.as_os_str());
        args.push(self.mnt.as_os_str());
        romfs_testkit::assert_succeeded(&self.run(&args), "mount");
        assert!(mounted(&self.mnt), "mount returned but nothing is mounted");
    }

    /// Mount in the foreground as a child process; returns once mounted.
    fn mount_foreground(&mut self, image: &Path) {
        let child = Command::new(BIN)
            .arg("-f")
            .arg(image)
            .arg(&self.mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.foreground = Some(child);
        let mnt = self.mnt.clone();
        wait_until("the foreground mount", Duration::from_secs(20), || {
            mounted(&mnt)
        });
    }

    /// The pid of the daemon serving this mountpoint: its one `romfs-mount`
    /// process that holds `/dev/fuse` (the helper that keeps fusermount3's
    /// auto-unmount socket has the same command line, and holds none).
    fn daemon_pid(&self) -> i32 {
        let needle = self.mnt.as_os_str().as_bytes();
        let servers: Vec<i32> = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| {
                let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
                let exe = fs::read_link(entry.path().join("exe")).ok()?;
                let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
                let serves = exe.file_name()? == "romfs-mount"
                    && cmdline.split(|b| *b == 0).any(|arg| arg == needle)
                    && holds_dev_fuse(pid);
                serves.then_some(pid)
            })
            .collect();
        assert_eq!(
            servers.len(),
            1,
            "romfs-mount processes holding /dev/fuse for {}: {servers:?}",
            self.mnt.display()
        );
        servers[0]
    }
}

/// Whether process `pid` has `/dev/fuse` open.
fn holds_dev_fuse(pid: i32) -> bool {
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|to| to == Path::new("/dev/fuse")))
    })
}

/// Send `signal` to process `pid`.
fn signal(pid: i32, signal: Signal) {
    kill(Pid::from_raw(pid), signal).unwrap();
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.mnt)
                .output();
        }
        if let Some(mut child) = self.foreground.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // Zombies count as dead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Every entry under `root`: relative path -> (is_dir, contents).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(path);
                out.insert(rel, None);
            } else {
                assert!(
                    ft.is_file(),
                    "{} is neither file nor directory",
                    path.display()
                );
                let data = fs::read(&path).unwrap();
                assert_eq!(
                    fs::metadata(&path).unwrap().len(),
                    data.len() as u64,
                    "size of {}",
                    rel.display()
                );
                out.insert(rel, Some(data));
            }
        }
    }
    out
}

/// The mounted tree equals the source: names, types, sizes, contents; and
/// inode numbers, link counts, modes and owners are what the issue says.
fn check_tree(src: &Path, mnt: &Path, image: &[u8]) {
    let want = snapshot(src);
    let got = snapshot(mnt);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "names differ"
    );
    for (path, data) in &want {
        assert!(got[path] == *data, "{} differs", path.display());
    }
    let image = Image::parse(image).unwrap();
    let root = fs::metadata(mnt).unwrap();
    assert_eq!(root.ino(), 1, "root inode");
    let uid = getuid().as_raw();
    for path in want.keys() {
        let full = mnt.join(path);
        let meta = fs::symlink_metadata(&full).unwrap();
        let node = image.lookup(path.as_os_str().as_bytes()).unwrap().unwrap();
        assert_eq!(
            meta.ino(),
            node.id() as u64 + 1,
            "inode of {}",
            path.display()
        );
        assert_eq!(meta.uid(), uid);
        if meta.is_dir() {
            assert_eq!(meta.mode() & 0o7777, 0o555, "{}", path.display());
            let subdirs = fs::read_dir(&full)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
                .count();
            assert_eq!(
                meta.nlink(),
                2 + subdirs as u64,
                "nlink of {}",
                path.display()
            );
            // readdir's inode numbers agree with stat's.
            for e in fs::read_dir(&full).unwrap() {
                let e = e.unwrap();
                assert_eq!(e.ino(), fs::symlink_metadata(e.path()).unwrap().ino());
            }
        } else {
            assert_eq!(meta.mode() & 0o7777, 0o444, "{}", path.display());
            assert_eq!(meta.nlink(), 1);
        }
    }
}

/// A tree generated from `seed`, built with `opts`, mounts and matches.
fn generated_tree_matches_source(seed: u64, ascii: bool, opts: &Options) {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let src = generated_source(&s, seed, ascii);
    let (img, bytes) = build_image(&s, &src, opts);
    s.mount(&img, &[]);
    check_tree(&src, &s.mnt, &bytes);
}

#[test]
fn default_layout_tree_matches_source() {
    generated_tree_matches_source(0x1234_5678_9abc, false, &Options::default());
}

#[test]
fn mpremote_layout_tree_matches_source() {
    generated_tree_matches_source(0xfeed_beef, true, &Options::mpremote());
}

/// An image written by the real `mpremote romfs build` mounts and matches.
#[test]
fn real_mpremote_image_matches_source() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let Some(mpremote) = romfs_testkit::venv_tool("mpremote") else {
        return;
    };
    let src = generated_source(&s, 0xabcdef, true);
    let img = s.path("mp.img");
    let out = Command::new(mpremote)
        .args(["romfs", "--no-mpy", "-o"])
        .arg(&img)
        .arg("build")
        .arg(&src)
        .output()
        .unwrap();
    romfs_testkit::assert_succeeded(&out, "mpremote");
    let bytes = fs::read(&img).unwrap();
    s.mount(&img, &[]);
    check_tree(&src, &s.mnt, &bytes);
}

/// `romfs build` (the real CLI) with `extra` arguments; its stderr.
fn romfs_build(src: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> String {
    let done = Command::new(env!("CARGO_BIN_EXE_romfs"))
        .arg("build")
        .arg(src)
        .arg("-o")
        .arg(out)
        .arg("--no-mpy")
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "romfs build failed: {stderr}");
    stderr
}

/// `romfs verify` (the real CLI) accepts the image.
fn romfs_verify(image: &Path) {
    let done = Command::new(env!("CARGO_BIN_EXE_romfs"))
        .arg("verify")
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "romfs verify {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
}

/// Every file of an image: relative path -> data offset.
fn data_offsets(image: &[u8]) -> BTreeMap<PathBuf, usize> {
    let image = Image::parse(image).unwrap();
    let mut out = BTreeMap::new();
    let mut stack = vec![(image.root(), PathBuf::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for e in dir.entries() {
            let e = e.unwrap();
            let path = prefix.join(std::ffi::OsStr::from_bytes(e.name()));
            match e {
                romfs_format::Node::Dir(d) => stack.push((d, path)),
                romfs_format::Node::File(f) => {
                    out.insert(path, f.data_offset());
                }
            }
        }
    }
    out
}

/// The files under `root`, smallest first (relative paths, with sizes).
fn files_by_size(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = snapshot(root)
        .into_iter()
        .filter_map(|(p, d)| d.map(|d| (p, d.len() as u64)))
        .collect();
    files.sort_by_key(|(p, len)| (*len, p.clone()));
    files
}

/// Stable-layout images (FORMAT.md 2.3: indirect data records, a data-area
/// padding record, free space) mount and match their source: a fresh one,
/// then one built with it as its base after files were removed, grown,
/// shrunk, renamed and added, mounted side by side.
#[test]
fn stable_layout_images_match_source_fresh_and_with_a_base() {
    let Some(first) = fuse_scratch() else {
        return;
    };
    let src = generated_source(&first, 0x57ab_1e00, false);
    let old_img = first.path("v1.img");
    let said = romfs_build(&src, &old_img, &["--stable".as_ref()]);
    assert!(said.contains("stable layout"), "{said}");
    romfs_verify(&old_img);
    let old = fs::read(&old_img).unwrap();
    first.mount(&old_img, &[]);
    check_tree(&src, &first.mnt, &old);
    let v1 = snapshot(&src);

    // Edit the source: small files only, so that the holes stay under the
    // limit and the base is used.
    let small: Vec<PathBuf> = files_by_size(&src)
        .into_iter()
        .filter(|(_, len)| (1..20_000).contains(len))
        .map(|(p, _)| p)
        .collect();
    assert!(small.len() >= 5, "too few small files: {small:?}");
    let (removed, grown, shrunk, renamed) = (&small[0], &small[1], &small[2], &small[3]);
    fs::remove_file(src.join(removed)).unwrap();
    let mut data = fs::read(src.join(grown)).unwrap();
    data.extend((0..3000u32).map(|i| (i * 7) as u8));
    fs::write(src.join(grown), &data).unwrap();
    let data = fs::read(src.join(shrunk)).unwrap();
    fs::write(src.join(shrunk), &data[..data.len() / 2]).unwrap();
    let renamed_to = renamed.with_file_name("renamed-é.bin");
    fs::rename(src.join(renamed), src.join(&renamed_to)).unwrap();
    fs::create_dir_all(src.join("added/deeper")).unwrap();
    fs::write(src.join("added/deeper/new.bin"), vec![0x5a; 5000]).unwrap();
    fs::write(src.join("added/empty"), b"").unwrap();

    let second = Scratch::new();
    let new_img = second.path("v2.img");
    let said = romfs_build(&src, &new_img, &["--base".as_ref(), old_img.as_os_str()]);
    assert!(!said.contains("afresh"), "the base was not used: {said}");
    romfs_verify(&new_img);
    let new = fs::read(&new_img).unwrap();
    // Unchanged files kept their places (the renamed one too: same bytes).
    let (before, after) = (data_offsets(&old), data_offsets(&new));
    let unchanged: Vec<&PathBuf> = after
        .keys()
        .filter(|p| before.contains_key(*p) && *p != grown && *p != shrunk)
        .collect();
    assert!(unchanged.len() > 10);
    for path in unchanged {
        assert_eq!(before[path], after[path], "{} moved", path.display());
    }
    assert_eq!(
        before[renamed], after[&renamed_to],
        "the renamed file moved"
    );
    second.mount(&new_img, &[]);
    check_tree(&src, &second.mnt, &new);
    // The first mount still serves the old image, as it was.
    assert!(snapshot(&first.mnt) == v1, "the old image's mount changed");
}

#[test]
fn eight_concurrent_random_readers() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let src = generated_source(&s, 0x5eed, false);
    let (img, _) = build_image(&s, &src, &Options::default());
    s.mount(&img, &[]);
    let files: Vec<(PathBuf, Vec<u8>)> = snapshot(&src)
        .into_iter()
        .filter_map(|(p, d)| d.map(|d| (p, d)))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    assert!(files.len() > 20, "the generated tree is too small");
    let files = &files;
    let mnt = &s.mnt;
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                for _ in 0..400 {
                    let (path, data) = &files[rng.below(files.len() as u64) as usize];
                    let f = fs::File::open(mnt.join(path)).unwrap();
                    let off = rng.below(data.len() as u64) as usize;
                    let len = 1 + rng.below(256 * 1024) as usize;
                    let mut buf = vec![0u8; len];
                    let n = f.read_at(&mut buf, off as u64).unwrap();
                    let end = data.len().min(off + len);
                    // One read may be short only at end of file.
                    assert!(n > 0, "empty read inside {}", path.display());
                    assert_eq!(
                        &buf[..n],
                        &data[off..off + n],
                        "{} at {off}",
                        path.display()
                    );
                    if n < end - off {
                        let mut rest = Vec::new();
                        let mut f2 = fs::File::open(mnt.join(path)).unwrap();
                        f2.read_to_end(&mut rest).unwrap();
                        assert_eq!(&rest[off..end], &data[off..end]);
                    }
                }
            });
        }
    });
}

#[test]
fn wide_directory_lists_completely() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let n = 20_500;
    let (img, _) = image_in(&s, "wide.img", &Options::default(), |tree, root| {
        let wide = tree.add_dir(root, b"wide").unwrap();
        for i in 0..n {
            tree.add_file(
                wide,
                format!("entry-{i:06}-with-a-longish-name.txt").as_bytes(),
                format!("{i}").into_bytes(),
            )
            .unwrap();
        }
    });
    s.mount(&img, &[]);
    let dir = s.mnt.join("wide");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), n, "entries listed");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "duplicates in the listing");
    for i in [0, 1, n / 2, n - 1] {
        let name = format!("entry-{i:06}-with-a-longish-name.txt");
        assert!(names.binary_search(&name).is_ok());
        assert_eq!(fs::read_to_string(dir.join(&name)).unwrap(), i.to_string());
    }
    // Reading every file in order: after the first READ the following small
    // files are pushed into the kernel's cache; their contents must match.
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            fs::read(dir.join(name)).unwrap(),
            i.to_string().into_bytes(),
            "{name}"
        );
    }
    // `.` and `..` come through readdir(3) too.
    let listing = Command::new("ls").arg("-a1f").arg(&dir).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), n + 2);
    assert!(lines.contains(&".") && lines.contains(&".."));
    assert_eq!(fs::metadata(&dir).unwrap().nlink(), 2);
    // A missing name is ENOENT (twice: the second answer is the cached miss).
    for _ in 0..2 {
        let e = fs::metadata(dir.join("entry-999999-missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = fs::File::open(s.mnt.join("nope/deeper")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

#[test]
fn writes_are_erofs() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, _) = image_in(&s, "rw.img", &Options::default(), |tree, root| {
        tree.add_file(root, b"file.txt", b"content".to_vec())
            .unwrap();
        let d = tree.add_dir(root, b"dir").unwrap();
        tree.add_file(d, b"inner", b"x".to_vec()).unwrap();
    });
    s.mount(&img, &[]);
    let m = &s.mnt;
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(30), "{what}: {e}");
    };
    erofs(fs::write(m.join("new.txt"), b"x"), "create");
    // (what, read, write, append)
    for (what, read, write, append) in [
        ("open for write", false, true, false),
        ("open for append", false, false, true),
        ("open read-write", true, true, false),
    ] {
        let opened = fs::OpenOptions::new()
            .read(read)
            .write(write)
            .append(append)
            .open(m.join("file.txt"));
        erofs(opened.map(drop), what);
    }
    erofs(fs::create_dir(m.join("newdir")), "mkdir");
    erofs(fs::remove_file(m.join("file.txt")), "unlink");
    erofs(fs::remove_dir_all(m.join("dir")), "rmdir");
    erofs(fs::rename(m.join("file.txt"), m.join("moved")), "rename");
    erofs(
        fs::set_permissions(m.join("file.txt"), fs::Permissions::from_mode(0o777)),
        "chmod",
    );
    erofs(fs::hard_link(m.join("file.txt"), m.join("link")), "link");
    erofs(
        std::os::unix::fs::symlink("file.txt", m.join("sym")),
        "symlink",
    );
    erofs(
        truncate(&m.join("file.txt"), 0).map_err(std::io::Error::from),
        "truncate",
    );
    assert_eq!(fs::read(m.join("file.txt")).unwrap(), b"content");
}

#[test]
fn corrupt_and_foreign_images_are_refused() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let mut bytes = build_tree(&Options::default(), |tree, root| {
        tree.add_file(root, b"a", vec![1; 1000]).unwrap();
    });
    // One flipped byte in the file data: the checksum catches it.
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("flipped.img", bytes.clone(), "corrupt"),
        (
            "text.img",
            b"this is not an image at all\n".to_vec(),
            "not a ROMFS image",
        ),
        ("short.img", vec![0xd2, 0xcd], "not a ROMFS image"),
        (
            "truncated.img",
            bytes[..bytes.len() - 10].to_vec(),
            "not a ROMFS image",
        ),
    ];
    for (name, data, expect) in cases {
        let img = s.path(name);
        fs::write(&img, &data).unwrap();
        let out = s.run(&[img.as_os_str(), s.mnt.as_os_str()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was mounted");
        assert!(err.contains(expect), "{name}: {err}");
        assert!(!mounted(&s.mnt), "{name} left a mount");
    }
    // A structurally broken image: a record running past its parent.
    let mut broken = build_tree(&Options::mpremote(), |tree, root| {
        let d = tree.add_dir(root, b"d").unwrap();
        tree.add_file(d, b"f", vec![9; 300]).unwrap();
    });
    // The directory record's length varuint follows its kind byte (4) at
    // the payload start; make it claim more than there is.
    let image = Image::parse(&broken).unwrap();
    let p = image.payload_offset();
    assert_eq!(broken[p], 4);
    broken[p + 1] = 0x7f;
    let img = s.path("broken.img");
    fs::write(&img, &broken).unwrap();
    let out = s.run(&[img.as_os_str(), s.mnt.as_os_str()]);
    assert!(!out.status.success(), "a broken image was mounted");
    assert!(!mounted(&s.mnt));
    // --ignore-checksum style option lets the flipped image through.
    let img = s.path("flipped.img");
    s.mount(&img, &["-o", "ignore_checksum"]);
}

#[test]
fn mountpoint_problems_are_clear() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, _) = image_in(&s, "a.img", &Options::default(), |tree, root| {
        tree.add_file(root, b"a", vec![1; 10]).unwrap();
    });
    let missing = s.path("missing");
    let out = s.run(&[img.as_os_str(), missing.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = s.run(&[img.as_os_str(), img.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    let out = s.run(&[s.path("no-such.img").as_os_str(), s.mnt.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read image"));
    s.mount(&img, &[]);
    let out = s.run(&[img.as_os_str(), s.mnt.as_os_str()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already mounted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unmounting works once, then says nothing is mounted.
    romfs_testkit::assert_succeeded(
        &s.run(&["-u".as_ref(), s.mnt.as_os_str()]),
        "romfs-mount -u",
    );
    assert!(!mounted(&s.mnt));
    let out = s.run(&["-u".as_ref(), s.mnt.as_os_str()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is mounted"));
}

fn small_image(s: &Scratch) -> PathBuf {
    let (img, _) = image_in(s, "t.img", &Options::default(), |tree, root| {
        tree.add_file(root, b"a-small", b"small file".to_vec())
            .unwrap();
        tree.add_file(
            root,
            b"big",
            (0..3_000_000u32).map(|i| (i * 7) as u8).collect(),
        )
        .unwrap();
    });
    img
}

#[test]
fn sigterm_in_foreground_unmounts() {
    let Some(mut s) = fuse_scratch() else {
        return;
    };
    let img = small_image(&s);
    s.mount_foreground(&img);
    assert_eq!(fs::read(s.mnt.join("a-small")).unwrap(), b"small file");
    let mut child = s.foreground.take().unwrap();
    signal(child.id() as i32, Signal::SIGTERM);
    let status = wait_child(&mut child, Duration::from_secs(10));
    assert!(status.success(), "foreground mount exited with {status}");
    assert!(!mounted(&s.mnt), "SIGTERM left the mount behind");
}

#[test]
fn sigterm_to_daemon_unmounts_and_sigkill_leaves_no_stale_mount() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let img = small_image(&s);
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    signal(pid, Signal::SIGTERM);
    wait_unmounted(&s.mnt, "unmount after SIGTERM");
    wait_exited(pid, "the daemon to exit");
    // A daemon killed outright: auto_unmount removes the mount.
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    signal(pid, Signal::SIGKILL);
    wait_unmounted(&s.mnt, "auto-unmount after SIGKILL");
    // `fusermount3 -u` unmounts too, and the daemon exits.
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(&s.mnt)
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_exited(pid, "the daemon to exit after fusermount3 -u");
}

/// Live processes (zombies aside) with `mnt` among their arguments: the
/// server, its keepalive helper, fusermount3.
fn processes_for(mnt: &Path) -> Vec<i32> {
    let needle = mnt.as_os_str().as_bytes();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let listed = cmdline.split(|b| *b == 0).any(|arg| arg == needle);
            (listed && pid_alive(pid)).then_some(pid)
        })
        .collect()
}

/// A killed server never leaves its mount behind, in the background or the
/// foreground, whatever order the kernel closes its descriptors in:
/// fusermount3 unmounts only a connection it finds dead, so it must not be
/// told before the server is wholly gone (it was, now and then, while the
/// server held fusermount3's socket itself). Nothing is left running.
#[test]
fn sigkill_never_leaves_a_stale_mount() {
    let Some(mut s) = fuse_scratch() else {
        return;
    };
    let img = small_image(&s);
    for round in 0..25 {
        s.mount(&img, &[]);
        signal(s.daemon_pid(), Signal::SIGKILL);
        wait_unmounted(
            &s.mnt,
            &format!("auto-unmount after SIGKILL to the daemon (round {round})"),
        );
        s.mount_foreground(&img);
        let mut child = s.foreground.take().unwrap();
        signal(child.id() as i32, Signal::SIGKILL);
        child.wait().unwrap();
        wait_unmounted(
            &s.mnt,
            &format!("auto-unmount after SIGKILL in the foreground (round {round})"),
        );
        wait_until(
            &format!("every process of the mount to exit (round {round})"),
            Duration::from_secs(10),
            || processes_for(&s.mnt).is_empty(),
        );
    }
}

/// A mount that fusermount3 refuses is reported in fusermount3's own words
/// (or with its exit status when it says nothing), naming the mountpoint,
/// the same from the background mount process as in the foreground; and
/// nothing is left running.
#[test]
fn a_refused_mount_says_what_fusermount3_said() {
    let s = Scratch::new();
    let img = small_image(&s);
    let mnt = fs::canonicalize(&s.mnt).unwrap();
    let fakes = s.path("fake-fuse");
    fs::create_dir(&fakes).unwrap();
    let path = format!(
        "{}:{}",
        fakes.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cases = [
        (
            "echo 'fusermount3: failed to access mountpoint: Permission denied' >&2; exit 1",
            "fusermount3: failed to access mountpoint: Permission denied",
        ),
        ("exit 3", "fusermount3 exited with exit status: 3"),
    ];
    for (script, said) in cases {
        let fake = fakes.join("fusermount3");
        fs::write(&fake, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        for foreground in [false, true] {
            let mut mount = Command::new(BIN);
            if foreground {
                mount.arg("-f");
            }
            let out = mount
                .arg(&img)
                .arg(&s.mnt)
                .env("PATH", &path)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "foreground: {foreground}");
            assert_eq!(
                String::from_utf8_lossy(&out.stderr),
                format!(
                    "romfs-mount: error: FUSE mount on {} failed: {said}\n",
                    mnt.display()
                ),
                "foreground: {foreground}"
            );
            assert!(!mounted(&s.mnt));
            // The mount process may still be on its way out.
            wait_until(
                "every process of the refused mount to exit",
                Duration::from_secs(10),
                || processes_for(&s.mnt).is_empty(),
            );
        }
    }
}

/// Unmounting a mount with a file open in it fails, saying why and what to
/// do; unmounting lazily then succeeds.
#[test]
fn unmounting_a_busy_mount_says_so() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let img = small_image(&s);
    s.mount(&img, &[]);
    let open = fs::File::open(s.mnt.join("a-small")).unwrap();
    let out = romfs_umount(&s.mnt, false);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "romfs: error: cannot unmount {}: ",
            s.mnt.display()
        )) && stderr.ends_with("busy (files are open in it; close them, or unmount lazily)\n"),
        "{stderr}"
    );
    assert!(mounted(&s.mnt));
    romfs_testkit::assert_succeeded(&romfs_umount(&s.mnt, true), "romfs umount -z");
    assert!(!mounted(&s.mnt));
    drop(open);
}

#[test]
fn truncated_image_gives_eio_not_a_crash() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let img = small_image(&s);
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    let big = s.mnt.join("big");
    let want: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    // Read the start once (cached from now on), then cut the image short.
    let f = fs::File::open(&big).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact_at(&mut head, 0).unwrap();
    set_image_len(&img, 1_000_000);
    let mut tail = vec![0u8; 65536];
    let e = f
        .read_exact_at(&mut tail, 2_500_000)
        .expect_err("read past the truncated end");
    assert_eq!(e.raw_os_error(), Some(5), "{e}");
    assert!(pid_alive(pid), "the mounter died");
    assert!(mounted(&s.mnt));
    assert_eq!(head, want[..4096]);
    assert_eq!(fs::read(s.mnt.join("a-small")).unwrap(), b"small file");
    // Rewritten with other bytes of the same length: no crash either.
    fs::write(&img, vec![0u8; 3_100_000]).unwrap();
    let mut buf = vec![0u8; 65536];
    let _ = f.read_at(&mut buf, 2_000_000);
    assert!(pid_alive(pid), "the mounter died after a rewrite");
    assert!(fs::metadata(&s.mnt).is_ok());
}

/// Names of the threads of process `pid`.
fn thread_names(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A whole file read front to back with `read()`s of `chunk` bytes, as
/// sequential readers do (`read_to_end` would pick its own sizes).
fn read_in_chunks(path: &Path, chunk: usize) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match f.read(&mut buf).unwrap() {
            0 => return got,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// An image with one large file of pseudo-random bytes (wrong offsets show).
fn large_image(s: &Scratch, len: usize) -> (PathBuf, Vec<u8>) {
    let data = Rng(0x5EED).bytes(len);
    let (img, _) = image_in(s, "large.img", &Options::default(), |tree, root| {
        tree.add_file(root, b"large", data.clone()).unwrap();
    });
    (img, data)
}

#[test]
fn sequential_reads_are_read_ahead_and_correct() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, want) = large_image(&s, 40 << 20);
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    // Sequential reads in the size `cat` uses.
    let got = read_in_chunks(&s.mnt.join("large"), 128 * 1024);
    assert!(got == want, "contents differ from the source");
    // The sequential stream was noticed and read ahead by its own thread
    // (which names itself once it first runs: on a loaded machine that can
    // be after the read).
    wait_until(
        "a thread named romfs-readahead",
        Duration::from_secs(10),
        || thread_names(pid).iter().any(|n| n == "romfs-readahead"),
    );
}

#[test]
fn ten_concurrent_sequential_readers() {
    // More streams than the read-ahead tracks at once (8): slots get
    // replaced while the populate thread works on others.
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, files) = files_image(&s, 0xF11E, 10, 3 << 20);
    s.mount(&img, &[]);
    let mnt = &s.mnt;
    std::thread::scope(|scope| {
        for (i, want) in files.iter().enumerate() {
            scope.spawn(move || {
                let got = read_in_chunks(&mnt.join(format!("f{i}")), 64 * 1024);
                assert!(got == *want, "f{i} differs from its source");
            });
        }
    });
}

#[test]
fn readahead_0_turns_read_ahead_off() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, want) = large_image(&s, 8 << 20);
    s.mount(&img, &["-o", "readahead=0"]);
    let pid = s.daemon_pid();
    assert!(fs::read(s.mnt.join("large")).unwrap() == want);
    let threads = thread_names(pid);
    assert!(
        threads.iter().any(|n| n.starts_with("fuser")),
        "{threads:?}"
    );
    assert!(
        !threads.iter().any(|n| n == "romfs-readahead"),
        "{threads:?}"
    );
}

#[test]
fn truncating_the_image_during_read_ahead_is_not_a_crash() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, want) = large_image(&s, 48 << 20);
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    let f = fs::File::open(s.mnt.join("large")).unwrap();
    // Start a sequential stream: the read-ahead thread now works up to
    // 16 MiB past it.
    let mut head = vec![0u8; 4 << 20];
    f.read_exact_at(&mut head, 0).unwrap();
    assert!(head == want[..4 << 20]);
    set_image_len(&img, 6 << 20);
    // Reading on runs into the cut: EIO at some point, never a dead mounter.
    let mut buf = vec![0u8; 1 << 20];
    let mut failed = false;
    for off in (4u64 << 20..48 << 20).step_by(1 << 20) {
        match f.read_at(&mut buf, off) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(5), "at {off}: {e}");
                failed = true;
            }
        }
    }
    assert!(failed, "reads past the cut succeeded");
    std::thread::sleep(Duration::from_millis(200));
    assert!(pid_alive(pid), "the mounter died");
    assert!(mounted(&s.mnt));
}

#[test]
fn attributes_statfs_and_owner_options() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let name255 = "n".repeat(255);
    let opts = Options {
        metadata: Some(MetadataSpec {
            build_time: Some(1_700_000_000),
            ..MetadataSpec::default()
        }),
        ..Options::default()
    };
    let (img, bytes) = image_in(&s, "attrs.img", &opts, |tree, root| {
        let d = tree.add_dir(root, b"d").unwrap();
        tree.add_dir(d, b"e").unwrap();
        tree.add_file(d, b"f", vec![5; 5000]).unwrap();
        tree.add_file(root, name255.as_bytes(), vec![]).unwrap();
    });
    s.mount(
        &img,
        &[
            "--uid",
            "1234",
            "--gid",
            "4321",
            "--file-mode",
            "0640",
            "-o",
            "dmode=0750",
        ],
    );
    let f = fs::metadata(s.mnt.join("d/f")).unwrap();
    assert_eq!(
        (f.uid(), f.gid(), f.mode() & 0o7777, f.len(), f.blocks()),
        (1234, 4321, 0o640, 5000, 10)
    );
    assert_eq!(f.mtime(), 1_700_000_000);
    let d = fs::metadata(s.mnt.join("d")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.nlink()), (0o750, 3));
    assert_eq!(d.mtime(), 1_700_000_000);
    assert!(fs::metadata(s.mnt.join(&name255)).unwrap().is_file());
    let out = Command::new("stat")
        .args(["-f", "-c", "%b %S %f %a %l"])
        .arg(&s.mnt)
        .output()
        .unwrap();
    let fields: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        fields[0] * fields[1],
        (bytes.len() as u64).div_ceil(512) * 512,
        "statfs size"
    );
    assert_eq!(
        (fields[2], fields[3], fields[4]),
        (0, 0, 255),
        "free, available, namemax"
    );
    // Without metadata, the image file's modification time is used.
    let (img2, _) = image_in(&s, "nometa.img", &Options::mpremote(), |tree, root| {
        tree.add_file(root, b"x", vec![1]).unwrap();
    });
    let s2 = Scratch::new();
    s2.mount(&img2, &[]);
    let want = fs::metadata(&img2).unwrap().mtime();
    assert_eq!(fs::metadata(s2.mnt.join("x")).unwrap().mtime(), want);
}

fn wait_child(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < deadline, "child did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Hostile conditions with reader *processes*: the image changed or the
// daemon killed under them. Readers use `dd iflag=direct`, so every read
// reaches the daemon instead of the page cache.

/// An image of `n` files of `len` pseudo-random bytes each, `f0`, `f1`...
/// (file `i` from seed `seed ^ i`).
fn files_image(s: &Scratch, seed: u64, n: usize, len: usize) -> (PathBuf, Vec<Vec<u8>>) {
    let files: Vec<Vec<u8>> = (0..n as u64).map(|i| Rng(seed ^ i).bytes(len)).collect();
    let (img, _) = image_in(s, "files.img", &Options::default(), |tree, root| {
        for (i, data) in files.iter().enumerate() {
            tree.add_file(root, format!("f{i}").as_bytes(), data.clone())
                .unwrap();
        }
    });
    (img, files)
}

/// A reader process: `script` run by `sh` with `$F` the file to read.
fn reader(file: &Path, script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("F", file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for every reader, none longer than `deadline` in all (a hang fails
/// the test, after killing what is left); their exit codes and stderr.
fn wait_readers(children: Vec<Child>, deadline: Duration) -> Vec<(Option<i32>, String)> {
    let start = Instant::now();
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let mut done: Vec<Option<(Option<i32>, String)>> = children.iter().map(|_| None).collect();
    while done.iter().any(Option::is_none) {
        for (slot, out) in children.iter_mut().zip(done.iter_mut()) {
            let Some(child) = slot else { continue };
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                // A signal (SIGBUS, SIGSEGV...) has no exit code.
                *out = Some((status.code(), err));
                *slot = None;
            }
        }
        if start.elapsed() > deadline {
            for child in children.iter_mut().flatten() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("reader processes hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done.into_iter().map(Option::unwrap).collect()
}

#[test]
fn many_reader_processes_read_correctly() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, files) = files_image(&s, 0xD1CE, 8, 3 << 20);
    for (i, data) in files.iter().enumerate() {
        fs::write(s.path(&format!("src{i}")), data).unwrap();
    }
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    // 32 processes, 4 per file, each with its own request size.
    let readers: Vec<Child> = (0..32)
        .map(|k| {
            let i = k % files.len();
            let bs = [4096, 65536, 131072, 1 << 20][k / files.len()];
            let src = s.path(&format!("src{i}"));
            let script = format!(
                "dd if=\"$F\" bs={bs} iflag=direct status=none | cmp - '{}'",
                src.display()
            );
            reader(&s.mnt.join(format!("f{i}")), &script)
        })
        .collect();
    for (k, (code, err)) in wait_readers(readers, Duration::from_secs(120))
        .into_iter()
        .enumerate()
    {
        assert_eq!(code, Some(0), "reader {k}: {err}");
    }
    assert!(pid_alive(pid));
}

#[test]
fn image_truncated_and_overwritten_under_reader_processes() {
    let Some(s) = fuse_scratch() else {
        return;
    };
    let (img, files) = files_image(&s, 0xD1CE, 4, 8 << 20);
    let original = fs::read(&img).unwrap();
    s.mount(&img, &[]);
    let pid = s.daemon_pid();
    // Two looping readers per file; they report each failed read and go on.
    let readers: Vec<Child> = (0..8)
        .map(|k| {
            let script = "i=0; while [ $i -lt 300 ]; do \
                 dd if=\"$F\" of=/dev/null bs=262144 iflag=direct status=none; \
                 i=$((i+1)); done";
            reader(&s.mnt.join(format!("f{}", k % 4)), script)
        })
        .collect();
    let pause = || std::thread::sleep(Duration::from_millis(300));
    pause();
    // Cut to a quarter, then the same length of other bytes, then back.
    set_image_len(&img, original.len() as u64 / 4);
    pause();
    fs::write(&img, vec![0x55; original.len()]).unwrap();
    pause();
    fs::write(&img, &original).unwrap();
    let mut failed_reads = 0;
    for (k, (code, err)) in wait_readers(readers, Duration::from_secs(300))
        .into_iter()
        .enumerate()
    {
        // No signal; the only complaint is an I/O error.
        assert!(code.is_some(), "reader {k} was killed by a signal: {err}");
        for line in err.lines() {
            assert!(line.ends_with("Input/output error"), "reader {k}: {line}");
            failed_reads += 1;
        }
    }
    assert!(failed_reads > 0, "no read ran into the cut");
    assert!(pid_alive(pid), "the mounter died");
    // With the bytes back, every file reads as built again.
    for (i, data) in files.iter().enumerate() {
        let out = Command::new("dd")
            .arg(format!("if={}", s.mnt.join(format!("f{i}")).display()))
            .args(["bs=1048576", "iflag=direct", "status=none"])
            .output()
            .unwrap();
        assert!(out.stdout == *data, "f{i} after the image was restored");
    }
    romfs_testkit::assert_succeeded(&romfs_umount(&s.mnt, false), "romfs umount");
    assert!(!mounted(&s.mnt));
    wait_exited(pid, "the daemon to exit");
}

/// SIGKILL to the daemon while reader processes are mid-read: they get an
/// error (not a hang, not a signal), and the mountpoint is cleaned up:
/// by `romfs umount` when auto-unmount is off, by itself when it is on.
#[test]
fn daemon_killed_mid_read() {
    if !fuse_ready() {
        return;
    }
    for auto_unmount in [false, true] {
        let s = Scratch::new();
        let (img, _) = files_image(&s, 0xD1CE, 4, 8 << 20);
        let extra: &[&str] = if auto_unmount {
            &[]
        } else {
            &["-o", "noauto_unmount"]
        };
        s.mount(&img, extra);
        let pid = s.daemon_pid();
        // Each reader loops until a read fails, and says how.
        let readers: Vec<Child> = (0..8)
            .map(|k| {
                let script =
                    "while dd if=\"$F\" of=/dev/null bs=65536 iflag=direct status=none; do :; done";
                reader(&s.mnt.join(format!("f{}", k % 4)), script)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        signal(pid, Signal::SIGKILL);
        for (k, (code, err)) in wait_readers(readers, Duration::from_secs(30))
            .into_iter()
            .enumerate()
        {
            assert!(code.is_some(), "reader {k} was killed by a signal: {err}");
            assert!(
                err.contains("Transport endpoint is not connected")
                    || err.contains("Software caused connection abort")
                    || err.contains("Input/output error")
                    // Auto-unmounted before the next open.
                    || (auto_unmount && err.contains("No such file or directory")),
                "reader {k}: {err}"
            );
        }
        wait_exited(pid, "the daemon to die");
        if auto_unmount {
            wait_unmounted(&s.mnt, "auto-unmount");
            let out = romfs_umount(&s.mnt, false);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is mounted there"));
        } else {
            // A dead mount: stat says so, and `romfs umount` removes it.
            assert!(mounted(&s.mnt), "noauto_unmount: the dead mount stays");
            let e = fs::metadata(&s.mnt).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(Errno::ENOTCONN as i32), "{e}");
            romfs_testkit::assert_succeeded(&romfs_umount(&s.mnt, false), "romfs umount");
            assert!(!mounted(&s.mnt));
        }
        assert!(
            fs::read_dir(&s.mnt).unwrap().next().is_none(),
            "a clean, empty mountpoint"
        );
    }
}
