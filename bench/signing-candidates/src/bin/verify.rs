#![no_std]
#![no_main]
use core::hint::black_box;
#[cortex_m_rt::entry]
fn main() -> ! {
    let ok = romfs_signing_candidates::verify(
        black_box(&romfs_signing_candidates::PK),
        black_box(&romfs_signing_candidates::MSG),
        black_box(&romfs_signing_candidates::SIG),
    );
    black_box(ok);
    black_box(romfs_signing_candidates::sha(black_box(
        &romfs_signing_candidates::SIG,
    )));
    loop {}
}
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
