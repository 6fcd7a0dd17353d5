//! Mount arbitrary flash contents every way the crate can (A/B commit
//! scanning, mapped mount, streaming mount), look paths up, open, list,
//! read, name, checksum and read metadata: nothing may panic or hang; the
//! streaming reader must agree with romfs-format's, the mapped and
//! streaming A/B mounts must choose the same slot, and CRCs must match an
//! independent (table-free) CRC-32.
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
            let mapped_ab = mapped::mount_ab(&whole, &layout, verify);
            if let Ok((slot, fs)) = &mapped_ab {
                // The slot mounted on its own is the same image; open and
                // the typed view agree with the lookup.
                let again = mapped::mount_slot(&whole, slot).expect("the chosen slot mounts");
                assert_eq!(again.image().bytes(), fs.image().bytes());
                match (fs.lookup(path), fs.open(path)) {
                    (Ok(Some(romfs_format::Node::File(f))), Ok(data)) => {
                        assert_eq!(f.data(), data);
                        if let Ok(words) = fs.open_typed::<u32>(path) {
                            assert_eq!(words.len() * 4, data.len());
                        }
                    }
                    (Ok(Some(romfs_format::Node::Dir(_))), Err(romfs_embedded::Error::IsDir)) => {}
                    (Ok(None), Err(romfs_embedded::Error::NotFound)) => {}
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("mapped lookup and open disagree: {a:?} vs {b:?}"),
                }
            }
            let streamed = slots::mount_ab::<_, 16>(&mut sim, &layout, verify);
            // Both access paths choose the same slot.
            match (&mapped_ab, &streamed) {
                (Ok((a, _)), Ok((b, _))) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                (a, b) => panic!(
                    "mapped and streaming A/B mounts disagree: {:?} vs {:?}",
                    a.as_ref().map(|x| x.0),
                    b.as_ref().map(|x| x.0)
                ),
            }
            if let Ok((_, mut fs)) = streamed {
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
                    // Names: whole, truncated, compared.
                    let mut name = [0u8; 40];
                    let got = fs.read_name(y, &mut name).unwrap();
                    let n = got.len();
                    assert_eq!(&name[..n], &x.name()[..n]);
                    assert!(fs.name_is(y, x.name()).unwrap());
                    // open agrees with lookup.
                    match fs.open(path) {
                        Ok(z) => assert_eq!(z.id(), y.id()),
                        Err(e) => {
                            assert!(!y.is_file(), "open failed on a file lookup finds: {e:?}")
                        }
                    }
                    // A read at an offset inside the file.
                    if let Some(f) = x.as_file() {
                        let at = f.len() / 2;
                        let n = fs.read_file(y, at, &mut out).unwrap();
                        assert_eq!(&out[..n], &f.data()[at..at + n]);
                    }
                }
                (Ok(None), Ok(None)) => {}
                (Err(x), Err(romfs_embedded::Error::Format(y))) => assert_eq!(x, y),
                _ => panic!("readers disagree: {a:?} vs {b:?}"),
            }
            assert_eq!(image.checksum(), fs.checksum().unwrap());
            let mut buf = [0u8; 128];
            match (image.metadata(), fs.metadata(&mut buf)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                // The record did not fit the buffer: it is not decoded.
                (_, Err(romfs_embedded::Error::BufferTooSmall { .. })) => {}
                (Err(x), Err(romfs_embedded::Error::Format(y))) => assert_eq!(x, y),
                (a, b) => panic!("metadata disagrees: {a:?} vs {b:?}"),
            }
            let end = image.len().min(usize::from(data[0]) * 16);
            let crc = fs.crc32(0, end).unwrap();
            assert_eq!(
                crc,
                romfs_format::crc32::update_table_free(0, &whole[..end])
            );
            let _ = image.verify(|_| {});
        }
        (Err(x), Err(romfs_embedded::Error::Format(y))) => assert_eq!(x, y),
        (a, b) => panic!("mounts disagree: {:?} vs {:?}", a.err(), b.err()),
    }
});
