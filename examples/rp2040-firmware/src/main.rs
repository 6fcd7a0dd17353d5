//! romfs-embedded on an RP2040 (Raspberry Pi Pico) with embassy-rp's flash
//! driver: boot the newest committed ROMFS slot, open a file in place (a
//! slice of XIP flash, no copy), and install an update that arrives over
//! UART0 (GP1 = RX) as a 4-byte little-endian length followed by the image.
//!
//! The flash map (see memory.x, offsets from the start of flash):
//! - 0x000000..0x100000: boot2 and this firmware;
//! - 0x100000..0x180000: slot A, its last 4 KiB sector the commit record;
//! - 0x180000..0x200000: slot B, likewise.
#![no_std]
#![no_main]

use embassy_rp::flash::{self, Flash, ERASE_SIZE, WRITE_SIZE};
use embassy_rp::uart::{self, Config, UartRx};
use panic_halt as _;
use romfs_embedded::{mapped, AbLayout, Region, UpdateError, Updater, Verify};

/// The Pico's W25Q16: 2 MiB, mapped (XIP) at 0x1000_0000.
const FLASH_SIZE: usize = 2 * 1024 * 1024;
const XIP_BASE: usize = 0x1000_0000;
/// Slot A and slot B (must agree with memory.x).
const SLOT_A: Region = Region::new(0x10_0000, 0x8_0000);
const SLOT_B: Region = Region::new(0x18_0000, 0x8_0000);

#[cortex_m_rt::entry]
fn main() -> ! {
    let p = embassy_rp::init(Default::default());
    let mut flash = Flash::<_, flash::Blocking, FLASH_SIZE>::new_blocking(p.FLASH);
    let mut uart = UartRx::new_blocking(p.UART0, p.PIN_1, Config::default());
    let layout = match AbLayout::new(SLOT_A, SLOT_B, ERASE_SIZE, WRITE_SIZE) {
        Ok(layout) => layout,
        Err(_) => halt(),
    };
    // SAFETY: XIP flash is mapped read-only at XIP_BASE for FLASH_SIZE
    // bytes for the whole run. The updater writes only the slot that is not
    // mounted, so slices of the mounted image never change under us.
    let device: &'static [u8] =
        unsafe { core::slice::from_raw_parts(XIP_BASE as *const u8, FLASH_SIZE) };

    // Boot: the newest committed slot, a file opened in place.
    if let Ok((_slot, fs)) = mapped::mount_ab(device, &layout, Verify::CommitOnly) {
        if let Ok(config) = fs.open(b"config.json") {
            // `config` is a `&'static [u8]` into flash: parse it, hand it
            // to an interpreter, ...
            core::hint::black_box(config);
        }
    }

    // Update: wait for a length, then stream the image into the other slot.
    loop {
        let mut len = [0u8; 4];
        if uart.blocking_read(&mut len).is_err() {
            continue;
        }
        let len = u32::from_le_bytes(len) as usize;
        if receive(&mut flash, &mut uart, layout, len).is_ok() {
            // The new slot is committed: reboot into it.
            cortex_m::peripheral::SCB::sys_reset();
        }
    }
}

/// Take `len` bytes of image from `uart` into the slot not mounted, and
/// commit it. A power cut at any point leaves the old image or the new one.
fn receive<F: embedded_storage::nor_flash::NorFlash>(
    flash: &mut F,
    uart: &mut UartRx<'_, uart::Blocking>,
    layout: AbLayout,
    len: usize,
) -> Result<(), UpdateError<F::Error>> {
    // One sector of RAM: sectors already holding the new bytes are skipped.
    let mut sector = [0u8; ERASE_SIZE];
    // The updater lives in `place` only (no copies of it on the stack).
    let mut place = None;
    let update = Updater::begin_ab_in(&mut place, flash, layout, Verify::CommitOnly, &mut sector)?;
    let mut piece = [0u8; 256];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        if uart.blocking_read(&mut piece[..n]).is_err() {
            return Err(UpdateError::Aborted);
        }
        update.write(&piece[..n])?;
        left -= n;
    }
    update.finish_in_place(None).map(|_| ())
}

fn halt() -> ! {
    #[allow(clippy::empty_loop)]
    loop {}
}
