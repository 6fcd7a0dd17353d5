//! Hostile input: hand-made corrupt images, deep nesting, and every
//! single-byte corruption of a sample image.

mod common;

use romfs_format::name::NameProblem;
use romfs_format::write::{MemoryTree, Options};
use romfs_format::{Checksum, ErrorKind, FindingKind, Image, Node};

/// Wrap records into an image with an even total size.
fn image(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xd2, 0xcd, 0x31];
    let mut len = [0u8; 8];
    let n = romfs_format::varuint::encode(payload.len() as u64, &mut len);
    if (3 + n + payload.len()) % 2 == 1 {
        out.push(0x80);
    }
    out.extend_from_slice(&len[..n]);
    out.extend_from_slice(payload);
    out
}

fn findings(bytes: &[u8]) -> Vec<FindingKind> {
    let img = Image::parse(bytes).unwrap();
    let mut found = Vec::new();
    img.verify(|f| found.push(f.kind));
    found
}

#[test]
fn parse_checks_header_and_length() {
    assert_eq!(Image::parse(&[]).unwrap_err().kind, ErrorKind::TooShort);
    assert_eq!(
        Image::parse(b"RM1\0").unwrap_err().kind,
        ErrorKind::BadMagic
    );
    assert!(Image::parse(&[0xd2, 0xcd, 0x31, 0x00]).unwrap().is_empty());
    let err = Image::parse(&[0xd2, 0xcd, 0x31, 0x05, 1, 2]).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::ImagePastEnd {
                declared: 9,
                available: 6
            }
        ),
        "{err}"
    );
    assert_eq!(err.offset, 3);
    // Length varuint that never ends, or overflows 32 bits.
    assert!(Image::parse(&[0xd2, 0xcd, 0x31, 0x81, 0x81]).is_err());
    assert_eq!(
        Image::parse(&[0xd2, 0xcd, 0x31, 0x9f, 0xff, 0xff, 0xff, 0x7f])
            .unwrap_err()
            .kind,
        ErrorKind::VaruintOverflow
    );
    // Trailing bytes after the image (a larger flash partition) are fine.
    let mut padded = image(&[5, 4, 1, b'f', 2, 0]);
    padded.extend_from_slice(&[0xff; 100]);
    let img = Image::parse(&padded).unwrap();
    assert_eq!(img.len(), padded.len() - 100);
    assert!(img
        .lookup(b"f")
        .unwrap()
        .unwrap()
        .as_file()
        .unwrap()
        .is_empty());
}

#[test]
fn verify_flags_name_running_past_record() {
    // File record of 3 payload bytes whose name claims 9.
    let bytes = image(&[5, 3, 9, b'a', b'b']);
    assert!(findings(&bytes).contains(&FindingKind::Structure(ErrorKind::NameLengthPastRecord)));
    let img = Image::parse(&bytes).unwrap();
    assert_eq!(
        img.lookup(b"ab").unwrap_err().kind,
        ErrorKind::NameLengthPastRecord
    );
    assert!(img.root().entries().next().unwrap().is_err());
}

#[test]
fn verify_flags_indirect_pointer_outside_image() {
    // File "f" whose indirect data claims 4 bytes at payload offset 200.
    let bytes = image(&[5, 7, 1, b'f', 3, 3, 4, 0x81, 0x48]);
    assert!(findings(&bytes).contains(&FindingKind::Structure(ErrorKind::IndirectOutOfRange)));
    let img = Image::parse(&bytes).unwrap();
    let err = img.lookup(b"f").unwrap_err();
    assert_eq!(
        (err.kind, err.offset),
        (ErrorKind::IndirectOutOfRange, img.payload_offset() + 4)
    );
    // A pointer inside the payload works.
    let ok = image(&[5, 6, 1, b'f', 3, 2, 2, 0, 0]);
    let img = Image::parse(&ok).unwrap();
    assert_eq!(
        img.lookup(b"f").unwrap().unwrap().as_file().unwrap().data(),
        &[5, 6]
    );
}

#[test]
fn verify_flags_each_kind_of_damage() {
    // Record escaping its parent: directory of length 2 holding a 3-byte file.
    let escaping = image(&[4, 4, 1, b'd', 5, 3, 1, b'f']);
    assert!(findings(&escaping)
        .iter()
        .any(|f| matches!(f, FindingKind::Structure(ErrorKind::RecordPastParent))));
    let bad_names = image(&[
        5, 3, 0, 2, 0, 5, 4, 1, b'.', 2, 0, 5, 5, 2, b'a', b'/', 2, 0, 5, 5, 2, b'a', 0, 2, 0,
    ]);
    let f = findings(&bad_names);
    for want in [
        FindingKind::Name(NameProblem::Empty),
        FindingKind::Name(NameProblem::Dot),
        FindingKind::Name(NameProblem::Slash),
        FindingKind::Name(NameProblem::Nul),
    ] {
        assert!(f.contains(&want), "{want:?} not in {f:?}");
    }
    let dup = image(&[5, 4, 1, b'a', 2, 0, 4, 2, 1, b'a']);
    assert_eq!(findings(&dup), vec![FindingKind::DuplicateName]);
    let no_data = image(&[5, 2, 1, b'a']);
    assert_eq!(
        findings(&no_data),
        vec![FindingKind::Structure(ErrorKind::FileWithoutData)]
    );
    let unused = image(&[0, 5, 2, 1, b'a']);
    assert_eq!(findings(&unused), vec![FindingKind::UnusedRecord]);
    let odd = [0xd2, 0xcd, 0x31, 0x02, 1, 0, 0];
    assert_eq!(findings(&odd[..6]), vec![]);
    assert_eq!(
        findings(&[0xd2, 0xcd, 0x31, 0x02, 0x87, 0x87]),
        vec![FindingKind::Structure(ErrorKind::VaruintTruncated)]
    );
    let mut odd_img = vec![0xd2, 0xcd, 0x31, 0x04, 5, 2, 1, b'x'];
    odd_img[3] = 3;
    odd_img.truncate(7);
    assert!(findings(&odd_img).contains(&FindingKind::OddImageSize));
}

#[test]
fn checksum_mismatch_is_found() {
    let tree = common::sample_tree();
    let mut bytes = tree.build(&Options::default()).unwrap();
    let img = Image::parse(&bytes).unwrap();
    let file = img.lookup(b"main.py").unwrap().unwrap().as_file().unwrap();
    let at = file.data_offset();
    bytes[at] ^= 0x20;
    let img = Image::parse(&bytes).unwrap();
    assert!(matches!(img.checksum(), Checksum::Mismatch { .. }));
    let mut found = Vec::new();
    img.verify(|f| found.push(f));
    assert_eq!(found.len(), 1);
    assert!(matches!(
        found[0].kind,
        FindingKind::ChecksumMismatch { .. }
    ));
    assert_eq!(found[0].offset, bytes.len() - 4);
}

#[test]
fn hundred_thousand_deep_nesting_is_safe() {
    const DEPTH: usize = 100_000;
    let mut tree = MemoryTree::new();
    let mut parent = tree.root();
    for _ in 0..DEPTH {
        parent = tree.add_dir(parent, b"d").unwrap();
    }
    tree.add_file(parent, b"leaf", b"bottom".to_vec()).unwrap();
    let bytes = tree.build(&Options::default()).unwrap();
    let img = Image::parse(&bytes).unwrap();
    let summary = img.verify(|f| panic!("{f}"));
    assert_eq!(
        (summary.dirs, summary.files, summary.max_depth),
        (DEPTH, 1, DEPTH)
    );
    let mut path = b"d/".repeat(DEPTH);
    path.extend_from_slice(b"leaf");
    assert_eq!(
        img.lookup(&path)
            .unwrap()
            .unwrap()
            .as_file()
            .unwrap()
            .data(),
        b"bottom"
    );
    // Walk iteratively down to the leaf.
    let mut dir = img.root();
    let mut depth = 0;
    loop {
        match dir.entries().next().unwrap().unwrap() {
            Node::Dir(d) => {
                dir = d;
                depth += 1;
            }
            Node::File(f) => {
                assert_eq!(f.data(), b"bottom");
                break;
            }
        }
    }
    assert_eq!(depth, DEPTH);
}

/// Walk everything, touching all data; returns a comparable description or
/// the first error. Must never panic.
fn describe(bytes: &[u8]) -> Result<Vec<common::Entry>, romfs_format::Error> {
    fn walk(
        dir: romfs_format::Dir<'_>,
        budget: &mut usize,
    ) -> Result<Vec<common::Entry>, romfs_format::Error> {
        let mut out = Vec::new();
        for e in dir.entries() {
            *budget = budget.saturating_sub(1);
            if *budget == 0 {
                break;
            }
            out.push(match e? {
                Node::Dir(d) => common::Entry::Dir(d.name().to_vec(), walk(d, budget)?),
                Node::File(f) => common::Entry::File(f.name().to_vec(), f.data().to_vec()),
            });
        }
        out.sort();
        Ok(out)
    }
    let img = Image::parse(bytes)?;
    let _ = img.metadata();
    let _ = img.checksum();
    for p in [
        &b"main.py"[..],
        b"lib/helper.py",
        b"/assets/a.bin",
        b"assets/b.bin",
        b"empty",
        b"x/y",
    ] {
        let _ = img.lookup(p);
    }
    walk(img.root(), &mut 10_000)
}

#[test]
fn every_single_byte_corruption_is_caught_or_harmless() {
    let tree = common::sample_tree();
    let original = tree.build(&Options::default()).unwrap();
    let expected = describe(&original).unwrap();
    let (mut caught, mut harmless) = (0, 0);
    for at in 0..original.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bytes = original.clone();
            bytes[at] ^= flip;
            let read = describe(&bytes);
            let flagged = match Image::parse(&bytes) {
                Err(_) => true,
                Ok(img) => !img.verify(|_| {}).is_clean(),
            };
            if flagged {
                caught += 1;
            } else {
                assert_eq!(
                    read.as_ref().ok(),
                    Some(&expected),
                    "byte {at} ^ {flip:#x} undetected and harmful"
                );
                harmless += 1;
            }
        }
    }
    assert!(
        caught > harmless * 10,
        "caught {caught}, harmless {harmless}"
    );
}

#[test]
fn corruptions_of_an_mpremote_image_never_panic() {
    let tree = common::sample_tree();
    let original = tree.build(&Options::mpremote()).unwrap();
    for at in 0..original.len() {
        for value in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut bytes = original.clone();
            bytes[at] = value;
            let _ = describe(&bytes);
            if let Ok(img) = Image::parse(&bytes) {
                img.verify(|_| {});
            }
            let _ = describe(&bytes[..at]);
        }
    }
}

#[test]
fn not_a_rom_image_is_one_error_said_once() {
    let error = Image::parse(b"hello\n").unwrap_err();
    let in_file = error.in_file("notes.txt");
    assert_eq!(in_file.error, error);
    let text = in_file.to_string();
    assert_eq!(
        text,
        "notes.txt: not a ROMFS image (expected header d2 cd 31) at offset 0x0"
    );
    assert!(std::error::Error::source(&in_file).is_none());
    // The streaming reader says it in the same words.
    assert_eq!(
        romfs_format::stream::StreamError::NotAnImage.to_string(),
        ErrorKind::BadMagic.to_string()
    );
}
