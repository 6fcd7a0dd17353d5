//! What the test images hold: shared by `build.rs`, which writes the images,
//! and the firmware, which checks what it reads against it.

/// A short text file at the root of the main image.
pub const HELLO: &[u8] = b"Hello from ROMFS on a microcontroller!\n";
/// A Python module in a folder.
pub const UTIL_PY: &[u8] = b"def answer():\n    return 42\n";
/// `u32` values stored little-endian with 16-byte aligned data.
pub const TABLE_WORDS: usize = 64;
/// `u32` values stored little-endian at an odd address.
pub const ODD_WORDS: usize = 16;
/// A file whose length is no multiple of 4.
pub const SEVEN: &[u8] = b"seven!\n";
/// Length of the pseudo-random file in a nested folder of the main image.
pub const BLOB_LEN: usize = 1500;
/// Seed of that file's bytes.
pub const BLOB_SEED: u32 = 1;

/// Length of the pseudo-random file in both update images.
pub const BIG_LEN: usize = 2000;
/// Seed of that file's bytes.
pub const BIG_SEED: u32 = 2;
/// `note.txt` of the first update image.
pub const NOTE_V1: &[u8] = b"version 1\n";
/// `note.txt` of the second one (a different length: later data moves).
pub const NOTE_V2: &[u8] = b"version 2, a little longer\n";
/// Write unit the update images' headers are made safe for (single slot).
pub const WRITE_SIZE: usize = 8;

/// Word `i` of `table.u32` (and, with `odd = true`, of `odd.u32`).
pub fn word(i: usize, odd: bool) -> u32 {
    let x = (i as u32).wrapping_mul(0x9E37_79B1);
    if odd {
        x ^ 0x0F0F_1234
    } else {
        x
    }
}

/// Byte `i` of a pseudo-random file.
pub fn byte(seed: u32, i: usize) -> u8 {
    let mut x = (i as u32) ^ seed.wrapping_mul(0x85EB_CA6B);
    x = x.wrapping_mul(0x2C1B_3C6D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x297A_2D39);
    (x >> 24) as u8
}
