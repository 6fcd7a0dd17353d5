//! Speed of each CRC-32 implementation on the emulated core, in
//! instructions per byte. Run under `qemu-system-arm -icount shift=0`,
//! where the virtual clock advances by one nanosecond per instruction:
//! SysTick then counts instructions at a fixed ratio, which a loop of a
//! known instruction count calibrates. QEMU does not model cycles, so
//! these are instructions, not cycles (loads and taken branches cost a
//! real Cortex-M more than one cycle).
#![no_std]
#![no_main]

use cortex_m::peripheral::{syst::SystClkSource, Peripherals, SYST};
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use romfs_format::crc32;
use romfs_mcu_tests::content;
use romfs_mcu_tests::semihosting::exit;

type CrcUpdate = fn(u32, &[u8]) -> u32;

const LEN: usize = 4096;
static mut DATA: [u8; LEN] = [0; LEN];

/// SysTick ticks `f` took.
fn ticks(syst: &mut SYST, f: impl FnOnce()) -> u32 {
    syst.set_reload(0x00ff_ffff);
    syst.clear_current();
    syst.enable_counter();
    // The counter reads 0 until its first reload.
    while SYST::get_current() == 0 {}
    let start = SYST::get_current();
    f();
    let end = SYST::get_current();
    syst.disable_counter();
    start.wrapping_sub(end) & 0x00ff_ffff
}

#[entry]
fn main() -> ! {
    let Some(mut p) = Peripherals::take() else {
        exit(false);
    };
    p.SYST.set_clock_source(SystClkSource::Core);
    // SAFETY: main runs once; this is the only reference to DATA.
    let data = unsafe { &mut *core::ptr::addr_of_mut!(DATA) };
    for (i, b) in data.iter_mut().enumerate() {
        *b = content::byte(7, i);
    }
    let data: &[u8] = core::hint::black_box(data);
    // Two instructions per iteration.
    let loops: u32 = 200_000;
    let calibration = ticks(&mut p.SYST, || unsafe {
        // SAFETY: a register-only countdown loop.
        core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) loops => _)
    });
    let want = crc32::checksum(data);
    let impls: [(&str, CrcUpdate); 4] = [
        ("table-free", crc32::update_table_free),
        ("small-table", crc32::update_small_table),
        ("table", crc32::update_table),
        ("crc32fast", |crc, bytes| {
            let mut h = crc32fast::Hasher::new_with_initial(crc);
            h.update(bytes);
            h.finalize()
        }),
    ];
    let mut ok = calibration > 0;
    for (name, update) in impls {
        let mut crc = 0;
        let t = ticks(&mut p.SYST, || crc = update(0, data));
        ok &= crc == want;
        // Instructions per byte, times 10.
        let tenths =
            u64::from(t) * u64::from(2 * loops) * 10 / (u64::from(calibration.max(1)) * LEN as u64);
        hprintln!("crc-speed {} {}.{}", name, tenths / 10, tenths % 10);
    }
    exit(ok)
}
