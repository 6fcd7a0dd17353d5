//! Mount arbitrary flash contents every way the crate can (A/B commit
//! scanning, mapped mount, streaming mount), look paths up, list, read and
//! check: nothing may panic or hang, and the streaming reader must agree
//! with romfs-format's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_embedded::mapped;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{self, AbLayout, Verify};
use romfs_embedded::{FlashFs, Region};

const E: usize = 256;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let path_len = (data[0] as usize % 16).min(data.len() - 1);
    let path = &data[1..1 + path_len];
    let contents = &data[1 + path_len..];

    let cap = (contents.len().div_ceil(E).max(2) + 1) & !1;
    let mut sim = SimFlash::<1, 4, E>::new(cap * E);
    sim.load(0, contents);
    let whole = sim.contents().to_vec();

    // A/B: both slots, both verification levels, both access paths.
    let half = (cap / 2 * E) as u32;
    if let Ok(layout) = AbLayout::new(Region::new(0, half), Region::new(half, half), E, 4) {
        for verify in [Verify::CommitOnly, Verify::Full] {
            let _ = mapped::mount_ab(&whole, &layout, verify);
            if let Ok((_, mut fs)) = slots::mount_ab::<_, 16>(&mut sim, &layout, verify) {
                let _ = fs.lookup(path);
            }
        }
    }

    // Mapped and streaming mounts of the whole device must agree.
    let image = romfs_format::Image::parse(&whole);
    let fs = FlashFs::<_, 24>::mount(&mut sim);
    match (image, fs) {
        (Ok(image), Ok(mut fs)) => {
            let a = image.lookup(path);
            let b = fs.lookup(path);
            match (&a, &b) {
                (Ok(Some(x)), Ok(Some(y))) => {
                    assert_eq!(x.id(), y.id());
                    assert_eq!(x.size(), y.size());
                    let mut out = [0u8; 64];
                    let n = fs.read_file(y, 0, &mut out).unwrap();
                    if let Some(f) = x.as_file() {
                        assert_eq!(&out[..n], &f.data()[..n]);
                    }
                    let listed = fs.entries(y).take(10_000).count();
                    let want = x.as_dir().map_or(0, |d| d.entries().take(10_000).count());
                    assert_eq!(listed, want);
                }
                (Ok(None), Ok(None)) => {}
                (Err(x), Err(romfs_embedded::Error::Format(y))) => assert_eq!(x, y),
                _ => panic!("readers disagree: {a:?} vs {b:?}"),
            }
            assert_eq!(image.checksum(), fs.checksum().unwrap());
            let _ = image.verify(|_| {});
        }
        (Err(x), Err(romfs_embedded::Error::Format(y))) => assert_eq!(x, y),
        (a, b) => panic!("mounts disagree: {:?} vs {:?}", a.err(), b.err()),
    }
});
