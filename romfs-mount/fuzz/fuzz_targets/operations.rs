//! The mounter's filesystem operations on arbitrary images, driven
//! directly (the same code the FUSE handlers run, without a kernel):
//! preparing the mount (map, verify, index), then LOOKUP, GETATTR,
//! READDIR(PLUS) at any offset, OPEN/OPENDIR with any flags, READ at any
//! offset and size, ACCESS and STATFS. Nothing may panic, hang or allocate
//! out of proportion to the input, and every answer must agree with the
//! others and with `romfs-format`'s reader.
//!
//! Input: one byte `k`, then `k % 32` script bytes (offsets, sizes and
//! options), then the image file's bytes.
#![no_main]

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use romfs_format::name::NameProblem;
use romfs_format::{FindingKind, Image, Node};
use romfs_mount::direct::{DirEntry, DirectFs, Errno, FileAttr, FileType};
use romfs_mount::{MountError, MountOptions};
use romfs_testkit::alloc_limit::LimitedAlloc;

#[global_allocator]
static ALLOC: LimitedAlloc = LimitedAlloc::new();

/// Nodes visited per input (each costs a few operations).
const VISITED: usize = 2_000;

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| romfs_testkit::scratch_dir("romfs-fuzz-operations"))
}

/// Script bytes, read round and round.
struct Script<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        if self.bytes.is_empty() {
            return 0;
        }
        let b = self.bytes[self.pos % self.bytes.len()];
        self.pos += 1;
        b
    }

    /// An offset or size relative to `len`: small, near `len`, or huge.
    fn around(&mut self, len: u64) -> u64 {
        let b = self.byte();
        let k = u64::from(b & 0x3f);
        match b >> 6 {
            0 => k,
            1 => len.saturating_sub(k),
            2 => len.saturating_add(k),
            _ => u64::MAX - k,
        }
    }
}

/// Whether a finding still lets the image be mounted, as
/// `Prepared::warnings` documents it.
fn harmless(kind: &FindingKind, ignore_checksum: bool) -> bool {
    match kind {
        FindingKind::DuplicateName
        | FindingKind::OddImageSize
        | FindingKind::Name(NameProblem::NotUtf8) => true,
        FindingKind::ChecksumMismatch { .. } => ignore_checksum,
        _ => false,
    }
}

fn check_file(fs: &DirectFs, attr: &FileAttr, data: &[u8], script: &mut Script<'_>) {
    let ino = attr.ino.0;
    let len = data.len() as u64;
    assert_eq!(attr.size, len);
    assert_eq!(attr.kind, FileType::RegularFile);
    assert_eq!(attr.nlink, 1);
    assert_eq!(fs.open_file(ino, libc::O_RDONLY), Ok(()));
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_APPEND,
    ] {
        assert_eq!(
            fs.open_file(ino, flags),
            Err(Errno::EROFS),
            "flags {flags:#x}"
        );
    }
    assert_eq!(fs.opendir(ino, libc::O_RDONLY), Err(Errno::ENOTDIR));
    assert_eq!(fs.readdir(ino, 0, 1).err(), Some(Errno::ENOTDIR));
    assert_eq!(fs.lookup(ino, b"x").err(), Some(Errno::ENOTDIR));
    let mut reads = vec![
        (0, u32::MAX),
        (0, 1),
        (len, 1),
        (len.saturating_sub(1), 1),
        (u64::MAX, u32::MAX),
    ];
    for _ in 0..3 {
        let off = script.around(len);
        let size = script.around(len).min(u64::from(u32::MAX)) as u32;
        reads.push((off, size));
    }
    for (off, size) in reads {
        let got = fs
            .read(ino, off, size)
            .expect("a read of a file in an unchanged image");
        let start = off.min(len) as usize;
        let end = off.saturating_add(u64::from(size)).min(len) as usize;
        assert!(
            got == &data[start..end.max(start)],
            "read({off}, {size}) of {len} bytes"
        );
    }
}

fn check_dir(
    fs: &DirectFs,
    image: &Image<'_>,
    attr: &FileAttr,
    parent: u64,
    script: &mut Script<'_>,
    queue: &mut VecDeque<(u64, u64)>,
) -> usize {
    let ino = attr.ino.0;
    assert_eq!(attr.kind, FileType::Directory);
    assert_eq!(fs.open_file(ino, libc::O_RDONLY), Err(Errno::EISDIR));
    assert_eq!(fs.opendir(ino, libc::O_RDONLY), Ok(()));
    assert_eq!(fs.opendir(ino, libc::O_WRONLY), Err(Errno::EROFS));
    assert_eq!(fs.read(ino, 0, 10), Err(Errno::EISDIR));

    let full = fs
        .readdir(ino, 0, usize::MAX)
        .expect("readdir of a directory");
    assert!(full.len() >= 2);
    assert_eq!(
        (full[0].name.as_slice(), full[0].attr.ino.0),
        (&b"."[..], ino)
    );
    assert_eq!(
        (full[1].name.as_slice(), full[1].attr.ino.0),
        (&b".."[..], parent)
    );
    for (i, e) in full.iter().enumerate() {
        assert_eq!(e.next, i as u64 + 1, "offsets count entries");
    }
    // Any offset gives the same tail (the kernel continues from `next`).
    for _ in 0..3 {
        let k = script.around(full.len() as u64);
        let tail = fs.readdir(ino, k, usize::MAX).unwrap();
        let want: &[DirEntry] = full.get(k.min(full.len() as u64) as usize..).unwrap_or(&[]);
        assert_eq!(tail, want, "readdir at offset {k}");
    }

    // The children are the directory's entries, the first of each name,
    // in stored order.
    let Node::Dir(dir) = image
        .node((ino - 1) as usize)
        .expect("inode = record offset + 1")
    else {
        panic!("inode {ino} is a directory in the index, not in the image");
    };
    let mut names = HashSet::new();
    let want: Vec<Node<'_>> = dir
        .entries()
        .map(|e| e.expect("a verified image reads"))
        .filter(|e| names.insert(e.name()))
        .collect();
    let children = &full[2..];
    assert_eq!(children.len(), want.len());
    let mut subdirs = 0;
    for (child, node) in children.iter().zip(&want) {
        assert_eq!(child.name, node.name());
        assert_eq!(child.attr.ino.0, node.id() as u64 + 1);
        assert_eq!(child.attr.kind == FileType::Directory, node.is_dir());
        assert_eq!(fs.lookup(ino, &child.name), Ok(child.attr));
        assert_eq!(fs.getattr(child.attr.ino.0), Ok(child.attr));
        assert_eq!(fs.access(child.attr.ino.0, libc::R_OK), Ok(()));
        assert_eq!(fs.access(child.attr.ino.0, libc::W_OK), Err(Errno::EROFS));
        match node {
            Node::Dir(_) => {
                subdirs += 1;
                queue.push_back((child.attr.ino.0, ino));
            }
            Node::File(f) => check_file(fs, &child.attr, f.data(), script),
        }
    }
    assert_eq!(attr.nlink, 2 + subdirs);
    // A name no child has: a negative entry.
    let mut missing = want.first().map_or(b"x".to_vec(), |n| n.name().to_vec());
    missing.push(b'~');
    if !want.iter().any(|n| n.name() == missing) {
        assert_eq!(fs.lookup(ino, &missing).map(|a| a.ino.0), Ok(0));
    }
    children.len()
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(k % 32).min(rest.len());
    let (script, bytes) = rest.split_at(k);
    let mut script = Script {
        bytes: script,
        pos: 0,
    };
    let path = scratch().join("image.img");
    fs::write(&path, bytes).unwrap();

    let n = data.len();
    let _limits = ALLOC.limit((1 << 20) + 128 * n, (32 << 20) + 1024 * n);
    let opts = MountOptions {
        ignore_checksum: script.byte() & 1 == 0,
        readahead_mib: 0,
        ..MountOptions::default()
    };
    let opened = DirectFs::open(&path, &opts);
    // The mount is refused exactly when the image is not one or has a
    // finding other than the harmless ones.
    let Ok(image) = Image::parse(bytes) else {
        assert!(
            matches!(opened, Err(MountError::NotRomfs { .. })),
            "{:?}",
            opened.err()
        );
        return;
    };
    let mut fatal = false;
    let mut warnings = 0;
    image.verify(|f| {
        if harmless(&f.kind, opts.ignore_checksum) {
            warnings += 1;
        } else {
            fatal = true;
        }
    });
    let (fs, found) = match opened {
        Ok(ok) => ok,
        Err(e) => {
            assert!(fatal, "a mountable image was refused: {e}");
            return;
        }
    };
    assert!(!fatal, "a corrupt image was mounted");
    assert_eq!(found.len(), warnings);

    let root = fs.getattr(1).expect("the root is inode 1");
    let (blocks, nodes) = fs.statfs();
    assert!(blocks * 512 >= image.len() as u64 && blocks * 512 < image.len() as u64 + 512);
    for ino in [0, u64::MAX, image.len() as u64 + 1] {
        assert_eq!(fs.getattr(ino), Err(Errno::ENOENT));
        assert_eq!(fs.read(ino, 0, 1), Err(Errno::ENOENT));
        assert_eq!(fs.lookup(ino, b"a").err(), Some(Errno::ENOENT));
    }
    // Breadth first over the whole tree, within a budget.
    let mut queue = VecDeque::from([(1u64, 1u64)]);
    let mut visited = 1u64;
    let mut complete = true;
    while let Some((ino, parent)) = queue.pop_front() {
        if visited as usize > VISITED {
            complete = false;
            break;
        }
        let attr = if ino == 1 {
            root
        } else {
            fs.getattr(ino).unwrap()
        };
        visited += check_dir(&fs, &image, &attr, parent, &mut script, &mut queue) as u64;
    }
    if complete {
        assert_eq!(nodes, visited, "statfs counts every reachable node");
    }
});
