//! CRC-32 (IEEE 802.3, as zlib's `crc32`): the image checksum and the A/B
//! commit record's checksum. Every user in the workspace goes through this
//! module, so the implementation is chosen in one place, by cargo features.
//!
//! Four implementations give the same results; they differ in the flash
//! they take and their speed (measured in BENCHMARKS.md, "Firmware size"):
//!
//! | feature | how | table |
//! |---|---|---|
//! | `crc-fast` (in `default`, implied by `std`) | the `crc32fast` crate: carry-less multiply or CRC instructions where the host has them (detected at run time with `std`), slice-by-16 elsewhere | 16 KiB |
//! | `crc-table` | a byte at a time, [`update_table`] | 1 KiB |
//! | `crc-small-table` | a nibble at a time, [`update_small_table`] | 64 bytes |
//! | none of them | a bit at a time, [`update_table_free`] | none |
//!
//! When several are on, the fastest wins (`crc-fast`, then `crc-table`,
//! then `crc-small-table`), so turning a feature on anywhere in a build
//! never makes it slower, and `std` builds always use crc32fast. A
//! `default-features = false` build without `std` (firmware) gets the
//! table-free one unless it asks for a table (romfs-embedded passes the
//! same features through). On a Cortex-M crc32fast has no instructions to
//! use, so `crc-table` is as fast in a sixteenth of the flash, and
//! `crc-small-table` is much faster than table-free for a few dozen bytes.

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// The CRC register after shifting `value` through `bits` zero bits.
const fn shift_through(mut value: u32, bits: u32) -> u32 {
    let mut k = 0;
    while k < bits {
        value = (value >> 1) ^ (POLY & (value & 1).wrapping_neg());
        k += 1;
    }
    value
}

/// Entry `i` is the register after `i` is shifted through `bits` bits.
const fn make_table<const N: usize>(bits: u32) -> [u32; N] {
    let mut table = [0u32; N];
    let mut i = 0;
    while i < N {
        table[i] = shift_through(i as u32, bits);
        i += 1;
    }
    table
}

static NIBBLE_TABLE: [u32; 16] = make_table::<16>(4);
static BYTE_TABLE: [u32; 256] = make_table::<256>(8);

/// The CRC-32 of the bytes that gave `crc` followed by `bytes` (zlib's
/// `crc32(crc, bytes)`; start from 0), one bit at a time, without a table.
pub fn update_table_free(crc: u32, bytes: &[u8]) -> u32 {
    let mut reg = !crc;
    for &b in bytes {
        reg = shift_through(reg ^ u32::from(b), 8);
    }
    !reg
}

/// As [`update_table_free`], a nibble at a time through a 16-entry table.
pub fn update_small_table(crc: u32, bytes: &[u8]) -> u32 {
    let mut reg = !crc;
    for &b in bytes {
        reg ^= u32::from(b);
        reg = (reg >> 4) ^ NIBBLE_TABLE[(reg & 0xf) as usize];
        reg = (reg >> 4) ^ NIBBLE_TABLE[(reg & 0xf) as usize];
    }
    !reg
}

/// As [`update_table_free`], a byte at a time through a 256-entry table.
pub fn update_table(crc: u32, bytes: &[u8]) -> u32 {
    let mut reg = !crc;
    for &b in bytes {
        reg = (reg >> 8) ^ BYTE_TABLE[((reg ^ u32::from(b)) & 0xff) as usize];
    }
    !reg
}

/// Which implementation [`Hasher`] uses in this build: `"crc32fast"`,
/// `"table"`, `"small table"` or `"table-free"`.
pub const IMPLEMENTATION: &str = if cfg!(feature = "crc-fast") {
    "crc32fast"
} else if cfg!(feature = "crc-table") {
    "table"
} else if cfg!(feature = "crc-small-table") {
    "small table"
} else {
    "table-free"
};

/// The implementation the features chose, when it is not crc32fast.
#[cfg(not(feature = "crc-fast"))]
fn update_chosen(crc: u32, bytes: &[u8]) -> u32 {
    if cfg!(feature = "crc-table") {
        update_table(crc, bytes)
    } else if cfg!(feature = "crc-small-table") {
        update_small_table(crc, bytes)
    } else {
        update_table_free(crc, bytes)
    }
}

/// A running CRC-32.
#[derive(Debug, Clone)]
pub struct Hasher(Engine);

#[cfg(feature = "crc-fast")]
type Engine = crc32fast::Hasher;

/// The CRC of everything so far (zlib's convention: 0 for no bytes).
#[cfg(not(feature = "crc-fast"))]
#[derive(Debug, Clone)]
struct Engine(u32);

#[cfg(not(feature = "crc-fast"))]
impl Engine {
    fn new() -> Self {
        Engine(0)
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0 = update_chosen(self.0, bytes);
    }

    fn finalize(self) -> u32 {
        self.0
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    /// A CRC over no bytes yet.
    pub fn new() -> Self {
        Hasher(Engine::new())
    }

    /// Add `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The CRC of everything added (the hasher can go on).
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }

    /// The CRC of everything added.
    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

/// The CRC-32 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finalize()
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    type Update = fn(u32, &[u8]) -> u32;
    const IMPLEMENTATIONS: [(&str, Update); 3] = [
        ("table-free", update_table_free),
        ("small table", update_small_table),
        ("table", update_table),
    ];

    #[test]
    fn known_answers() {
        for (name, update) in IMPLEMENTATIONS {
            assert_eq!(update(0, b""), 0, "{name}");
            assert_eq!(update(0, b"123456789"), 0xCBF4_3926, "{name}");
            assert_eq!(update(0, &[0u8; 32]), 0x190A_55AD, "{name}");
        }
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(Hasher::default().finalize(), 0);
    }

    #[test]
    fn features_choose_the_fastest() {
        let mut h = Hasher::new();
        h.update(b"1234");
        let chosen = core::any::type_name_of_val(&h.0);
        // The features in order of speed: the first one on wins.
        let by_speed = [
            (cfg!(feature = "crc-fast"), "crc32fast"),
            (cfg!(feature = "crc-table"), "table"),
            (cfg!(feature = "crc-small-table"), "small table"),
        ];
        let fastest = by_speed
            .iter()
            .find(|(on, _)| *on)
            .map_or("table-free", |&(_, name)| name);
        assert_eq!(IMPLEMENTATION, fastest);
        assert_eq!(
            chosen.contains("crc32fast"),
            fastest == "crc32fast",
            "{chosen}"
        );
        assert_eq!(h.value(), crc32fast::hash(b"1234"));
    }

    /// Random data, split at random points, starting at a random offset in
    /// its buffer (crc32fast takes different paths for different
    /// alignments and lengths).
    fn data_and_splits() -> impl Strategy<Value = (Vec<u8>, usize, Vec<usize>)> {
        (proptest::collection::vec(any::<u8>(), 0..3000), 0usize..16).prop_flat_map(
            |(data, skip)| {
                let len = data.len();
                let skip = skip.min(len);
                (
                    Just(data),
                    Just(skip),
                    proptest::collection::vec(0..=len - skip, 0..6),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn every_implementation_agrees_with_crc32fast((data, skip, mut splits) in data_and_splits()) {
            let bytes = &data[skip..];
            let expected = crc32fast::hash(bytes);
            splits.sort_unstable();
            for (name, update) in IMPLEMENTATIONS {
                prop_assert_eq!(update(0, bytes), expected, "{} whole", name);
                let (mut crc, mut at) = (0, 0);
                for &s in &splits {
                    crc = update(crc, &bytes[at..s]);
                    at = s;
                }
                crc = update(crc, &bytes[at..]);
                prop_assert_eq!(crc, expected, "{} split at {:?}", name, splits);
            }
            let mut h = Hasher::new();
            let mut at = 0;
            for &s in &splits {
                h.update(&bytes[at..s]);
                prop_assert_eq!(h.value(), crc32fast::hash(&bytes[..s]));
                at = s;
            }
            h.update(&bytes[at..]);
            prop_assert_eq!(h.finalize(), expected);
            prop_assert_eq!(checksum(bytes), expected);
        }
    }
}
