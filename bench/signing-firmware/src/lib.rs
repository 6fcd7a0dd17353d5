//! What signed updates cost a firmware (see `bench/signing.sh`):
//!
//! - `size-*` (binaries): like mcu-tests' size probes, one part linked as
//!   a firmware would link it; a part's code size is its binary minus
//!   `size-baseline`. `size-updater` is mcu-tests' probe of the same name,
//!   so the signed updater's extra cost is measured in the same build.
//! - `signing-cost` (binary, run under QEMU): signed A/B updates with the
//!   manifest sent ahead, the attacks they refuse, the peak stack of each
//!   operation and instruction counts of the signature check and SHA-256.

#![no_std]

use romfs_embedded::update::TrustPolicy;
use romfs_format::signature::SIGNED_MANIFEST_LEN;

#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

static V1: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v1.img")));
static V2: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v2.img")));
static V1_V2: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/v1-v2.delta")));
static OTHER: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/other.img")));
/// The Ed25519 public key the firmware trusts.
pub static PUBLIC_KEY: [u8; 32] = *include_bytes!(concat!(env!("OUT_DIR"), "/key.bin"));
/// The signed manifest of [`v1`], on its own (the size probes' input).
pub static MANIFEST: [u8; SIGNED_MANIFEST_LEN] =
    *include_bytes!(concat!(env!("OUT_DIR"), "/v1.manifest"));
/// The product the firmware is.
pub static PRODUCT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/product.txt"));

/// Generation 1 of the product's image, signed.
pub fn v1() -> &'static [u8] {
    &V1.0
}

/// Generation 2.
pub fn v2() -> &'static [u8] {
    &V2.0
}

/// The delta patch (`romfs diff`) that makes `v2` from `v1`.
pub fn v1_to_v2() -> &'static [u8] {
    &V1_V2.0
}

/// Generation 3, but signed for another product.
pub fn other_product() -> &'static [u8] {
    &OTHER.0
}

/// The signed manifest at the end of a signed image (what a sender hands
/// over first).
pub fn manifest_of(image: &[u8]) -> &[u8] {
    &image[image.len().saturating_sub(SIGNED_MANIFEST_LEN)..]
}

/// What the firmware accepts: images signed with its key, for its product.
pub fn policy() -> Option<TrustPolicy> {
    TrustPolicy::new(PUBLIC_KEY, PRODUCT, 0)
}
