//! Size probe: the flash drivers and images every probe has, and nothing
//! of romfs (see `probe`).
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;

romfs_mcu_tests::size_probe!(|c| {
    probe::sink(c);
});
