//! Size probe: mcu-tests' baseline (flash drivers and images, nothing of
//! romfs) and the key, product and manifest the signing probes read.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;
use romfs_signing_firmware::{MANIFEST, PRODUCT, PUBLIC_KEY};

#[cortex_m_rt::entry]
fn main() -> ! {
    let c = probe::common();
    probe::sink(c);
    probe::sink((&PUBLIC_KEY, PRODUCT, &MANIFEST));
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[allow(clippy::empty_loop)]
    loop {}
}
