//! Size probe: mcu-tests' `size-updater` (an A/B update streamed in chunks
//! and committed, then the newest slot mounted and a file opened), built
//! here so that the signed updater's extra cost comes from one build.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_mcu_tests::ops::{self, Unmetered};
use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::size_probe!(|mut c| {
    let m = &mut Unmetered;
    let half = black_box(12 * probe::SECTOR as u32);
    if let Ok(layout) = romfs_mcu_tests::probe_ab_layout!(half) {
        if let Ok(mut up) = ops::begin_ab(m, &mut c.flash, layout, &mut c.buf[..]) {
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
