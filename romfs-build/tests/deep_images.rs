//! Images nested deeper than any host tree: inspection refuses them with
//! an error naming the entry, in memory proportional to the image (before
//! the path bound, a 600 KB chain of directories needed tens of GB).

use std::fs;

use romfs_build::inspect::{self, ImageFile, MAX_PATH_LEN};
use romfs_build::ReadError;
use romfs_testkit::alloc_limit::LimitedAlloc;

#[global_allocator]
static ALLOC: LimitedAlloc = LimitedAlloc::new();

fn varuint(mut n: usize) -> Vec<u8> {
    let mut out = vec![(n & 0x7f) as u8];
    n >>= 7;
    while n > 0 {
        out.push(0x80 | (n & 0x7f) as u8);
        n >>= 7;
    }
    out.reverse();
    out
}

/// An image holding a chain of `depth` directories named `name`, with one
/// file at the bottom.
fn chain(depth: usize, name: &[u8]) -> Vec<u8> {
    // Built inside out, back to front (each level's header goes before
    // the level below), so the cost stays linear.
    let mut rev: Vec<u8> = vec![0, 2, b'f', 1, 4, 5];
    for _ in 0..depth {
        let payload_len = varuint(name.len()).len() + name.len() + rev.len();
        rev.extend(name.iter().rev());
        rev.extend(varuint(name.len()).iter().rev());
        rev.extend(varuint(payload_len).iter().rev());
        rev.push(4);
    }
    rev.reverse();
    let mut header = vec![0xd2, 0xcd, 0x31];
    if (3 + varuint(rev.len()).len() + rev.len()) % 2 == 1 {
        header.push(0x80);
    }
    [header, varuint(rev.len()), rev].concat()
}

#[test]
fn a_chain_deeper_than_path_max_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.img");
    let bytes = chain(100_000, b"d");
    fs::write(&path, &bytes).unwrap();
    let file = ImageFile::open(&path).unwrap();
    let _limits = ALLOC.limit(64 << 20, 64 << 20);
    // The format's own checks have nothing against depth.
    assert!(inspect::verify(&file).is_clean());
    // A path of MAX_PATH_LEN + 1 bytes: "d/d/.../d" at depth 2049.
    let want_depth = MAX_PATH_LEN / 2 + 1;
    for result in [
        inspect::walk(&file).map(|_| ()),
        inspect::info(&file).map(|_| ()),
        inspect::extract(&file, &dir.path().join("out"), false).map(|_| ()),
    ] {
        match result {
            Err(ReadError::TooDeep { depth, offset, .. }) => {
                assert_eq!(depth, want_depth);
                assert!(offset > 0 && offset < bytes.len());
            }
            other => panic!("expected TooDeep, got {other:?}"),
        }
    }
    assert!(
        !dir.path().join("out").exists(),
        "extract wrote before refusing"
    );
    let e = inspect::walk(&file).unwrap_err().to_string();
    assert!(
        e.contains("deep.img: offset 0x") && e.contains("4096 bytes"),
        "{e}"
    );
    // Listing one directory stays possible.
    assert_eq!(inspect::list(&file, "d/d/d").unwrap().len(), 1);
}

#[test]
fn a_chain_up_to_path_max_is_listed_and_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.img");
    // "d/d/.../d/f": 2 * 2047 + 1 = 4095 bytes for the file.
    fs::write(&path, chain(2047, b"d")).unwrap();
    let file = ImageFile::open(&path).unwrap();
    let walk = inspect::walk(&file).unwrap();
    assert_eq!(walk.len(), 2048);
    assert_eq!(walk.last().unwrap().entry.path.len(), 4095);
    let info = inspect::info(&file).unwrap();
    assert_eq!((info.dirs, info.files, info.max_depth), (2047, 1, 2047));
    // Extraction gets as deep as the host allows, then names the path.
    let out = dir.path().join("out");
    match inspect::extract(&file, &out, false) {
        Ok((dirs, files)) => assert_eq!((dirs, files), (2047, 1)),
        Err(ReadError::Write { path, error }) => {
            assert_eq!(error.raw_os_error(), Some(36), "{error}"); // ENAMETOOLONG
            assert!(path.starts_with(&out));
        }
        Err(e) => panic!("{e}"),
    }
}
