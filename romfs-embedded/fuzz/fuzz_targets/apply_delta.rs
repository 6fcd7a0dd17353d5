//! Delta updates (`Updater::delta`) fed arbitrary patches in arbitrary
//! chunks: raw, or after a valid header for the running image (so copies
//! and literals reach the flash). Nothing may panic or hang; a failed
//! update leaves the running image; a successful one installs exactly what
//! the host-side `delta::apply` makes of the same patch.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, Verify};
use romfs_embedded::update::Updater;
use romfs_embedded::Region;
use romfs_format::delta::{self, DeltaHeader};
use romfs_format::write::{MemoryTree, Options};

const E: usize = 256;
const SLOT: u32 = 32 * E as u32;
type Flash = SimFlash<1, 4, E>;

/// The image the device runs (checksummed, a few files) and the device.
fn running() -> &'static (Vec<u8>, Flash, AbLayout) {
    static RUNNING: OnceLock<(Vec<u8>, Flash, AbLayout)> = OnceLock::new();
    RUNNING.get_or_init(|| {
        let mut t = MemoryTree::new();
        t.add_file(t.root(), b"main.py", b"print('old')\n".to_vec())
            .unwrap();
        let lib = t.add_dir(t.root(), b"lib").unwrap();
        t.add_file(
            lib,
            b"data.bin",
            (0..1500u32).map(|i| (i * 31 >> 2) as u8).collect(),
        )
        .unwrap();
        let old = t.build(&Options::default()).unwrap();
        let layout =
            AbLayout::for_flash::<Flash>(Region::new(0, SLOT), Region::new(SLOT, SLOT)).unwrap();
        let mut flash = Flash::new(2 * SLOT as usize);
        let mut buf = [0u8; E];
        let mut up = Updater::begin_ab(&mut flash, layout, Verify::Full, &mut buf).unwrap();
        up.write(&old).unwrap();
        up.finish(None).unwrap();
        (old, flash, layout)
    })
}

#[path = "shared/chunks.rs"]
mod shared_chunks;
use shared_chunks::chunks;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let (old, base, layout) = running();
    let patch = if control & 1 == 1 && body.len() >= 8 {
        // A header for the running image; the new image's length and
        // identity from the input, the operations after them.
        let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
        let header = DeltaHeader {
            old_len: old.len() as u32,
            old_id: delta::identity(old),
            new_len: word(0) % (2 * old.len() as u32 + 1),
            new_id: word(4),
        };
        let mut p = header.to_bytes().to_vec();
        p.extend_from_slice(&body[8..]);
        p
    } else {
        body.to_vec()
    };
    let mut flash = base.clone();
    let mut buf = [0u8; E];
    let result = (|| {
        let mut update = Updater::begin_ab(&mut flash, *layout, Verify::Full, &mut buf)?;
        let mut up = update.delta()?;
        for c in chunks(&patch, control >> 1) {
            up.write(c)?;
        }
        up.finish(None)
    })();
    let now = mapped::mount_ab(flash.contents(), layout, Verify::Full)
        .map(|(_, fs)| fs.image().bytes().to_vec())
        .expect("A/B always has an image");
    match result {
        Ok(_) => {
            let made =
                delta::apply(old, &patch).expect("the device applied a patch the host refuses");
            assert_eq!(now, made);
        }
        Err(_) => assert_eq!(&now, old),
    }
});
