//! The test images, written by `build.rs` and linked into flash, aligned
//! as an image partition would be.

#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

static MAIN: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/main.img")));
static V1: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v1.img")));
static V2: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v2.img")));
static V1_V2: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v1-v2.delta")));
static V2_V1: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v2-v1.delta")));
static UNSAFE: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/unsafe.img")));

/// The image the read tests mount (see `content`).
pub fn main() -> &'static [u8] {
    &MAIN.0
}

/// The first update image (header safe for `content::WRITE_SIZE`).
pub fn v1() -> &'static [u8] {
    &V1.0
}

/// The second update image (header safe for `content::WRITE_SIZE`).
pub fn v2() -> &'static [u8] {
    &V2.0
}

/// `v1` without the header padding: refused by a single-slot update that
/// requires a safe header.
pub fn unsafe_header() -> &'static [u8] {
    &UNSAFE.0
}

/// The delta patch that makes `v2` from `v1`.
pub fn v1_to_v2() -> &'static [u8] {
    &V1_V2.0
}

/// The delta patch that makes `v1` from `v2`.
pub fn v2_to_v1() -> &'static [u8] {
    &V2_V1.0
}
