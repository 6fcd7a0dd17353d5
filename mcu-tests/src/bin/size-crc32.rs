//! Size probe: the CRC-32 that the features chose, over a whole image.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;

#[cortex_m_rt::entry]
fn main() -> ! {
    let c = probe::common();
    probe::sink(romfs_format::crc32::checksum(c.image));
    probe::sink(c);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[allow(clippy::empty_loop)]
    loop {}
}
