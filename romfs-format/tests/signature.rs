//! Signed images as the writer lays them out, and the streaming scanner
//! agreeing with the reader on every image and every chunking.

use romfs_format::signature::{
    ManifestError, SIGNATURE_RECORD_HEAD, SIGNATURE_RECORD_LEN, SIGNED_MANIFEST_LEN,
};
use romfs_format::stream::Scanner;
use romfs_format::write::{MemoryTree, Options, SignatureSpec, WriteError};
use romfs_format::{Checksum, FindingKind, Image, Reader};
use romfs_testkit::Rng;

/// A random tree of up to `files` files in a few directories.
fn random_tree(rng: &mut Rng, files: usize) -> MemoryTree {
    let mut tree = MemoryTree::new();
    let mut dirs = vec![tree.root()];
    for i in 0..rng.below(files as u64 + 1) {
        let parent = dirs[rng.below(dirs.len() as u64) as usize];
        if rng.below(5) == 0 {
            dirs.push(tree.add_dir(parent, format!("d{i}").as_bytes()).unwrap());
        } else {
            let len = rng.below(3000) as usize;
            let data = rng.bytes(len);
            tree.add_file(parent, format!("f{i}.mpy").as_bytes(), data)
                .unwrap();
        }
    }
    tree
}

fn signed(product: &str, generation: u32) -> Options {
    Options {
        signature: Some(SignatureSpec {
            product: product.into(),
            generation,
        }),
        ..Options::default()
    }
}

#[test]
fn signed_images_end_with_checksum_then_signature() {
    let mut rng = Rng(11);
    for round in 0..200 {
        let tree = random_tree(&mut rng, 12);
        let bytes = tree.build(&signed("board-a", round)).unwrap();
        let image = Image::parse(&bytes).unwrap();
        assert_eq!(image.len() % 2, 0, "even size");
        let summary = image.verify(|f| panic!("round {round}: {f}"));
        assert!(matches!(summary.checksum, Checksum::Valid(_)));
        let manifest = image.signature().expect("a signature record").unwrap();
        let m = manifest.manifest;
        assert_eq!(m.product(), b"board-a");
        assert_eq!(m.generation, round);
        assert_eq!(m.image_len as usize, bytes.len());
        assert_eq!(m.signed_len as usize, bytes.len() - SIGNATURE_RECORD_LEN);
        let record = &bytes[m.signed_len as usize..];
        assert_eq!(record[..7], SIGNATURE_RECORD_HEAD);
        assert_eq!(record.len() - 7, SIGNED_MANIFEST_LEN);
        // The checksum covers everything before its value, which ends
        // right where the signed part ends.
        let (_, stored) = image.checksum_record().unwrap();
        assert_eq!(image.identity(), stored);
        assert_eq!(
            stored,
            romfs_format::crc32::checksum(&bytes[..m.signed_len as usize - 4])
        );
        // Unsigned, the same tree gives the same bytes up to the trailer.
        let plain = tree.build(&Options::default()).unwrap();
        assert!(Image::parse(&plain).unwrap().signature().is_none());
    }
}

#[test]
fn a_signer_fills_the_record_in_place() {
    let tree = random_tree(&mut Rng(3), 8);
    let mut bytes = tree.build(&signed("p", 1)).unwrap();
    let before = Image::parse(&bytes).unwrap().identity();
    let n = bytes.len();
    // What a signer does: digest, key id and signature into the last bytes.
    bytes[n - 64 - 8 - 32..].iter_mut().for_each(|b| *b = 0x5a);
    let image = Image::parse(&bytes).unwrap();
    assert_eq!(
        image.identity(),
        before,
        "the checksummed part is untouched"
    );
    assert!(image.verify(|f| panic!("{f}")).is_clean());
    let m = image.signature().unwrap().unwrap();
    assert_eq!(m.manifest.digest, [0x5a; 32]);
    assert_eq!(m.signature, [0x5a; 64]);
}

#[test]
fn bad_signature_records_are_findings() {
    let tree = random_tree(&mut Rng(5), 6);
    let bytes = tree.build(&signed("p", 1)).unwrap();
    let n = bytes.len();
    let kinds = |b: &[u8]| {
        let mut k = Vec::new();
        Image::parse(b).unwrap().verify(|f| k.push(f.kind));
        k
    };
    // A broken manifest magic.
    let mut bad = bytes.clone();
    bad[n - SIGNED_MANIFEST_LEN] ^= 1;
    assert_eq!(
        kinds(&bad),
        vec![FindingKind::BadSignature(ManifestError::Magic)]
    );
    // A manifest that claims another extent.
    let mut bad = bytes.clone();
    bad[n - SIGNED_MANIFEST_LEN + 8] ^= 2; // image length
    bad[n - SIGNED_MANIFEST_LEN + 12] ^= 2; // signed length, kept consistent
    assert!(matches!(
        kinds(&bad)[..],
        [FindingKind::BadSignature(ManifestError::Lengths { .. })]
    ));
    // A signature record that is not last: append a padding record after it.
    let mut moved = bytes[..n].to_vec();
    moved.extend_from_slice(&[1, 0]);
    let len_at = 3; // a one- or two-byte length varuint follows the magic
    let image = Image::parse(&bytes).unwrap();
    let payload = image.payload().len() + 2;
    let mut head = vec![0xd2, 0xcd, 0x31];
    let mut v = [0u8; 8];
    let w = romfs_format::varuint::encode_padded(
        payload as u64,
        image.payload_offset() - len_at,
        &mut v,
    );
    head.extend_from_slice(&v[..w]);
    moved.splice(..image.payload_offset(), head);
    let k = kinds(&moved);
    assert!(k.contains(&FindingKind::MisplacedSignature), "{k:?}");
    assert!(k.contains(&FindingKind::MisplacedChecksum), "{k:?}");
}

#[test]
fn the_writer_refuses_signatures_it_cannot_lay_out() {
    let tree = random_tree(&mut Rng(7), 3);
    let mut opts = signed("p", 1);
    opts.checksum = false;
    assert_eq!(tree.build(&opts), Err(WriteError::SignatureNeedsChecksum));
    let mut opts = signed("p", 1);
    opts.layout = romfs_format::write::Layout::Mpremote;
    assert_eq!(tree.build(&opts), Err(WriteError::SignatureNeedsChecksum));
    let long = "x".repeat(33);
    assert_eq!(
        tree.build(&signed(&long, 1)),
        Err(WriteError::BadProduct { product: long })
    );
}

/// What the scanner saw, fed `bytes` in random pieces.
fn scan(bytes: &[u8], rng: &mut Rng) -> Scanner {
    let mut s = Scanner::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = (1 + rng.below(300) as usize).min(bytes.len() - at);
        let mut piece = &bytes[at..at + n];
        while !piece.is_empty() {
            match s.feed(piece) {
                Ok(k) => piece = &piece[k..],
                Err(_) => return s,
            }
        }
        at += n;
    }
    s
}

#[test]
fn the_scanner_agrees_with_the_reader() {
    let mut rng = Rng(17);
    for round in 0..400 {
        let tree = random_tree(&mut rng, 10);
        let opts = match round % 3 {
            0 => Options::default(),
            1 => signed("q", round),
            _ => Options::mpremote(),
        };
        let mut bytes = tree.build(&opts).unwrap();
        // Every other image damaged: a byte changed, or cut short.
        if round % 2 == 1 && !bytes.is_empty() {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes.truncate(at.max(4)),
                _ => bytes[at] ^= 1 << rng.below(8),
            }
        }
        let s = scan(&bytes, &mut rng);
        let Ok(image) = Image::parse(&bytes) else {
            assert!(!s.is_complete(), "round {round}");
            continue;
        };
        assert!(s.is_complete(), "round {round}");
        let mut reader: Reader<&[u8]> = image.reader();
        let checksum = reader.checksum_record().unwrap();
        let seen = s
            .checksum_record()
            .map(|r| (r.header.offset, r.checksum().unwrap()));
        assert_eq!(seen, checksum, "round {round}");
        let signature = reader.signature_record().unwrap().map(|r| r.offset);
        assert_eq!(
            s.signature_record().map(|r| r.header.offset),
            signature,
            "round {round}"
        );
    }
}

/// `Reader::trailer`, the one-pass lookup `verify` uses, finds exactly what
/// `checksum_record` and `signature_record` find, on every layout and on
/// damaged images.
#[test]
fn the_trailer_agrees_with_the_record_lookups() {
    let mut rng = Rng(17);
    for round in 0..300 {
        let tree = random_tree(&mut rng, 10);
        let options = match round % 3 {
            0 => signed("p", round),
            1 => Options::default(),
            _ => Options::mpremote(),
        };
        let mut bytes = tree.build(&options).unwrap();
        if round % 2 == 1 {
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        let Ok(image) = Image::parse(&bytes) else {
            continue;
        };
        let mut reader = image.reader();
        let trailer = reader.trailer().unwrap();
        assert_eq!(
            trailer.checksum.map(|(rec, crc)| (rec.offset, crc)),
            reader.checksum_record().unwrap(),
            "round {round}"
        );
        assert_eq!(
            trailer.signature,
            reader.signature_record().unwrap(),
            "round {round}"
        );
        assert_eq!(
            reader.checksum_of(&trailer).unwrap(),
            image.checksum(),
            "round {round}"
        );
    }
}
