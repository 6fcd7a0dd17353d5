//! Size probe: `size-baseline` with panic-semihosting as its panic handler
//! (the baseline of `size-user`): the flash drivers, images and a reachable
//! panic, and nothing of romfs.
#![no_std]
#![no_main]

use panic_semihosting as _;
use romfs_mcu_tests::probe;

#[cortex_m_rt::entry]
fn main() -> ! {
    let c = probe::common();
    probe::sink(c);
    #[allow(clippy::empty_loop)]
    loop {}
}
