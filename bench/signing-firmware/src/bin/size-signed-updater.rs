//! Size probe: `size-updater` with signed updates: the updater requires a
//! signature by the firmware's key for its product, the signed manifest is
//! checked before anything is erased, the stream is hashed (SHA-256) and
//! the manifest checked against it before the commit.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_embedded::update::TrustPolicy;
use romfs_mcu_tests::{ops, probe};
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::updating_probe!(|c, m, half, layout| {
    before {
        let policy = TrustPolicy::new(black_box(PUBLIC_KEY), black_box(PRODUCT), black_box(0));
        let manifest: &[u8] = black_box(&MANIFEST);
    }
    if let (Ok(layout), Some(policy)) = (romfs_mcu_tests::probe_ab_layout!(half), policy);
    update {
        let started = ops::begin_ab(m, &mut c.flash, layout, &mut c.buf[..])
            .and_then(|up| up.require_signature(policy))
            .and_then(|up| up.with_manifest(manifest));
        if let Ok(mut up) = started {
            romfs_mcu_tests::probe_stream!(m, up, c.update, ops::write, ops::finish);
        }
    }
    after {
        probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
    }
});
