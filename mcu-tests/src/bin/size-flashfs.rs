//! Size probe: an image in flash that is not mapped, mounted with a
//! 16-byte buffer, a path looked up and the file read.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_mcu_tests::ops::{self, Unmetered};
use romfs_mcu_tests::probe;

romfs_mcu_tests::size_probe!(|c| {
    let m = &mut Unmetered;
    let path: &[u8] = black_box(b"lib/deep/blob.bin");
    let mut out = [0u8; 64];
    if let Ok(mut fs) = ops::flash_mount::<_, 16>(m, c.rom) {
        if let Ok(Some(file)) = ops::flash_lookup(m, &mut fs, path) {
            probe::sink(ops::flash_read(m, &mut fs, &file, black_box(3), &mut out).ok());
        }
    }
    probe::sink(&out);
    probe::sink((c.image, c.update, c.flash, c.buf));
});
