//! Size probe: `size-updater` with signed updates: the updater requires a
//! signature by the firmware's key for its product, the signed manifest is
//! checked before anything is erased, the stream is hashed (SHA-256) and
//! the manifest checked against it before the commit.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_embedded::update::TrustPolicy;
use romfs_mcu_tests::ops::{self, Unmetered};
use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::size_probe!(|mut c| {
    let m = &mut Unmetered;
    let half = black_box(12 * probe::SECTOR as u32);
    let policy = TrustPolicy::new(black_box(PUBLIC_KEY), black_box(PRODUCT), black_box(0));
    let manifest: &[u8] = black_box(&MANIFEST);
    if let (Ok(layout), Some(policy)) = (romfs_mcu_tests::probe_ab_layout!(half), policy) {
        let started = ops::begin_ab(m, &mut c.flash, layout, &mut c.buf[..])
            .and_then(|up| up.require_signature(policy))
            .and_then(|up| up.with_manifest(manifest));
        if let Ok(mut up) = started {
            let chunk = black_box(100);
            let written = c
                .update
                .chunks(chunk)
                .try_for_each(|piece| ops::write(m, &mut up, piece));
            probe::sink(written.and_then(|()| ops::finish(m, up, None)).is_ok());
        }
        let path: &[u8] = black_box(b"note.txt");
        let opened = ops::ab_mount_mapped(m, c.flash.0.bytes(), &layout)
            .ok()
            .and_then(|(_, fs)| ops::mapped_open(m, &fs, path).ok());
        probe::sink(opened.map(|d| (d.as_ptr(), d.len())));
    }
    probe::sink((c.image, c.rom, c.buf));
    probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
});
