//! Size probe: mcu-tests' `size-updater` (an A/B update streamed in chunks
//! and committed, then the newest slot mounted and a file opened), built
//! here so that the signed updater's extra cost comes from one build.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

romfs_mcu_tests::updating_probe!(|c, m, half, layout| {
    after {
        probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
    }
});
