//! The OTA updater fed arbitrary streams in arbitrary chunks, A/B and
//! single slot, plain and requiring a signature: nothing may panic or hang,
//! a failed A/B update leaves the running image, a successful one installs
//! exactly the stream, and a single-slot partition ends with the old
//! image, the new one or none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, Verify};
use romfs_embedded::update::{TrustPolicy, Updater};
use romfs_embedded::Region;

const E: usize = 256;
const SLOT: u32 = 32 * E as u32;
type Flash = SimFlash<1, 4, E>;

/// The image the device runs before the update: the smallest valid one.
const OLD: [u8; 4] = [0xd2, 0xcd, 0x31, 0x00];

#[path = "shared/chunks.rs"]
mod shared_chunks;
use shared_chunks::chunks;

fn ab(stream: &[u8], seed: u8, signed: bool) {
    let layout =
        AbLayout::for_flash::<Flash>(Region::new(0, SLOT), Region::new(SLOT, SLOT)).unwrap();
    let mut flash = Flash::new(2 * SLOT as usize);
    let mut buf = [0u8; E];
    let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf).unwrap();
    up.write(&OLD).unwrap();
    up.finish(None).unwrap();
    let mut buf = [0u8; E];
    let result = (|| {
        let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf)?;
        if signed {
            let policy = TrustPolicy::new([seed; 32], b"fuzz", 1).unwrap();
            up = up.require_signature(policy)?;
            if seed & 1 == 1 && stream.len() >= 160 {
                up = up.with_manifest(&stream[stream.len() - 160..])?;
            }
        }
        for c in chunks(stream, seed) {
            up.write(c)?;
        }
        up.finish(None)
    })();
    let running = mapped::mount_ab(flash.contents(), &layout, Verify::Full)
        .map(|(_, fs)| fs.image().bytes().to_vec())
        .expect("A/B always has an image");
    match result {
        Ok(_) => assert_eq!(running, stream),
        Err(_) => assert_eq!(running, OLD),
    }
}

fn single(stream: &[u8], seed: u8) {
    let mut flash = Flash::new(SLOT as usize);
    flash.load(0, &OLD);
    let mut buf = [0u8; 2 * E];
    let result = (|| {
        let mut up = Updater::begin_single(&mut flash, Region::new(0, SLOT), &mut buf)?;
        for c in chunks(stream, seed) {
            up.write(c)?;
        }
        up.finish(None)
    })();
    let image = romfs_format::Image::parse(flash.contents()).map(|i| i.bytes().to_vec());
    match (result, image) {
        (Ok(_), Ok(image)) => assert_eq!(image, stream),
        (Ok(_), Err(e)) => panic!("a finished update left no image: {e}"),
        (Err(_), Ok(image)) => assert!(image == OLD || image == stream),
        (Err(_), Err(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    match control % 3 {
        0 => ab(stream, control / 3, false),
        1 => ab(stream, control / 3, true),
        _ => single(stream, control / 3),
    }
});
