//! Size probe: an A/B update and a mapped mount as a user writes them
//! (`romfs_mcu_tests::user`), the flash driver inlined into romfs code,
//! panics through panic-semihosting (as the on-target tests do).
#![no_std]
#![no_main]

use core::hint::black_box;

use romfs_embedded::{mapped, Verify};
use romfs_mcu_tests::{probe, user};

romfs_mcu_tests::size_probe!(semihosting, |mut c| {
    let half = black_box(12 * probe::SECTOR as u32);
    if let Ok(layout) = romfs_mcu_tests::probe_ab_layout!(half) {
        let flash = &mut c.flash.0;
        let chunks = c.update.chunks(black_box(100));
        probe::sink(user::update(&mut *flash, layout, &mut c.buf[..], chunks).is_ok());
        let path: &[u8] = black_box(b"note.txt");
        let opened = mapped::mount_ab(flash.bytes(), &layout, Verify::CommitOnly)
            .ok()
            .and_then(|(_, fs)| fs.open(path).ok());
        probe::sink(opened.map(|d| (d.as_ptr(), d.len())));
    }
    probe::sink((c.image, c.rom, c.buf));
});
