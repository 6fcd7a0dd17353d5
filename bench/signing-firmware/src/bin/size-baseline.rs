//! Size probe: mcu-tests' baseline (flash drivers and images, nothing of
//! romfs) and the key, product and manifest the signing probes read.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::size_probe!(|c| {
    probe::sink(c);
    probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
});
