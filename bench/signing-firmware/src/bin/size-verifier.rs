//! Size probe: the signature verifier alone, as a bootloader that checks
//! an image in place would link it: decode the signed manifest, check it
//! against the trust policy (key id, Ed25519 signature, product,
//! generation), and compare the SHA-256 of the image with its digest.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_embedded::update::TrustPolicy;
use romfs_format::signature::SignedManifest;
use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::size_probe!(|c| {
    let policy = TrustPolicy::new(black_box(PUBLIC_KEY), black_box(PRODUCT), black_box(0));
    let signed = SignedManifest::parse(black_box(&MANIFEST));
    if let (Some(policy), Ok(signed)) = (policy, signed) {
        let trusted = policy.check::<()>(&signed, black_box(None)).is_ok();
        let len = (signed.manifest.signed_len as usize).min(c.update.len());
        let digest = hmac_sha256::Hash::hash(&c.update[..len]);
        probe::sink(trusted && digest[..] == signed.manifest.digest[..]);
    }
    probe::sink(c);
    probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
});
