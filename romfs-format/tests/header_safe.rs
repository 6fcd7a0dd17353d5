//! Header-safe images (`Options::header_write_size`): the first flash write
//! unit is constant, so an interrupted program of it can only break the
//! magic or leave garbage that MicroPython's decoder shifts out.

mod common;

use common::{read_back, sample_tree};
use romfs_format::write::{header_length_width, Options, WriteError, MAX_HEADER_WRITE_SIZE};
use romfs_format::{header_is_write_safe, Image, HEADER_SAFE_DIGITS};
use romfs_testkit::micropython_mount;

fn build(w: Option<u32>) -> Vec<u8> {
    sample_tree()
        .build(&Options {
            header_write_size: w,
            ..Options::default()
        })
        .unwrap()
}

#[test]
fn first_write_unit_is_constant_and_the_image_reads_the_same() {
    let plain = build(None);
    let plain_image = Image::parse(&plain).unwrap();
    let expected = read_back(&plain_image);
    for w in 1..=MAX_HEADER_WRITE_SIZE {
        let bytes = build(Some(w));
        let image = Image::parse(&bytes).unwrap();
        assert!(image.verify(|f| panic!("W={w}: {f}")).is_clean());
        assert_eq!(read_back(&image), expected, "W={w}");
        assert!(image.is_header_safe(w as usize), "W={w}");
        assert_eq!(bytes.len() % 2, 0);
        let w = w as usize;
        if w <= 3 {
            assert_eq!(bytes, plain, "W={w}: nothing to pad");
            continue;
        }
        assert_eq!(&bytes[..3], &[0xd2, 0xcd, 0x31]);
        assert!(bytes[3..w].iter().all(|&b| b == 0x80), "W={w}");
        // The length's digits fill at least HEADER_SAFE_DIGITS bytes of the
        // next unit(s), all continuation bytes but the last.
        let p = image.payload_offset();
        assert_eq!(p, 3 + header_length_width(w as u32));
        assert_eq!(p, w + HEADER_SAFE_DIGITS);
        assert!(bytes[w..p - 1].iter().all(|&b| b & 0x80 != 0));
        assert_eq!(bytes[p - 1] & 0x80, 0);
        // Same payload length as declared; the plain image is not header-safe.
        assert!(!plain_image.is_header_safe(w), "W={w}");
    }
}

#[test]
fn header_write_size_is_checked() {
    let tree = sample_tree();
    for w in [0, MAX_HEADER_WRITE_SIZE + 1, 4096] {
        let opts = Options {
            header_write_size: Some(w),
            ..Options::default()
        };
        assert_eq!(
            tree.build(&opts).unwrap_err(),
            WriteError::BadHeaderWriteSize { size: w }
        );
    }
    let mpremote = Options {
        header_write_size: Some(4),
        ..Options::mpremote()
    };
    assert_eq!(
        tree.build(&mpremote).unwrap_err(),
        WriteError::BadHeaderWriteSize { size: 4 }
    );
}

#[test]
fn header_safety_check_rejects_near_misses() {
    let bytes = build(Some(8));
    assert!(header_is_write_safe(&bytes, 8));
    assert!(
        header_is_write_safe(&bytes, 4),
        "a smaller unit is covered too"
    );
    assert!(!header_is_write_safe(&bytes, 16), "a larger unit is not");
    assert!(!header_is_write_safe(&bytes[..12], 8), "length cut short");
    let mut bad = bytes.clone();
    bad[5] = 0x81;
    assert!(!header_is_write_safe(&bad, 8), "non-constant first unit");
    let mut bad = bytes.clone();
    bad[0] = 0x52;
    assert!(!header_is_write_safe(&bad, 8));
    assert!(!header_is_write_safe(&bad, 2));
    assert!(header_is_write_safe(&[0xd2, 0xcd, 0x31, 0x00], 3));
    assert!(!header_is_write_safe(&[0xd2, 0xcd, 0x31, 0x00], 4));
}

/// Every partial program of the first write unit over erased flash: each
/// byte ends as `0xff` with some of the bits it had to clear cleared.
fn partial_states(target: &[u8], mut each: impl FnMut(&[u8])) {
    // Exhaustive over the first unit's non-magic bytes for small units,
    // random subsets otherwise; the magic always complete (else ENODEV).
    let free: Vec<(usize, u8)> = (3..target.len())
        .flat_map(|i| {
            (0..8)
                .filter(move |b| target[i] & (1 << b) == 0)
                .map(move |b| (i, b))
        })
        .collect();
    let mut state = target.to_vec();
    let apply = |missing: &dyn Fn(usize) -> bool, state: &mut Vec<u8>| {
        state.copy_from_slice(target);
        for (k, &(i, b)) in free.iter().enumerate() {
            if missing(k) {
                state[i] |= 1 << b; // this bit did not land
            }
        }
    };
    if free.len() <= 16 {
        for mask in 0..1u64 << free.len() {
            apply(&|k| mask & (1 << k) != 0, &mut state);
            each(&state);
        }
    } else {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5_000 {
            let bits: Vec<bool> = free.iter().map(|_| next() & 1 == 1).collect();
            apply(&|k| bits[k], &mut state);
            each(&state);
            // Everything but one bit landed.
            let one = (next() % free.len() as u64) as usize;
            apply(&|k| k == one, &mut state);
            each(&state);
        }
    }
}

/// With a header-safe image, MicroPython (32- or 64-bit, flash mapped
/// anywhere) sees either no image or exactly the new one, whatever part of
/// the first unit landed. Without the padding it can be fooled, and with
/// only 4 digits after the first unit a 32-bit device can be too (its
/// decoder keeps the low 32 bits and the end pointer wraps).
#[test]
fn micropython_never_sees_a_wrong_length() {
    let bases = [0x0800_0000u64, 0x1000_0000, 0x3f40_0000, 0x9000_0000];
    let count_wrong = |bytes: &[u8], w: usize| -> usize {
        let image = Image::parse(bytes).unwrap();
        let expected = image.payload_offset() as u64..image.len() as u64;
        let mut wrong = 0;
        let mut buf = bytes.to_vec();
        buf.resize(64 * 1024, 0xff); // a 64 KiB partition
        partial_states(&bytes[..w], |unit| {
            buf[..w].copy_from_slice(unit);
            for (bits, base) in bases
                .iter()
                .map(|&b| (32, b))
                .chain([(64, 0x5555_0000_0000), (64, 0x7fff_f000_0000)])
            {
                if let Some((s, e)) = micropython_mount(&buf, base, bits) {
                    if (s - base..e.wrapping_sub(base)) != expected {
                        wrong += 1;
                    }
                }
            }
        });
        wrong
    };
    for w in [4usize, 8, 16, 32] {
        let safe = build(Some(w as u32));
        assert_eq!(count_wrong(&safe, w), 0, "W={w}");
    }
    // No padding: the length's first byte shares the unit with the magic.
    let plain = build(None);
    assert!(count_wrong(&plain, 4) > 0);
    // Padding but only 4 digits after the unit (what 2^28 > any partition
    // would suggest): 32-bit devices whose flash is mapped high are fooled.
    let image = Image::parse(&plain).unwrap();
    let short = repad(&image, 4 - 3 + 4);
    assert!(short[3] == 0x80 && short[4] & 0x80 != 0);
    assert!(count_wrong(&short, 4) > 0);
}

/// The image with its length varuint re-encoded `width` bytes wide (the
/// payload, and so every indirect offset, is unchanged).
fn repad(image: &Image<'_>, width: usize) -> Vec<u8> {
    let mut out = vec![0xd2, 0xcd, 0x31];
    let mut len = [0u8; 64];
    let n = romfs_format::varuint::encode_padded(image.payload().len() as u64, width, &mut len);
    out.extend_from_slice(&len[..n]);
    out.extend_from_slice(image.payload());
    out
}
