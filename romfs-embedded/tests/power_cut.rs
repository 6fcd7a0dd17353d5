//! Exhaustive power-cut tests: cut power at every erase and write of an
//! update, in several partial states of the interrupted operation, then
//! "reboot" by mounting from flash alone. A/B: exactly the old image or
//! exactly the new one, byte for byte, every time. Single slot: the old
//! image, the new one, or no image, never a corrupt one. Each recovery
//! (re-running the update) is itself cut at every operation.
//!
//! Single slot is checked twice: with our reader (which refuses an image
//! whose CRC record does not match), and with a reader that checks only
//! what MicroPython's `vfs.VfsRom` checks (the magic and that the declared
//! length stays inside the partition, decoded in a 32- or 64-bit word as
//! its C code does). For the latter, images must be header-safe for the
//! flash's write size (`Options::header_write_size`); the interrupted
//! program of the first write unit is then enumerated bit by bit, and the
//! same enumeration over an unpadded image shows such a reader fooled.

mod common;

use common::{app_files, build, partials};
use romfs_embedded::mapped;
use romfs_embedded::sim::{Partial, SimError, SimFlash};
use romfs_embedded::slots::{self, AbLayout, Verify};
use romfs_embedded::update::{Report, UpdateError, Updater};
use romfs_embedded::Region;
use romfs_format::write::{MetadataSpec, Options};
use romfs_format::{Checksum, Image};

/// The small-sector geometry: 4 KiB sectors, 64 KiB slots, whole sectors
/// staged (a buffer of one sector, two for a single slot).
const E: usize = 4096;
/// The large-sector geometry (STM32F4/F7/H7 internal flash): 128 KiB
/// sectors, slots of two, and a buffer of 4 KiB whatever the mode.
const LARGE: usize = 128 * 1024;
/// The bounded buffer used with large sectors.
const BOUNDED_BUF: usize = 4096;

/// A slot (A/B: image and commit sector; single: the partition).
const fn slot(e: usize) -> u32 {
    if e == E {
        64 * 1024
    } else {
        2 * e as u32
    }
}

/// The buffer an update gets: whole sectors for the small geometry,
/// `BOUNDED_BUF` for large sectors.
fn buffer(e: usize, sectors: usize) -> Vec<u8> {
    vec![0u8; if e == E { sectors * e } else { BOUNDED_BUF }]
}

fn layout<const W: usize, const E: usize>() -> AbLayout {
    AbLayout::new(Region::new(0, slot(E)), Region::new(slot(E), slot(E)), E, W).unwrap()
}

/// How an A/B campaign installs the new image.
#[derive(Debug, Clone, Copy)]
enum Install<'a> {
    /// Streamed whole.
    Image(&'a [u8]),
    /// Streamed whole, the updater in a place of the caller's
    /// (`begin_ab_in`, `finish_in_place`).
    ImageInPlace(&'a [u8]),
    /// As a `romfs diff` patch against the running image.
    Delta(&'a [u8]),
}

type Update = Result<Report, UpdateError<SimError>>;

/// An A/B update, installed `how` in chunks of `chunk` bytes.
fn install_ab<const W: usize, const E: usize>(
    flash: &mut SimFlash<1, W, E>,
    how: Install<'_>,
    chunk: usize,
) -> Update {
    let mut buf = buffer(E, 1);
    let layout = layout::<W, E>();
    match how {
        Install::Image(image) => {
            let mut up = Updater::begin_ab(flash, layout, Verify::Full, &mut buf)?;
            image.chunks(chunk).try_for_each(|c| up.write(c))?;
            up.finish(None)
        }
        Install::ImageInPlace(image) => {
            let mut place = None;
            let up = Updater::begin_ab_in(&mut place, flash, layout, Verify::Full, &mut buf)?;
            image.chunks(chunk).try_for_each(|c| up.write(c))?;
            up.finish_in_place(None)
        }
        Install::Delta(patch) => {
            let mut update = Updater::begin_ab(flash, layout, Verify::Full, &mut buf)?;
            let mut up = update.delta()?;
            patch.chunks(chunk).try_for_each(|c| up.write(c))?;
            up.finish(None)
        }
    }
}

fn update_single<const W: usize, const E: usize>(
    flash: &mut SimFlash<1, W, E>,
    image: &[u8],
    chunk: usize,
) -> Update {
    let mut buf = buffer(E, 2);
    let mut up = Updater::begin_single(flash, Region::new(0, slot(E)), &mut buf)?;
    image.chunks(chunk).try_for_each(|c| up.write(c))?;
    up.finish(None)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Old,
    New,
    NoImage,
}

/// Mount the A/B flash from its contents alone, three ways (mapped with
/// commit-only and full verification, and through the streaming reader),
/// and require they agree on exactly the old or exactly the new image.
fn boot_ab<const W: usize, const E: usize>(
    flash: &mut SimFlash<1, W, E>,
    old: &[u8],
    new: &[u8],
) -> Seen {
    flash.reboot();
    let quick = mapped::mount_ab(flash.contents(), &layout::<W, E>(), Verify::CommitOnly)
        .map(|(_, fs)| fs.image().bytes().to_vec());
    let full = mapped::mount_ab(flash.contents(), &layout::<W, E>(), Verify::Full)
        .map(|(_, fs)| fs.image().bytes().to_vec());
    assert_eq!(quick, full, "commit-only and full verification disagree");
    let bytes = quick.expect("A/B must always have an image");
    let (info, mut fs) =
        slots::mount_ab::<_, 128>(&mut *flash, &layout::<W, E>(), Verify::CommitOnly).unwrap();
    assert_eq!(info.image_len as usize, bytes.len());
    assert_eq!(
        fs.checksum().unwrap(),
        Checksum::Valid(u32::from_le_bytes(
            bytes[bytes.len() - 4..].try_into().unwrap()
        ))
    );
    let config = fs.lookup(b"config.py").unwrap().unwrap();
    let mut out = [0u8; 32];
    let n = fs.read_file(&config, 0, &mut out).unwrap();
    if bytes == old {
        assert_eq!(&out[..n], b"VERSION = 1\n");
        Seen::Old
    } else if bytes == new {
        assert_eq!(&out[..n], b"VERSION = 2\n");
        Seen::New
    } else {
        panic!("A/B mounted an image that is neither old nor new");
    }
}

/// How a single-slot partition is read after a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// romfs-format's `Image::parse` (strict varuints); with `verify`, an
    /// image whose checksum record does not match counts as no image.
    Ours { verify: bool },
    /// Only what MicroPython checks, on 32-bit devices with flash mapped at
    /// several addresses and on a 64-bit host.
    MicroPython,
}

/// Where flash is mapped on real 32-bit boards (STM32 internal and QSPI,
/// RP2 XIP, ESP32 data cache) and on a 64-bit host (unix port).
const MAPPINGS: [(u32, u64); 6] = [
    (32, 0x0800_0000),
    (32, 0x1000_0000),
    (32, 0x3f40_0000),
    (32, 0x9000_0000),
    (64, 0x5555_5555_0000),
    (64, 0x7fff_f7a0_0000),
];

/// `vfs.VfsRom(partition)` as MicroPython's C code does it with `bits`-bit
/// words and the partition at address `base`: the varuints accumulate in a
/// machine word (high bits shift out), the end pointer is start + length
/// (wrapping), and the only checks are the magic, the kind and
/// `end <= base + partition length`. Returns the payload as offsets from
/// the partition start (`end < start` when the pointer wrapped: MicroPython
/// then mounts an empty, nonsensical filesystem), or `None` (ENODEV).
fn micropython_mount(part: &[u8], bits: u32, base: u64) -> Option<(u64, u64)> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let (start, end) = romfs_testkit::micropython_mount(part, base, bits)?;
    Some((start - base, end.wrapping_sub(base) & mask))
}

/// What MicroPython would see, as old/new/none; `None` for a corrupt
/// image (a payload that is neither image's, at a different offset, or a
/// wrapped end).
fn micropython_sees(part: &[u8], old: &[u8], new: &[u8]) -> Option<Seen> {
    let mut seen = None;
    for (bits, base) in MAPPINGS {
        let s = match micropython_mount(part, bits, base) {
            None => Seen::NoImage,
            Some((start, end)) => {
                let (start, end) = (start as usize, end as usize);
                let same = |img: &[u8]| {
                    let i = Image::parse(img).unwrap();
                    start == i.payload_offset() && end >= start && part[start..end] == *i.payload()
                };
                if same(old) {
                    Seen::Old
                } else if same(new) {
                    Seen::New
                } else {
                    return None;
                }
            }
        };
        // Some devices may refuse what others accept; 32-bit ones decide.
        seen.get_or_insert(s);
    }
    seen
}

/// Single slot: read the partition with `reader`. Whatever is accepted
/// must be exactly old or new.
fn boot_single<const W: usize, const E: usize>(
    flash: &mut SimFlash<1, W, E>,
    old: &[u8],
    new: &[u8],
    reader: Reader,
    rejected: &mut u32,
) -> Seen {
    flash.reboot();
    let part = &flash.contents()[..slot(E) as usize];
    let verify = match reader {
        Reader::Ours { verify } => verify,
        Reader::MicroPython => {
            return micropython_sees(part, old, new)
                .unwrap_or_else(|| panic!("MicroPython would mount a corrupt image"));
        }
    };
    let Ok(img) = Image::parse(part) else {
        return Seen::NoImage;
    };
    if verify && !matches!(img.checksum(), Checksum::Valid(_)) {
        *rejected += 1;
        return Seen::NoImage;
    }
    if img.bytes() == old {
        Seen::Old
    } else if img.bytes() == new {
        Seen::New
    } else {
        panic!("single slot mounted a corrupt image ({} bytes)", img.len());
    }
}

struct Campaign {
    cut_points: u64,
    recovery_cut_points: u64,
    ops_per_update: u64,
}

/// A cut of operation `op` of the `ops` an update takes, leaving `partial`,
/// after which `seen` mounts.
#[derive(Debug, Clone, Copy)]
struct Cut {
    op: u64,
    ops: u64,
    partial: Partial,
    seen: Seen,
}

/// What differs between the A/B and the single-slot campaigns: the update,
/// the boot, and what each demands of the image a cut leaves mounted.
trait Partition<const W: usize, const E: usize> {
    /// Install the new image in chunks of `chunk` bytes.
    fn install(&mut self, flash: &mut SimFlash<1, W, E>, chunk: usize) -> Update;
    /// Reboot and say which image mounts.
    fn boot(&mut self, flash: &mut SimFlash<1, W, E>) -> Seen;
    /// Check what mounts after `cut`; `false` when the recovery is not to
    /// be run.
    fn check_cut(&mut self, flash: &mut SimFlash<1, W, E>, cut: Cut) -> bool;
    /// Check `recovered`, what mounts after a cut of the recovery from a
    /// cut that left `seen` mounted.
    fn check_recovery_cut(&mut self, seen: Seen, recovered: Seen);
}

/// Cut power at every operation of the update of `base` (which holds the
/// old image), in every partial state, and boot; re-run the update from
/// each such state, cut at every one of its operations, and boot; then
/// complete it and boot the new image.
fn campaign<const W: usize, const E: usize>(
    mut base: SimFlash<1, W, E>,
    part: &mut impl Partition<W, E>,
) -> Campaign {
    assert_eq!(part.boot(&mut base), Seen::Old);
    let mut clean = base.clone();
    clean.reboot();
    part.install(&mut clean, 1000).unwrap();
    let ops = clean.ops();
    assert_eq!(part.boot(&mut clean), Seen::New);

    let mut c = Campaign {
        cut_points: 0,
        recovery_cut_points: 0,
        ops_per_update: ops,
    };
    for i in 0..ops {
        for p in partials(i) {
            let mut f = base.clone();
            f.reboot();
            f.cut_power_at(i, p);
            let chunk = 1 + (i as usize * 131 + 7) % 2000;
            assert_eq!(
                part.install(&mut f, chunk).unwrap_err(),
                UpdateError::Flash(SimError::PowerLost)
            );
            c.cut_points += 1;
            let seen = part.boot(&mut f);
            let cut = Cut {
                op: i,
                ops,
                partial: p,
                seen,
            };
            if !part.check_cut(&mut f, cut) {
                continue;
            }
            // Recovery: re-run the update, cut at every one of its operations.
            let mut probe = f.clone();
            probe.reboot();
            part.install(&mut probe, 4096).unwrap();
            let recovery_ops = probe.ops();
            for j in 0..recovery_ops {
                let mut g = f.clone();
                g.reboot();
                g.cut_power_at(j, Partial::RandomBits(i * 1000 + j));
                assert!(part.install(&mut g, 777).is_err());
                c.recovery_cut_points += 1;
                let recovered = part.boot(&mut g);
                part.check_recovery_cut(seen, recovered);
            }
            // Finally the retried update completes.
            part.install(&mut f, 555).unwrap();
            assert_eq!(part.boot(&mut f), Seen::New);
        }
    }
    c
}

/// An A/B partition updated from `old` to `new`, installed `how`.
struct Ab<'a> {
    old: &'a [u8],
    new: &'a [u8],
    how: Install<'a>,
}

impl<const W: usize, const E: usize> Partition<W, E> for Ab<'_> {
    fn install(&mut self, flash: &mut SimFlash<1, W, E>, chunk: usize) -> Update {
        install_ab(flash, self.how, chunk)
    }

    fn boot(&mut self, flash: &mut SimFlash<1, W, E>) -> Seen {
        boot_ab(flash, self.old, self.new)
    }

    fn check_cut(&mut self, flash: &mut SimFlash<1, W, E>, cut: Cut) -> bool {
        let Cut {
            op: i,
            ops,
            partial: p,
            seen,
        } = cut;
        if i + 1 < ops {
            // Before the commit write nothing may change what mounts.
            assert_eq!(seen, Seen::Old, "cut at op {i} ({p:?})");
        } else if p == Partial::Everything {
            assert_eq!(seen, Seen::New);
        }
        if let (Install::Delta(_), Seen::New) = (self.how, seen) {
            // The new image runs: the patch no longer has its base, and
            // is refused without a write.
            let before = flash.stats();
            let r = install_ab(flash, self.how, 4096);
            assert_eq!(
                r.unwrap_err(),
                UpdateError::Delta(romfs_format::delta::DeltaError::WrongBase)
            );
            assert_eq!(flash.stats().writes, before.writes);
            assert_eq!(boot_ab(flash, self.old, self.new), Seen::New);
            return false;
        }
        true
    }

    fn check_recovery_cut(&mut self, seen: Seen, recovered: Seen) {
        assert!(
            seen == Seen::Old || recovered == Seen::New,
            "a committed new image was lost"
        );
    }
}

fn ab_campaign<const W: usize, const E: usize>(
    old: &[u8],
    new: &[u8],
    previous: &[u8],
) -> Campaign {
    ab_campaign_with::<W, E>(old, new, previous, Install::Image(new))
}

/// The A/B campaign, with the new image installed `how`.
fn ab_campaign_with<const W: usize, const E: usize>(
    old: &[u8],
    new: &[u8],
    previous: &[u8],
    how: Install<'_>,
) -> Campaign {
    // A holds `previous` (generation 1, valid), B holds `old` (generation 2,
    // active): the update of `new` overwrites A, the hardest case.
    let mut base = SimFlash::<1, W, E>::new(2 * slot(E) as usize);
    install_ab(&mut base, Install::Image(previous), 4096).unwrap();
    install_ab(&mut base, Install::Image(old), 4096).unwrap();
    campaign(base, &mut Ab { old, new, how })
}

/// A single-slot partition updated from `old` to `new`, read with
/// `reader`: counts the images its reader refused and what each cut left.
struct Single<'a> {
    old: &'a [u8],
    new: &'a [u8],
    reader: Reader,
    rejected: u32,
    seen_counts: [u32; 3],
}

impl<const W: usize, const E: usize> Partition<W, E> for Single<'_> {
    fn install(&mut self, flash: &mut SimFlash<1, W, E>, chunk: usize) -> Update {
        update_single(flash, self.new, chunk)
    }

    fn boot(&mut self, flash: &mut SimFlash<1, W, E>) -> Seen {
        boot_single(flash, self.old, self.new, self.reader, &mut self.rejected)
    }

    fn check_cut(&mut self, _: &mut SimFlash<1, W, E>, cut: Cut) -> bool {
        // Old, new or none: `boot` refuses anything else.
        self.seen_counts[cut.seen as usize] += 1;
        true
    }

    fn check_recovery_cut(&mut self, _: Seen, _: Seen) {}
}

fn single_campaign<const W: usize, const E: usize>(
    old: &[u8],
    new: &[u8],
    reader: Reader,
) -> (Campaign, u32) {
    let mut base = SimFlash::<1, W, E>::new(slot(E) as usize);
    update_single(&mut base, old, 4096).unwrap();
    let mut single = Single {
        old,
        new,
        reader,
        rejected: 0,
        seen_counts: [0; 3],
    };
    let c = campaign(base, &mut single);
    let seen_counts = single.seen_counts;
    // The interesting outcomes all happen.
    assert!(
        seen_counts[Seen::Old as usize] > 0 && seen_counts[Seen::NoImage as usize] > 0,
        "{seen_counts:?}"
    );
    eprintln!("single slot (W={W}): outcomes old/new/none = {seen_counts:?}");
    (c, single.rejected)
}

fn report(name: &str, c: &Campaign) {
    eprintln!(
        "{name}: {} ops per update, {} cut points, {} recovery cut points",
        c.ops_per_update, c.cut_points, c.recovery_cut_points
    );
}

/// The images of a full A/B campaign: `previous` in slot A, `old` running
/// in slot B and `new` (app seeds `seed`, `seed + 1`, `seed + 2`).
fn ab_images(seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    (
        build(&app_files(seed, 36, 0), 0, None),
        build(&app_files(seed + 1, 40, 1), 1, None),
        build(&app_files(seed + 2, 44, 2), 2, None),
    )
}

/// The single-slot campaign over checksummed images (app seeds `seed` and
/// `seed + 1`), 4-byte writes and our verified reader, reported as `name`.
fn single_checksummed_campaign<const E: usize>(seed: u64, name: &str) {
    let old = build(&app_files(seed, 40, 1), 1, None);
    let new = build(&app_files(seed + 1, 44, 2), 2, None);
    let (c, rejected) = single_campaign::<4, E>(&old, &new, Reader::Ours { verify: true });
    report(name, &c);
    eprintln!("  states refused by the checksum: {rejected}");
}

/// The single-slot campaign over images header-safe for `W`-byte writes
/// (seeds `seed` and `seed + 1`), with only MicroPython's checks, reported
/// as `name`.
fn single_header_safe_campaign<const W: usize, const E: usize>(seed: u64, name: &str) {
    let old = header_safe_build(seed, 1, W as u32);
    let new = header_safe_build(seed + 1, 2, W as u32);
    let (c, _) = single_campaign::<W, E>(&old, &new, Reader::MicroPython);
    report(name, &c);
}

#[test]
fn ab_update_survives_every_power_cut() {
    let (previous, old, new) = ab_images(30);
    assert!(new.len() > 40 * 1024);
    let c = ab_campaign::<4, E>(&old, &new, &previous);
    report("A/B full update (W=4)", &c);
    assert!(c.ops_per_update >= 20);
    assert_eq!(c.cut_points, c.ops_per_update * 5);
}

#[test]
fn ab_update_in_the_callers_place_survives_every_power_cut() {
    let previous = build(&app_files(33, 30, 0), 0, None);
    let old = build(&app_files(34, 34, 1), 1, None);
    let new = build(&app_files(35, 38, 2), 2, None);
    let c = ab_campaign_with::<4, E>(&old, &new, &previous, Install::ImageInPlace(&new));
    report("A/B full update, updater in the caller's place (W=4)", &c);
    assert!(c.ops_per_update >= 20);
    assert_eq!(c.cut_points, c.ops_per_update * 5);
}

#[test]
fn ab_small_change_survives_every_power_cut() {
    let files = app_files(40, 40, 1);
    let mut changed = files.clone();
    let last = changed.len() - 1;
    changed[last].1 = b"VERSION = 2\n".to_vec();
    let old = build(&files, 1, None);
    let new = build(&changed, 2, None);
    // A holds the old image too (B active): only the differing sectors move.
    let c = ab_campaign::<4, E>(&old, &new, &old);
    report("A/B one-file update (W=4)", &c);
    assert!(
        c.ops_per_update <= 8,
        "{} ops for a one-file change",
        c.ops_per_update
    );
}

#[test]
fn single_slot_never_mounts_a_corrupt_image() {
    // Our default layout (checksummed), 4-byte writes, our verified mount.
    single_checksummed_campaign::<E>(50, "single slot, checksummed, W=4");
    // mpremote's layout (no checksum), byte writes, and no check at all
    // beyond what MicroPython's VfsRom does: still never corrupt.
    let old = build(&app_files(52, 40, 1), 1, Some(Options::mpremote()));
    let new = build(&app_files(53, 44, 2), 2, Some(Options::mpremote()));
    let (c, rejected) = single_campaign::<1, E>(&old, &new, Reader::MicroPython);
    assert_eq!(rejected, 0);
    report("single slot, mpremote layout, W=1, unverified", &c);
}

fn header_safe_build(seed: u64, version: u32, write_size: u32) -> Vec<u8> {
    let image = build(
        &app_files(seed, 40 + 4 * version as usize, version),
        version as u64,
        Some(Options {
            metadata: Some(MetadataSpec {
                generation: Some(version as u64),
                ..MetadataSpec::default()
            }),
            header_write_size: Some(write_size),
            ..Options::default()
        }),
    );
    assert!(Image::parse(&image)
        .unwrap()
        .is_header_safe(write_size as usize));
    image
}

/// Every state a program of the first write unit can be cut in (each bit
/// to clear landed or not), with the magic complete: exhaustive while the
/// other bits to clear number at most 16, else 4,000 random ones plus every
/// "all but one bit" state.
fn unit0_states(target: &[u8], mut each: impl FnMut(&[u8])) {
    let free: Vec<(usize, u8)> = (3..target.len())
        .flat_map(|i| {
            (0..8u8)
                .filter(move |b| target[i] & (1 << b) == 0)
                .map(move |b| (i, b))
        })
        .collect();
    let state = |missing: &dyn Fn(usize) -> bool| {
        let mut s = target.to_vec();
        for (k, &(i, b)) in free.iter().enumerate() {
            if missing(k) {
                s[i] |= 1 << b;
            }
        }
        s
    };
    if free.len() <= 16 {
        for mask in 0..1u32 << free.len() {
            each(&state(&|k| mask & (1 << k) != 0));
        }
    } else {
        let mut rng = common::Rng(0x0dd5_eed5);
        for _ in 0..4000 {
            let bits: Vec<bool> = free.iter().map(|_| rng.next() & 1 == 1).collect();
            each(&state(&|k| bits[k]));
        }
        for one in 0..free.len() {
            each(&state(&|k| k == one));
        }
    }
}

/// Update old -> new in a single slot, cut power during the final program
/// of the first write unit, and count the states of that unit in which a
/// MicroPython-like reader mounts a corrupt image.
fn corrupt_unit0_states<const W: usize, const E: usize>(old: &[u8], new: &[u8]) -> (usize, usize) {
    let mut base = SimFlash::<1, W, E>::new(slot(E) as usize);
    update_single(&mut base, old, 4096).unwrap();
    let mut probe = base.clone();
    probe.reboot();
    update_single(&mut probe, new, 4096).unwrap();
    let last = probe.ops() - 1;
    let mut f = base.clone();
    f.reboot();
    f.cut_power_at(last, Partial::Nothing);
    assert!(update_single(&mut f, new, 1000).is_err());
    // The cut operation was the first unit's program: all else is in place.
    assert!(f.contents()[..W].iter().all(|&b| b == 0xff));
    assert_eq!(&f.contents()[W..new.len()], &new[W..]);
    let (mut states, mut corrupt) = (0, 0);
    unit0_states(&new[..W], |unit| {
        f.load(0, unit);
        states += 1;
        if micropython_sees(&f.contents()[..slot(E) as usize], old, new).is_none() {
            corrupt += 1;
        }
    });
    (states, corrupt)
}

#[test]
fn header_safe_images_never_fool_micropython_when_the_first_unit_is_cut() {
    for (w, states_min) in [(4usize, 128), (8, 4000)] {
        let old = header_safe_build(60, 1, w as u32);
        let new = header_safe_build(61, 2, w as u32);
        let (states, corrupt) = match w {
            4 => corrupt_unit0_states::<4, E>(&old, &new),
            _ => corrupt_unit0_states::<8, E>(&old, &new),
        };
        eprintln!("W={w}, header-safe: {states} first-unit states, {corrupt} corrupt");
        assert!(states >= states_min);
        assert_eq!(corrupt, 0, "W={w}");
    }
    // The same images without the padding: the length shares the first
    // unit with the magic, and some partial programs show MicroPython a
    // complete magic over a wrong length.
    for w in [4usize, 8] {
        let old = build(&app_files(60, 40, 1), 1, None);
        let new = build(&app_files(61, 44, 2), 2, None);
        assert!(!Image::parse(&new).unwrap().is_header_safe(w));
        let (states, corrupt) = match w {
            4 => corrupt_unit0_states::<4, E>(&old, &new),
            _ => corrupt_unit0_states::<8, E>(&old, &new),
        };
        eprintln!("W={w}, unpadded: {states} first-unit states, {corrupt} corrupt");
        assert!(corrupt > 0, "W={w}: the unpadded header should be unsafe");
    }
}

#[test]
fn single_slot_header_safe_never_fools_micropython() {
    // Full campaigns (every cut point, partial states, cut recoveries) with
    // only MicroPython's checks, 4- and 8-byte writes.
    single_header_safe_campaign::<4, E>(
        70,
        "single slot, header-safe, W=4, MicroPython's checks only",
    );
    single_header_safe_campaign::<8, E>(
        72,
        "single slot, header-safe, W=8, MicroPython's checks only",
    );
}

#[test]
fn ab_update_with_large_sectors_and_a_bounded_buffer_survives_every_power_cut() {
    // 128 KiB sectors, a 4 KiB buffer: each sector is erased, then
    // programmed a buffer at a time as the stream arrives.
    let (previous, old, new) = ab_images(80);
    let c = ab_campaign::<4, LARGE>(&old, &new, &previous);
    report("A/B full update, 128 KiB sectors, 4 KiB buffer (W=4)", &c);
    // Pieces of a sector, not whole sectors: many programs per erase.
    assert!(c.ops_per_update as usize >= new.len() / BOUNDED_BUF);
    assert_eq!(c.cut_points, c.ops_per_update * 5);
}

#[test]
fn single_slot_with_large_sectors_and_a_bounded_buffer_never_mounts_a_corrupt_image() {
    // Checksummed images, our verified reader.
    single_checksummed_campaign::<LARGE>(83, "single slot, 128 KiB sectors, 4 KiB buffer, W=4");
    // Header-safe images and only MicroPython's checks.
    single_header_safe_campaign::<8, LARGE>(
        85,
        "single slot, 128 KiB sectors, 4 KiB buffer, header-safe, W=8, MicroPython's checks only",
    );
}

/// OLD and NEW of a realistic app update for the delta campaigns: one
/// module edited, one grown (later data moves), config.py's version.
fn delta_pair(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let files = app_files(seed, 40, 1);
    let mut changed = app_files(seed, 40, 2);
    changed[2].1[50] ^= 0x33;
    changed[4].1.extend(vec![b'#'; 1024]);
    (build(&files, 1, None), build(&changed, 2, None))
}

#[test]
fn ab_delta_update_survives_every_power_cut() {
    let previous = build(&app_files(90, 36, 0), 0, None);
    let (old, new) = delta_pair(91);
    let patch = romfs_format::delta::diff(&old, &new);
    assert!(patch.len() < new.len() / 4);
    let c = ab_campaign_with::<4, E>(&old, &new, &previous, Install::Delta(&patch));
    report("A/B delta update (W=4)", &c);
    assert!(c.ops_per_update >= 10);
    assert_eq!(c.cut_points, c.ops_per_update * 5);
    assert!(c.recovery_cut_points > c.cut_points);
}

#[test]
fn ab_delta_update_with_large_sectors_and_a_bounded_buffer_survives_every_power_cut() {
    // 128 KiB sectors, a 4 KiB buffer: the sector buffer of the full update.
    let previous = build(&app_files(92, 36, 0), 0, None);
    let (old, new) = delta_pair(93);
    let patch = romfs_format::delta::diff(&old, &new);
    let c = ab_campaign_with::<4, LARGE>(&old, &new, &previous, Install::Delta(&patch));
    report("A/B delta update, 128 KiB sectors, 4 KiB buffer (W=4)", &c);
    assert!(c.ops_per_update as usize >= new.len() / BOUNDED_BUF);
    assert_eq!(c.cut_points, c.ops_per_update * 5);
}
