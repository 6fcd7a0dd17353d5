//! A whole session (connect, query partition 0, deploy a small image)
//! against a board whose answers are the fuzz input: no panic, no hang;
//! it ends in an error or a report that adds up. Seeds are transcripts
//! recorded from the emulated board for this very image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_device::deploy::{deploy, NoProgress};
use romfs_device::transport::Scripted;
use romfs_device::{query, Board, Timeouts};

fuzz_target!(|data: &[u8]| {
    let image = romfs_device::deploy::sample_image();
    let Ok(mut board) = Board::connect(Scripted::new(data.to_vec()), Timeouts::default()) else {
        return;
    };
    let _ = query(&mut board, 0);
    if let Ok(report) = deploy(&mut board, &image, 0, &NoProgress) {
        assert!(report.written.len() as u64 <= report.blocks);
        assert!(report.skipped <= report.blocks);
    }
});
