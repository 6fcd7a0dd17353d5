//! Size probe: a memory-mapped image, mounted and a file opened.
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_mcu_tests::ops::{self, Unmetered};
use romfs_mcu_tests::probe;

romfs_mcu_tests::size_probe!(|c| {
    let m = &mut Unmetered;
    let path: &[u8] = black_box(b"lib/deep/blob.bin");
    let opened = ops::mapped_mount(m, c.image)
        .ok()
        .and_then(|fs| ops::mapped_open(m, &fs, path).ok());
    probe::sink(opened.map(|d| (d.as_ptr(), d.len())));
    probe::sink(c);
});
