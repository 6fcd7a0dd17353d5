//! Size probe: the flash drivers and images every probe has, and nothing
//! of romfs (see `probe`).
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;

#[cortex_m_rt::entry]
fn main() -> ! {
    let c = probe::common();
    probe::sink(c);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[allow(clippy::empty_loop)]
    loop {}
}
