#![no_std]
#![no_main]
use core::hint::black_box;
#[cortex_m_rt::entry]
fn main() -> ! {
    black_box((
        &romfs_signing_candidates::PK,
        &romfs_signing_candidates::MSG,
        &romfs_signing_candidates::SIG,
    ));
    loop {}
}
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
