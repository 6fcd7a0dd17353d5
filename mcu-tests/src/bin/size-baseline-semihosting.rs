//! Size probe: `size-baseline` with panic-semihosting as its panic handler
//! (the baseline of `size-user`): the flash drivers, images and a reachable
//! panic, and nothing of romfs.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;

romfs_mcu_tests::size_probe!(semihosting, |c| {
    probe::sink(c);
});
