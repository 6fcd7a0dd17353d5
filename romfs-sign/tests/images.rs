//! Signing and verifying images: what `add_signature` keeps and changes,
//! that it matches the writer's own signed layout byte for byte, that
//! every single-byte change fails verification, and the errors.

use proptest::prelude::*;
use romfs_format::signature::{SIGNATURE_RECORD_LEN, SIGNED_MANIFEST_LEN};
use romfs_format::write::{MemoryTree, MetadataSpec, Options, SignatureSpec};
use romfs_format::{Checksum, Image, Node};
use romfs_sign::{
    add_signature, claims_for, inspect, sign, sign_image, verify, Claims, Error, SignatureState,
    SigningKey,
};
use sha2::{Digest, Sha256};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn claims(product: &str, generation: u32) -> Claims {
    Claims {
        product: product.into(),
        generation,
    }
}

/// A tree of `files` files of the given sizes, some in a folder.
fn tree(sizes: &[usize], seed: u8) -> MemoryTree {
    let mut tree = MemoryTree::new();
    let lib = tree.add_dir(tree.root(), b"lib").unwrap();
    for (i, &len) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..len)
            .map(|k| (k as u32 * 31 + i as u32 * 7 + u32::from(seed)) as u8)
            .collect();
        let parent = if i % 2 == 0 { tree.root() } else { lib };
        tree.add_file(parent, format!("f{i}.bin").as_bytes(), data)
            .unwrap();
    }
    tree
}

fn options(metadata: MetadataSpec, signature: Option<SignatureSpec>) -> Options {
    Options {
        metadata: Some(metadata),
        signature,
        ..Options::default()
    }
}

/// An unsigned default-layout image of a few KiB.
fn unsigned(seed: u8) -> Vec<u8> {
    tree(&[300, 1200, 5000, 17, 0, 640], seed)
        .build(&Options::default())
        .unwrap()
}

/// (path, absolute offset of the data, data) of every file.
fn file_positions(bytes: &[u8]) -> Vec<(Vec<u8>, usize, Vec<u8>)> {
    let image = Image::parse(bytes).unwrap();
    let mut out = Vec::new();
    let mut stack = vec![(image.root(), Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for e in dir.entries() {
            let e = e.unwrap();
            let mut path = prefix.clone();
            path.extend_from_slice(e.name());
            match e {
                Node::Dir(d) => {
                    path.push(b'/');
                    stack.push((d, path));
                }
                Node::File(f) => {
                    let data = f.data();
                    let at = data.as_ptr() as usize - bytes.as_ptr() as usize;
                    out.push((path, at, data.to_vec()));
                }
            }
        }
    }
    out
}

#[test]
fn add_signature_appends_a_verifying_record_without_moving_files() {
    let plain = unsigned(1);
    let k = key(1);
    let signed = add_signature(&plain, &k, &claims("board-a", 3)).unwrap();
    let v = verify(&signed, &k.public_key()).unwrap();
    assert_eq!(v.key_id, k.key_id());
    assert_eq!((v.product.as_str(), v.generation), ("board-a", 3));
    assert_eq!(v.image_len as usize, signed.len());
    assert_eq!(v.signed_len as usize, signed.len() - SIGNATURE_RECORD_LEN);
    assert_eq!(
        v.digest,
        <[u8; 32]>::from(Sha256::digest(&signed[..v.signed_len as usize]))
    );
    assert_eq!(
        v.signed_manifest[..],
        signed[signed.len() - SIGNED_MANIFEST_LEN..]
    );

    // The files stay where they were; the image is intact and even-sized.
    assert_eq!(file_positions(&plain), file_positions(&signed));
    let image = Image::parse(&signed).unwrap();
    assert!(matches!(image.checksum(), Checksum::Valid(_)));
    assert_eq!(signed.len() % 2, 0);
    assert_eq!(image.verify(|f| panic!("{f}")).findings, 0);
    // Re-signing is refused by add_signature, and done by sign.
    assert!(matches!(
        add_signature(&signed, &k, &claims("board-a", 3)),
        Err(Error::AlreadySigned { .. })
    ));
    let mut again = signed.clone();
    let k2 = key(2);
    sign(&mut again, &k2).unwrap();
    assert_eq!(
        again[..v.signed_len as usize],
        signed[..v.signed_len as usize]
    );
    assert_eq!(
        verify(&again, &k2.public_key()).unwrap().key_id,
        k2.key_id()
    );
}

#[test]
fn add_signature_writes_what_the_writer_lays_out_for_signing() {
    // For trees whose header length keeps its width, signing an unsigned
    // image and sealing the writer's signed layout give the same bytes.
    let mut compared = 0;
    for n in 0..40usize {
        let sizes: Vec<usize> = (0..1 + n % 7).map(|i| (n * 977 + i * 131) % 9000).collect();
        let t = tree(&sizes, n as u8);
        let metadata = MetadataSpec {
            tool: Some("romfs test".into()),
            product: Some("board-a".into()),
            generation: Some(5),
            ..MetadataSpec::default()
        };
        let plain = t.build(&options(metadata.clone(), None)).unwrap();
        let spec = SignatureSpec {
            product: "board-a".into(),
            generation: 5,
        };
        let mut laid_out = t.build(&options(metadata, Some(spec))).unwrap();
        sign(&mut laid_out, &key(9)).unwrap();
        match add_signature(&plain, &key(9), &claims("board-a", 5)) {
            Ok(signed) => {
                assert_eq!(signed, laid_out, "tree {n}");
                compared += 1;
            }
            Err(Error::HeaderTooNarrow { .. }) => {
                assert_ne!(
                    Image::parse(&plain).unwrap().payload_offset(),
                    Image::parse(&laid_out).unwrap().payload_offset()
                );
            }
            Err(e) => panic!("tree {n}: {e}"),
        }
    }
    assert!(compared >= 30, "only {compared} trees compared");
}

#[test]
fn header_safe_images_stay_header_safe() {
    for w in [4u32, 8, 16, 32] {
        let plain = tree(&[100, 2000], 3)
            .build(&Options {
                header_write_size: Some(w),
                ..Options::default()
            })
            .unwrap();
        let signed = add_signature(&plain, &key(1), &claims("p", 1)).unwrap();
        let image = Image::parse(&signed).unwrap();
        assert!(image.is_header_safe(w as usize), "write size {w}");
        assert_eq!(
            image.payload_offset(),
            Image::parse(&plain).unwrap().payload_offset()
        );
        verify(&signed, &key(1).public_key()).unwrap();
    }
}

#[test]
fn images_that_cannot_take_a_signature_in_place_are_refused_clearly() {
    let k = key(1);
    let c = claims("p", 1);
    // A tiny image: its one-byte length cannot hold the signed length.
    let tiny = tree(&[10], 0).build(&Options::default()).unwrap();
    let err = add_signature(&tiny, &k, &c).unwrap_err();
    assert!(
        matches!(
            err,
            Error::HeaderTooNarrow {
                width: 1,
                needed: 2
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("romfs build --sign"), "{err}");
    // No checksum: mpremote layout, or --no-checksum.
    for opts in [
        Options::mpremote(),
        Options {
            checksum: false,
            ..Options::default()
        },
    ] {
        let plain = tree(&[3000], 0).build(&opts).unwrap();
        let err = add_signature(&plain, &k, &c).unwrap_err();
        assert!(matches!(err, Error::NoChecksum), "{err}");
        assert!(err.to_string().contains("romfs build --sign"), "{err}");
    }
    // A damaged image is not signed.
    let mut damaged = unsigned(1);
    damaged[40] ^= 0x10;
    let err = add_signature(&damaged, &k, &c).unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    // Not an image, or an image with bytes after its end.
    assert!(matches!(
        add_signature(b"hello", &k, &c),
        Err(Error::Image(_))
    ));
    let mut long = unsigned(1);
    long.extend_from_slice(&[0xff; 10]);
    let err = add_signature(&long, &k, &c).unwrap_err();
    assert!(
        matches!(err, Error::TrailingBytes { extra: 10, .. }),
        "{err}"
    );
    // A product a manifest cannot hold.
    let err = add_signature(&unsigned(1), &k, &claims(&"x".repeat(33), 1)).unwrap_err();
    assert!(matches!(err, Error::BadProduct { .. }), "{err}");
}

#[test]
fn claims_default_to_the_record_then_the_metadata_and_may_not_contradict_it() {
    let metadata = MetadataSpec {
        product: Some("board-a".into()),
        generation: Some(12),
        ..MetadataSpec::default()
    };
    let with_md = tree(&[3000, 400], 1)
        .build(&options(metadata, None))
        .unwrap();
    assert_eq!(
        claims_for(&with_md, None, None).unwrap(),
        claims("board-a", 12)
    );
    assert_eq!(
        claims_for(&with_md, Some("board-a"), Some(12)).unwrap(),
        claims("board-a", 12)
    );
    let err = claims_for(&with_md, Some("board-b"), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("says product \"board-a\", not \"board-b\""),
        "{err}"
    );
    let err = claims_for(&with_md, None, Some(13)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                field: "generation",
                ..
            }
        ),
        "{err}"
    );
    // And add_signature itself refuses to contradict the metadata.
    assert!(add_signature(&with_md, &key(1), &claims("board-a", 13)).is_err());

    let bare = unsigned(1);
    assert!(matches!(
        claims_for(&bare, None, Some(1)),
        Err(Error::NoProduct)
    ));
    assert!(matches!(
        claims_for(&bare, Some("p"), None),
        Err(Error::NoGeneration)
    ));
    // A laid-out or signed image: its record's claims, replaceable.
    let (signed, _) = sign_image(bare.clone(), &key(1), Some("p"), Some(4)).unwrap();
    assert_eq!(claims_for(&signed, None, None).unwrap(), claims("p", 4));
    let (resigned, v) = sign_image(signed.clone(), &key(2), None, Some(5)).unwrap();
    assert_eq!((v.product.as_str(), v.generation), ("p", 5));
    assert_eq!(resigned.len(), signed.len());
    verify(&resigned, &key(2).public_key()).unwrap();
}

#[test]
fn verify_says_what_is_wrong() {
    let k = key(1);
    let plain = unsigned(1);
    let signed = add_signature(&plain, &k, &claims("p", 1)).unwrap();
    let n = signed.len();
    let record = n - SIGNATURE_RECORD_LEN;
    let pk = k.public_key();

    assert!(matches!(verify(&plain, &pk), Err(Error::Unsigned)));
    // The rest of a flash partition after the image is not part of it.
    let mut partition = signed.clone();
    partition.extend_from_slice(&[0xff; 4096]);
    assert_eq!(verify(&partition, &pk).unwrap().image_len as usize, n);
    let err = verify(&signed, &key(2).public_key()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "signed by key {}, not by the given key {}",
            k.key_id(),
            key(2).key_id()
        )
    );
    let mut forged = signed.clone();
    forged[n - 1] ^= 1;
    let err = verify(&forged, &pk).unwrap_err();
    assert!(
        matches!(err, Error::BadSignature { offset, .. } if offset == record),
        "{err}"
    );
    let mut altered = signed.clone();
    altered[100] ^= 1;
    // Bytes of the checksummed region: the digest no longer matches.
    let err = verify(&altered, &pk).unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { signed_len } if signed_len == record),
        "{err}"
    );
    let mut bad_manifest = signed.clone();
    bad_manifest[record + 7] = b'X';
    let err = verify(&bad_manifest, &pk).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("signature record at byte {record}: ")),
        "{err}"
    );

    // The writer's layout before sealing.
    let laid_out = tree(&[3000], 1)
        .build(&options(
            MetadataSpec::default(),
            Some(SignatureSpec {
                product: "p".into(),
                generation: 1,
            }),
        ))
        .unwrap();
    assert!(matches!(
        verify(&laid_out, &pk),
        Err(Error::NotSealed { .. })
    ));
    assert!(matches!(
        inspect(&laid_out),
        Ok(SignatureState::NotSealed { .. })
    ));
}

#[test]
fn inspect_reports_the_state_without_a_key() {
    let k = key(1);
    let plain = unsigned(1);
    assert_eq!(inspect(&plain).unwrap(), SignatureState::Unsigned);
    let signed = add_signature(&plain, &k, &claims("p", 2)).unwrap();
    let SignatureState::Signed {
        offset,
        signed: m,
        digest_matches,
    } = inspect(&signed).unwrap()
    else {
        panic!("not signed")
    };
    assert!(digest_matches);
    assert_eq!(offset, signed.len() - SIGNATURE_RECORD_LEN);
    assert_eq!(m.manifest.key_id, k.key_id().0);
    let mut altered = signed.clone();
    altered[60] ^= 4;
    assert!(matches!(
        inspect(&altered).unwrap(),
        SignatureState::Signed {
            digest_matches: false,
            ..
        }
    ));
    let mut broken = signed.clone();
    broken[offset + 7 + 4] = 9; // manifest version
    assert!(matches!(
        inspect(&broken).unwrap(),
        SignatureState::Malformed { .. }
    ));
}

#[test]
fn every_single_byte_change_of_a_small_signed_image_fails() {
    let k = key(3);
    let plain = tree(&[150, 17, 0, 40], 2)
        .build(&Options::default())
        .unwrap();
    let signed = add_signature(&plain, &k, &claims("board", 9)).unwrap();
    let pk = k.public_key();
    for at in 0..signed.len() {
        // One bit, varying with the position (Ed25519 checks are slow in
        // debug builds: one change per byte).
        let flip = 1u8 << (at * 5 % 8);
        let mut bad = signed.clone();
        bad[at] ^= flip;
        assert!(
            verify(&bad, &pk).is_err(),
            "changing byte {at} (^{flip:#x}) of {} still verifies",
            signed.len()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn signed_images_verify_and_no_byte_can_change(
        sizes in prop::collection::vec(0usize..6000, 1..8),
        seed in any::<u8>(),
        generation in any::<u32>(),
        product in "[a-z0-9-]{0,32}",
        changes in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 8),
    ) {
        let k = key(seed);
        let plain = tree(&sizes, seed).build(&Options::default()).unwrap();
        let signed = match add_signature(&plain, &k, &claims(&product, generation)) {
            Ok(s) => s,
            Err(Error::HeaderTooNarrow { .. }) => {
                // Then the writer's own signed layout is the way.
                let spec = SignatureSpec { product: product.clone(), generation };
                let mut s = tree(&sizes, seed)
                    .build(&Options { signature: Some(spec), ..Options::default() })
                    .unwrap();
                sign(&mut s, &k).unwrap();
                s
            }
            Err(e) => panic!("{e}"),
        };
        let v = verify(&signed, &k.public_key()).unwrap();
        prop_assert_eq!(v.generation, generation);
        prop_assert_eq!(v.product, product);
        for (index, xor) in changes {
            let at = index.index(signed.len());
            let mut bad = signed.clone();
            bad[at] ^= xor;
            prop_assert!(verify(&bad, &k.public_key()).is_err(), "byte {} ^ {:#x}", at, xor);
        }
    }
}
