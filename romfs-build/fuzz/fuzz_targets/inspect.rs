//! The inspection paths of `romfs-build` (what `romfs ls`, `tree`, `cat`,
//! `info`, `verify` and `extract` run) on arbitrary image files: no panic,
//! no hang, no allocation out of proportion to the input, answers that
//! agree with one another and with `romfs-format`, and an extraction that
//! creates nothing outside its destination, even with symlinks planted in
//! it.
//!
//! Input: one control byte (bit 0: `--force` for the extraction over
//! planted symlinks), then the image file's bytes.
#![no_main]

use std::collections::HashSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use romfs_build::inspect::{self, EntryKind, ImageFile, WalkEntry};
use romfs_build::ReadError;
use romfs_format::Image;
use romfs_testkit::alloc_limit::LimitedAlloc;

#[global_allocator]
static ALLOC: LimitedAlloc = LimitedAlloc::new();

/// Entries checked one by one (lookup, cat, list) per input.
const CHECKED: usize = 256;
/// Images with at most this many entries are extracted (it writes files).
const EXTRACTED: usize = 64;

/// This process's scratch directory: in memory when /dev/shm exists.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| romfs_testkit::scratch_dir("romfs-fuzz-inspect"))
}

/// A walk entry whose path a lookup can find: every name on the way is
/// clean (not empty, no `/` or NUL, UTF-8: U+FFFD stands for bytes that
/// were not), the first of its name in its directory, and no earlier
/// sibling of the entry or of an ancestor holds a `/` and so matches the
/// rest of the path first (a lookup takes the first name that equals the
/// rest of the path or is followed by `/` in it, and never backtracks).
fn reachable(walk: &[WalkEntry]) -> Vec<bool> {
    // Per depth: names seen in the current directory, those of them that
    // hold a `/`, whether the directory itself is reachable, and the name
    // of the entry at that depth on the current path.
    let mut seen: Vec<HashSet<&str>> = vec![HashSet::new()];
    let mut slashed: Vec<Vec<&str>> = vec![Vec::new()];
    let mut open: Vec<bool> = vec![true];
    let mut names: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(walk.len());
    for w in walk {
        let d = w.depth;
        assert!(d >= 1 && d <= seen.len(), "depth {d} out of order");
        seen.truncate(d);
        slashed.truncate(d);
        open.truncate(d);
        names.truncate(d - 1);
        let name = w.entry.name.as_str();
        names.push(name);
        let first = seen[d - 1].insert(name);
        let clean = !name.is_empty() && !name.contains(['/', '\0', '\u{fffd}']);
        let shadowed = (0..d).any(|k| {
            if slashed[k].is_empty() {
                return false;
            }
            let rest = names[k..].join("/");
            slashed[k].iter().any(|n| {
                rest.strip_prefix(n)
                    .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
            })
        });
        let ok = open[d - 1] && first && clean && !shadowed;
        out.push(ok);
        if name.contains('/') {
            slashed[d - 1].push(name);
        }
        if w.entry.is_dir() {
            seen.push(HashSet::new());
            slashed.push(Vec::new());
            open.push(ok);
        }
    }
    out
}

/// Every entry under `root` (relative path, contents for files); panics on
/// anything but files and directories.
fn snapshot(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            assert!(!ft.is_symlink(), "extraction created a symlink: {rel}");
            if ft.is_dir() {
                stack.push(path);
                out.push((rel, None));
            } else {
                assert!(ft.is_file(), "{rel} is not a file");
                out.push((rel, Some(fs::read(&path).unwrap())));
            }
        }
    }
    out.sort();
    out
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

fn check_extract(
    file: &ImageFile,
    image: &Image<'_>,
    walk: &[WalkEntry],
    run: &Path,
    force: bool,
    clean: bool,
) {
    let sentinel = run.join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    let dest = run.join("dest");
    let result = inspect::extract(file, &dest, false);
    if clean {
        assert!(
            result.is_ok(),
            "a clean image did not extract: {:?}",
            result.err()
        );
    }
    if let Ok((dirs, files)) = result {
        let mut want: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for (w, ok) in walk.iter().zip(reachable(walk)) {
            if !ok {
                continue;
            }
            let data = match w.entry.kind {
                EntryKind::Dir => None,
                EntryKind::File => {
                    let off = w.entry.offset.unwrap() as usize;
                    Some(image.bytes()[off..off + w.entry.size as usize].to_vec())
                }
            };
            want.push((w.entry.path.clone(), data));
        }
        want.sort();
        let got = snapshot(&dest);
        // Names that are not UTF-8 are extracted but not in `want`.
        if walk.iter().all(|w| !w.entry.name.contains('\u{fffd}')) {
            assert_eq!(got, want, "extracted tree differs from the image");
            let dirs_want = want.iter().filter(|(_, d)| d.is_none()).count();
            assert_eq!((dirs, files), (dirs_want, want.len() - dirs_want));
        }
    }
    assert!(
        is_empty_dir(&sentinel),
        "extraction wrote outside its destination"
    );

    // Again, over symlinks planted where the root's entries go: one to
    // the sentinel directory for a directory, a dangling one into it for a
    // file. Nothing may be created through them, with or without force.
    let dest = run.join("planted");
    fs::create_dir(&dest).unwrap();
    for w in walk.iter().filter(|w| w.depth == 1).take(8) {
        let name = w.entry.name.as_str();
        if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
            continue;
        }
        let target = match w.entry.kind {
            EntryKind::Dir => PathBuf::from("../sentinel"),
            EntryKind::File => PathBuf::from("../sentinel/planted"),
        };
        let _ = std::os::unix::fs::symlink(
            target,
            dest.join(std::ffi::OsStr::from_bytes(name.as_bytes())),
        );
    }
    let _ = inspect::extract(file, &dest, force);
    assert!(
        is_empty_dir(&sentinel),
        "extraction wrote through a planted symlink"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let run = scratch().join("run");
    let _ = fs::remove_dir_all(&run);
    fs::create_dir(&run).unwrap();
    let path = run.join("image.img");
    fs::write(&path, bytes).unwrap();

    let n = data.len();
    let _limits = ALLOC.limit((1 << 20) + 128 * n, (32 << 20) + 1024 * n);
    let file = ImageFile::open(&path).expect("a regular file opens");
    assert_eq!(file.bytes(), bytes);

    let verify = inspect::verify(&file);
    let walk = inspect::walk(&file);
    let info = inspect::info(&file);
    let root = inspect::list(&file, "");
    let Ok(image) = Image::parse(bytes) else {
        // Not an image: every reader says so, verify as one finding.
        assert_eq!(verify.findings.len(), 1);
        assert!(matches!(walk, Err(ReadError::Corrupt(_))));
        assert!(matches!(info, Err(ReadError::Corrupt(_))));
        assert!(matches!(root, Err(ReadError::Corrupt(_))));
        assert!(inspect::cat(&file, "a").is_err());
        let dest = run.join("dest");
        assert!(inspect::extract(&file, &dest, false).is_err());
        assert!(
            !dest.exists(),
            "a failed extraction created its destination"
        );
        return;
    };
    let clean = verify.is_clean();
    if clean {
        assert!(walk.is_ok() && info.is_ok() && root.is_ok());
    }
    let Ok(walk) = walk else {
        return;
    };
    let info = info.expect("info reads what walk reads");
    assert_eq!(info.files + info.dirs, walk.len());
    assert_eq!(info.image_size, image.len() as u64);
    assert_eq!(info.findings, verify.findings.len());
    let file_bytes: u64 = walk
        .iter()
        .filter(|w| !w.entry.is_dir())
        .map(|w| w.entry.size)
        .sum();
    assert_eq!(info.file_bytes, file_bytes);
    assert!(info.stored_bytes <= info.file_bytes);
    if clean {
        assert_eq!((verify.files, verify.dirs), (info.files, info.dirs));
    }
    let root = root.expect("the root lists when the whole tree walks");
    let top: Vec<_> = walk
        .iter()
        .filter(|w| w.depth == 1)
        .map(|w| &w.entry)
        .collect();
    assert_eq!(
        root.iter().collect::<Vec<_>>(),
        top,
        "ls / differs from the walk"
    );

    // Every reachable entry: cat gives its bytes, ls its children.
    let reach = reachable(&walk);
    for (i, w) in walk
        .iter()
        .enumerate()
        .filter(|&(i, _)| reach[i])
        .take(CHECKED)
    {
        let e = &w.entry;
        match e.kind {
            EntryKind::File => {
                let off = e.offset.unwrap() as usize;
                let data = inspect::cat(&file, &e.path).expect("cat of a listed file");
                assert_eq!(data, &image.bytes()[off..off + e.size as usize]);
                let listed = inspect::list(&file, &e.path).expect("ls of a listed file");
                assert_eq!(listed, vec![e.clone()]);
            }
            EntryKind::Dir => {
                assert!(matches!(
                    inspect::cat(&file, &e.path),
                    Err(ReadError::IsADirectory { .. })
                ));
                let listed = inspect::list(&file, &e.path).expect("ls of a listed directory");
                let children = walk[i + 1..]
                    .iter()
                    .take_while(|c| c.depth > w.depth)
                    .filter(|c| c.depth == w.depth + 1)
                    .count();
                assert_eq!(listed.len(), children, "ls {}", e.path);
            }
        }
    }
    assert!(matches!(
        inspect::cat(&file, "/"),
        Err(ReadError::IsADirectory { .. })
    ));

    if walk.len() <= EXTRACTED {
        check_extract(&file, &image, &walk, &run, control & 1 == 1, clean);
    }
});
