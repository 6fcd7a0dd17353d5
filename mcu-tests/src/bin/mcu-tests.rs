//! romfs-embedded on the target: see the crate docs. Prints one line per
//! test, the peak stack of each operation (`stack NAME BYTES`), and
//! `N passed, M failed`; exits non-zero on any failure, panic or fault.

#![no_std]
#![no_main]

use core::fmt::Debug;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use romfs_embedded::mapped::MappedFs;
use romfs_embedded::{AbLayout, Error, Region, UpdateError};
use romfs_format::crc32;
use romfs_format::delta::DeltaError;
use romfs_format::Checksum;
use romfs_mcu_tests::nor::{FlashError, RamNorFlash, ReadFlash};
use romfs_mcu_tests::ops::{self, Meter, Op};
use romfs_mcu_tests::semihosting::exit;
use romfs_mcu_tests::{content, images, stack, user};
use zerocopy::little_endian::U32;

/// Reads in 4-byte units, writes in 8, erases 256-byte sectors.
type Flash = RamNorFlash<'static, 4, { content::WRITE_SIZE }, 256>;
const SECTOR: u32 = 256;
const FLASH_BYTES: usize = 24 * SECTOR as usize;
/// The non-mapped reader's buffer: a few `READ_SIZE` units.
const READ_BUF: usize = 16;

static mut FLASH: [u8; FLASH_BYTES] = [0; FLASH_BYTES];
static mut PROGRAMMED: [u8; FLASH_BYTES / 8 / 8] = [0; FLASH_BYTES / 8 / 8];
/// The updater's sector buffer: two sectors (single slot needs both).
static mut UPDATE_BUF: [u8; 2 * SECTOR as usize] = [0; 2 * SECTOR as usize];

/// A test failed; what and where was printed already.
struct Failed;
type Outcome = Result<(), Failed>;
type Test = fn(&mut Ctx) -> Outcome;
type CrcUpdate = fn(u32, &[u8]) -> u32;

macro_rules! fail {
    ($($what:tt)+) => {{
        hprintln!("    line {}: {}", line!(), format_args!($($what)+));
        return Err(Failed);
    }};
}

macro_rules! ensure {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            hprintln!("    line {}: {}", line!(), format_args!($($what)+));
            return Err(Failed);
        }
    };
}

/// The value, or print the error and fail.
fn ok<T, E: Debug>(r: Result<T, E>, line: u32, what: &str) -> Result<T, Failed> {
    r.map_err(|e| {
        hprintln!("    line {}: {}: {:?}", line, what, e);
        Failed
    })
}

macro_rules! ok {
    ($r:expr, $what:expr) => {
        ok($r, line!(), $what)?
    };
}

/// Records the deepest stack each operation reached.
struct StackMeter {
    peaks: [usize; Op::ALL.len()],
}

impl Meter for StackMeter {
    fn run<R>(&mut self, op: Op, f: impl FnOnce() -> R) -> R {
        let (result, used) = stack::measure(f);
        if let Some(i) = Op::ALL.iter().position(|o| *o == op) {
            self.peaks[i] = self.peaks[i].max(used);
        }
        result
    }
}

struct Ctx {
    meter: StackMeter,
    flash: Flash,
    buf: &'static mut [u8],
}

#[entry]
fn main() -> ! {
    // SAFETY: reading the read-only CPUID base register.
    let cpu = (unsafe { (*cortex_m::peripheral::CPUID::PTR).base.read() } >> 4) & 0xfff;
    let core = match cpu {
        0xc20 => "Cortex-M0",
        0xc60 => "Cortex-M0+",
        0xc23 => "Cortex-M3",
        0xc24 => "Cortex-M4",
        _ => "unknown core",
    };
    hprintln!(
        "romfs mcu-tests on {} (part {:#x}), CRC-32 {}, {} bytes of free stack",
        core,
        cpu,
        crc32::IMPLEMENTATION,
        stack::free()
    );
    // SAFETY: main runs once; these are its only references to the buffers.
    let (bytes, programmed, buf) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(FLASH),
            &mut *core::ptr::addr_of_mut!(PROGRAMMED),
            &mut *core::ptr::addr_of_mut!(UPDATE_BUF),
        )
    };
    let Some(flash) = Flash::new(bytes, programmed) else {
        hprintln!("bad flash geometry");
        exit(false)
    };
    let mut cx = Ctx {
        meter: StackMeter {
            peaks: [0; Op::ALL.len()],
        },
        flash,
        buf,
    };
    let tests: [(&str, Test); 11] = [
        ("crc32 implementations agree", crc_agrees),
        ("mapped mount and open", mapped_read),
        (
            "typed views: aligned, refused, unaligned types",
            typed_views,
        ),
        ("non-mapped reader, 16-byte buffer", flash_read),
        ("corrupt and truncated images are refused", corrupt_images),
        ("A/B update, odd chunks", ab_update),
        ("A/B error paths keep the active slot", ab_errors),
        ("A/B delta update, odd chunks", delta_update),
        ("delta error paths keep the active slot", delta_errors),
        ("single-slot update, odd chunks", single_update),
        ("single-slot error paths", single_errors),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        cx.flash.erase_all();
        match test(&mut cx) {
            Ok(()) => {
                hprintln!("ok   {}", name);
                passed += 1;
            }
            Err(Failed) => {
                hprintln!("FAIL {}", name);
                failed += 1;
            }
        }
    }
    for (op, peak) in Op::ALL.iter().zip(cx.meter.peaks) {
        hprintln!("stack {} {}", op.name(), peak);
    }
    hprintln!("{} passed, {} failed", passed, failed);
    exit(failed == 0)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("FAIL hard fault at pc {:#010x}", frame.pc());
    exit(false)
}

/// Every CRC-32 implementation on this core gives the chosen one's result.
fn crc_agrees(_: &mut Ctx) -> Outcome {
    ensure!(crc32::checksum(b"123456789") == 0xCBF4_3926, "check value");
    let data = images::main();
    let want = crc32::checksum(data);
    let impls: [(&str, CrcUpdate); 3] = [
        ("table-free", crc32::update_table_free),
        ("small table", crc32::update_small_table),
        ("table", crc32::update_table),
    ];
    for (name, update) in impls {
        let (head, tail) = data.split_at(data.len() / 3);
        ensure!(update(update(0, head), tail) == want, "{} differs", name);
    }
    Ok(())
}

/// `data` lies inside `image` (a zero-copy slice of it).
fn inside(data: &[u8], image: &[u8]) -> bool {
    let (d, i) = (data.as_ptr() as usize, image.as_ptr() as usize);
    d >= i && d + data.len() <= i + image.len()
}

fn blob_matches(data: &[u8], offset: usize) -> bool {
    data.iter()
        .enumerate()
        .all(|(i, &b)| b == content::byte(content::BLOB_SEED, offset + i))
}

fn mapped_read(cx: &mut Ctx) -> Outcome {
    let m = &mut cx.meter;
    let image = images::main();
    let fs = ok!(ops::mapped_mount(m, image), "mount");
    let hello = ok!(ops::mapped_open(m, &fs, b"hello.txt"), "open hello.txt");
    ensure!(hello == content::HELLO, "hello.txt: {:?}", hello);
    ensure!(inside(hello, image), "hello.txt is not a slice of flash");
    let util = ok!(
        ops::mapped_open(m, &fs, b"/lib/util.py"),
        "open /lib/util.py"
    );
    ensure!(util == content::UTIL_PY, "util.py");
    let blob = ok!(ops::mapped_open(m, &fs, b"lib/deep/blob.bin"), "open blob");
    ensure!(
        blob.len() == content::BLOB_LEN && blob_matches(blob, 0),
        "blob.bin contents"
    );
    let dir = ops::mapped_open(m, &fs, b"lib/deep");
    ensure!(dir == Err(Error::IsDir), "a folder opened: {:?}", dir);
    for missing in [
        &b"nope"[..],
        b"hello.txt/x",
        b"lib/deep/blob.bin/",
        b"lib/util",
    ] {
        let r = ops::mapped_open(m, &fs, missing);
        ensure!(r == Err(Error::NotFound), "{:?}: {:?}", missing, r);
    }
    let checksum = fs.image().checksum();
    ensure!(
        matches!(checksum, Checksum::Valid(_)),
        "checksum {:?}",
        checksum
    );
    Ok(())
}

fn typed_views(cx: &mut Ctx) -> Outcome {
    let m = &mut cx.meter;
    let fs = ok!(ops::mapped_mount(m, images::main()), "mount");
    let raw = ok!(ops::mapped_open(m, &fs, b"table.u32"), "open table.u32");
    ensure!(
        (raw.as_ptr() as usize).is_multiple_of(16),
        "table.u32 is not aligned"
    );
    let table = ok!(
        ops::mapped_open_typed::<u32>(m, &fs, b"table.u32"),
        "table.u32 as [u32]"
    );
    ensure!(table.len() == content::TABLE_WORDS, "table length");
    ensure!(inside(raw, images::main()), "table is not a slice of flash");
    for (i, &w) in table.iter().enumerate() {
        ensure!(w == content::word(i, false), "table[{}] = {:#x}", i, w);
    }
    let wide = ok!(ops::view::<u64>(m, raw), "table.u32 as [u64]");
    ensure!(wide.len() == content::TABLE_WORDS / 2, "u64 view length");

    let raw = ok!(ops::mapped_open(m, &fs, b"odd.u32"), "open odd.u32");
    let address = raw.as_ptr() as usize;
    ensure!(address % 2 == 1, "odd.u32 is at an even address");
    let refused = ops::mapped_open_typed::<u32>(m, &fs, b"odd.u32");
    ensure!(
        refused == Err(Error::Misaligned { address, align: 4 }),
        "misaligned u32 view: {:?}",
        refused.map(<[u32]>::len)
    );
    let refused = ops::view::<u16>(m, raw);
    ensure!(
        matches!(refused, Err(Error::Misaligned { align: 2, .. })),
        "misaligned u16 view: {:?}",
        refused.map(<[u16]>::len)
    );
    // Little-endian wrapper types have alignment 1: a view at any address,
    // read with byte loads (the Cortex-M0 faults on an unaligned word load).
    let odd = ok!(
        ops::mapped_open_typed::<U32>(m, &fs, b"odd.u32"),
        "odd.u32 as [U32]"
    );
    ensure!(odd.len() == content::ODD_WORDS, "odd length");
    for (i, w) in odd.iter().enumerate() {
        ensure!(w.get() == content::word(i, true), "odd[{}]", i);
    }
    let seven = ops::mapped_open_typed::<u32>(m, &fs, b"seven.bin");
    ensure!(
        seven == Err(Error::WrongSize { len: 7, elem: 4 }),
        "7 bytes as u32: {:?}",
        seven.map(<[u32]>::len)
    );
    Ok(())
}

fn flash_read(cx: &mut Ctx) -> Outcome {
    let m = &mut cx.meter;
    let mapped = ok!(MappedFs::mount(images::main()), "mapped mount");
    let flash = ReadFlash::<4>::new(images::main());
    let mut fs = ok!(
        ops::flash_mount::<_, READ_BUF>(m, flash),
        "non-mapped mount"
    );
    let hello = ok!(ops::flash_lookup(m, &mut fs, b"/hello.txt"), "lookup");
    let Some(hello) = hello else {
        fail!("hello.txt not found")
    };
    let mut out = [0u8; 67];
    let n = ok!(ops::flash_read(m, &mut fs, &hello, 0, &mut out), "read");
    ensure!(&out[..n] == content::HELLO, "hello.txt: {:?}", &out[..n]);

    let blob = ok!(
        ops::flash_lookup(m, &mut fs, b"lib/deep/blob.bin"),
        "lookup blob"
    );
    let Some(blob) = blob else {
        fail!("blob.bin not found")
    };
    ensure!(
        blob.size() == content::BLOB_LEN,
        "blob size {}",
        blob.size()
    );
    // Odd offsets and lengths, through the 16-byte buffer and around it.
    let (mut offset, mut len) = (0usize, 1usize);
    while offset < content::BLOB_LEN {
        let n = ok!(
            ops::flash_read(m, &mut fs, &blob, offset, &mut out[..len]),
            "read blob"
        );
        let want = len.min(content::BLOB_LEN - offset);
        ensure!(n == want, "read {} at {}: got {}", len, offset, n);
        ensure!(blob_matches(&out[..n], offset), "blob bytes at {}", offset);
        offset += n;
        len = len % 61 + 7;
    }
    let mut big = [0u8; 600];
    let n = ok!(ops::flash_read(m, &mut fs, &blob, 0, &mut big), "big read");
    ensure!(n == 600 && blob_matches(&big, 0), "600-byte read");
    let past = ok!(
        ops::flash_read(m, &mut fs, &blob, 5000, &mut out),
        "read past end"
    );
    ensure!(past == 0, "read past the end gave {}", past);

    let deep = ok!(ops::flash_lookup(m, &mut fs, b"lib/deep"), "lookup dir");
    ensure!(deep.is_some_and(|d| d.is_dir()), "lib/deep is not a folder");
    for missing in [&b"nope"[..], b"hello.txt/x", b"lib/util"] {
        let r = ok!(ops::flash_lookup(m, &mut fs, missing), "lookup missing");
        ensure!(r.is_none(), "{:?} found", missing);
    }
    let want = mapped.image().checksum();
    let got = ok!(ops::flash_checksum(m, &mut fs), "checksum");
    ensure!(
        got == want && matches!(got, Checksum::Valid(_)),
        "checksum {:?}, mapped {:?}",
        got,
        want
    );
    Ok(())
}

fn corrupt_images(cx: &mut Ctx) -> Outcome {
    let m = &mut cx.meter;
    let image = images::main();
    let blob_at = {
        let fs = ok!(MappedFs::mount(image), "mount");
        let blob = ok!(fs.open(b"lib/deep/blob.bin"), "open blob");
        blob.as_ptr() as usize - image.as_ptr() as usize
    };
    // One bit flipped in a file: both readers see the checksum fail.
    let bytes = cx.flash.bytes_mut();
    bytes[..image.len()].copy_from_slice(image);
    bytes[blob_at + 100] ^= 0x04;
    let corrupt = &cx.flash.bytes()[..image.len()];
    let fs = ok!(ops::mapped_mount(m, corrupt), "mount corrupt");
    let c = fs.image().checksum();
    ensure!(
        matches!(c, Checksum::Mismatch { .. }),
        "mapped checksum {:?}",
        c
    );
    let mut ffs = ok!(
        ops::flash_mount::<_, READ_BUF>(m, ReadFlash::<4>::new(corrupt)),
        "non-mapped mount corrupt"
    );
    let c = ok!(ops::flash_checksum(m, &mut ffs), "checksum");
    ensure!(
        matches!(c, Checksum::Mismatch { .. }),
        "non-mapped checksum {:?}",
        c
    );
    // Cut short: the declared length runs past the flash.
    let short = &image[..(image.len() - 8) & !3];
    let r = ops::mapped_mount(m, short);
    ensure!(r.is_err(), "a truncated image mounted");
    let r = ops::flash_mount::<_, READ_BUF>(m, ReadFlash::<4>::new(short));
    ensure!(r.is_err(), "a truncated image mounted (non-mapped)");
    // Not an image at all.
    let r = ops::flash_mount::<_, READ_BUF>(m, ReadFlash::<4>::new(&[0xff; 64]));
    ensure!(r.is_err(), "erased flash mounted");
    Ok(())
}

/// How an image is streamed to the updater.
struct Stream {
    image: &'static [u8],
    /// Flip a bit of the byte at this offset.
    flip_at: Option<usize>,
    /// Send only this many bytes of the image.
    len: usize,
    /// Then this many bytes more.
    extra: usize,
    /// Where in [`CHUNKS`] to start.
    first_chunk: usize,
}

impl Stream {
    fn whole(image: &'static [u8], first_chunk: usize) -> Self {
        Stream {
            image,
            flip_at: None,
            len: image.len(),
            extra: 0,
            first_chunk,
        }
    }

    /// The image with a bit flipped in the byte at offset `at`.
    fn flipped(image: &'static [u8], at: usize, first_chunk: usize) -> Self {
        Stream {
            flip_at: Some(at),
            ..Stream::whole(image, first_chunk)
        }
    }

    /// The first `len` bytes of the image only.
    fn cut(image: &'static [u8], len: usize, first_chunk: usize) -> Self {
        Stream {
            len,
            ..Stream::whole(image, first_chunk)
        }
    }

    /// The image and `extra` bytes more.
    fn too_long(image: &'static [u8], extra: usize, first_chunk: usize) -> Self {
        Stream {
            extra,
            ..Stream::whole(image, first_chunk)
        }
    }
}

/// `Stream::first_chunk` for chunks as large as `feed`'s buffer (a small
/// patch in one).
const WHOLE: usize = usize::MAX;

/// Chunk sizes the stream cycles through: odd, and across sector ends.
const CHUNKS: [usize; 8] = [1, 7, 61, 3, 255, 13, 509, 2];

/// Stream `s` through `write` (an image to an updater, or a patch to a
/// delta updater).
fn feed<E>(
    m: &mut StackMeter,
    s: &Stream,
    mut write: impl FnMut(&mut StackMeter, &[u8]) -> Result<(), UpdateError<E>>,
) -> Result<(), UpdateError<E>> {
    let mut chunk = [0u8; 509];
    let total = s.len + s.extra;
    let (mut pos, mut k) = (0, s.first_chunk);
    while pos < total {
        let size = match s.first_chunk {
            WHOLE => chunk.len(),
            _ => CHUNKS[k % CHUNKS.len()],
        };
        let n = size.min(total - pos);
        k = k.wrapping_add(1);
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            let p = pos + i;
            *b = s.image.get(p).copied().unwrap_or(0xa5);
            if s.flip_at == Some(p) {
                *b ^= 0x10;
            }
        }
        write(m, &chunk[..n])?;
        pos += n;
    }
    Ok(())
}

type Update = Result<romfs_embedded::Report, UpdateError<FlashError>>;

/// Write-protect the slot of `layout` that mounts in `cx.flash` (none if
/// none mounts).
fn protect_active(cx: &mut Ctx, layout: &AbLayout) {
    let active = ops::ab_mount_mapped(&mut cx.meter, cx.flash.bytes(), layout)
        .ok()
        .map(|(i, _)| i);
    cx.flash.protect(active.map(|i| {
        let slot = layout.slot(i.index);
        (slot.offset, slot.len)
    }));
}

/// `run(cx)`, and the erases and writes it cost `cx.flash`.
fn erases_and_writes<R>(cx: &mut Ctx, run: impl FnOnce(&mut Ctx) -> R) -> (R, (u32, u32)) {
    let before = cx.flash.counts();
    let result = run(cx);
    let after = cx.flash.counts();
    (
        result,
        (after.erases - before.erases, after.writes - before.writes),
    )
}

/// A whole A/B update of `cx.flash`, with the active slot write-protected.
fn run_ab(cx: &mut Ctx, layout: AbLayout, s: &Stream, expected_id: Option<u32>) -> Update {
    protect_active(cx, &layout);
    let mut up = ops::begin_ab(&mut cx.meter, &mut cx.flash, layout, &mut cx.buf[..])?;
    let fed = feed(&mut cx.meter, s, |m, c| ops::write(m, &mut up, c));
    let result = fed.and_then(|()| ops::finish(&mut cx.meter, up, expected_id));
    cx.flash.protect(None);
    result
}

/// A whole A/B delta update of `cx.flash` from the patch `s`, with the
/// active slot write-protected (copies only read it).
fn run_delta(cx: &mut Ctx, layout: AbLayout, s: &Stream, expected_id: Option<u32>) -> Update {
    protect_active(cx, &layout);
    let result = match ops::begin_ab(&mut cx.meter, &mut cx.flash, layout, &mut cx.buf[..]) {
        Ok(mut update) => ops::delta(&mut cx.meter, &mut update).and_then(|mut up| {
            feed(&mut cx.meter, s, |m, c| ops::delta_write(m, &mut up, c))?;
            ops::delta_finish(&mut cx.meter, up, expected_id)
        }),
        Err(e) => Err(e),
    };
    cx.flash.protect(None);
    result
}

/// The identity a sender would announce for `image`.
fn identity(image: &[u8]) -> Result<u32, Failed> {
    Ok(ok!(romfs_format::Image::parse(image), "parse").identity())
}

fn layout() -> AbLayout {
    let half = FLASH_BYTES as u32 / 2;
    AbLayout::new(
        Region::new(0, half),
        Region::new(half, half),
        SECTOR as usize,
        content::WRITE_SIZE,
    )
    .unwrap_or_else(|e| panic!("layout: {e:?}"))
}

/// The A/B device mounts slot `index` at `generation` holding exactly
/// `image`, both mapped and through the non-mapped reader.
fn expect_active(
    cx: &mut Ctx,
    layout: &AbLayout,
    index: usize,
    generation: u32,
    image: &[u8],
    note: &[u8],
) -> Outcome {
    let m = &mut cx.meter;
    let info = {
        let (info, fs) = ok!(
            ops::ab_mount_mapped(m, cx.flash.bytes(), layout),
            "mapped A/B mount"
        );
        ensure!(
            info.index == index && info.generation == generation,
            "mounted slot {} generation {}, want {} and {}",
            info.index,
            info.generation,
            index,
            generation
        );
        let start = info.region.offset as usize;
        ensure!(
            cx.flash.bytes().get(start..start + image.len()) == Some(image)
                && info.image_len as usize == image.len(),
            "slot {} does not hold the image",
            index
        );
        let got = ok!(ops::mapped_open(m, &fs, b"note.txt"), "open note.txt");
        ensure!(got == note, "note.txt: {:?}", got);
        info
    };
    let (info2, mut fs) = ok!(
        ops::ab_mount_flash::<_, READ_BUF>(m, &mut cx.flash, layout),
        "non-mapped A/B mount"
    );
    ensure!(info2 == info, "non-mapped mount chose {:?}", info2);
    let big = ok!(ops::flash_lookup(m, &mut fs, b"big.bin"), "lookup big.bin");
    let Some(big) = big else {
        fail!("big.bin not found")
    };
    let mut out = [0u8; 45];
    let mut offset = 3;
    while offset < content::BIG_LEN {
        let n = ok!(ops::flash_read(m, &mut fs, &big, offset, &mut out), "read");
        let ok = out[..n]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == content::byte(content::BIG_SEED, offset + i));
        ensure!(n > 0 && ok, "big.bin at {}", offset);
        offset += n;
    }
    Ok(())
}

fn ab_update(cx: &mut Ctx) -> Outcome {
    let layout = layout();
    let none = ops::ab_mount_mapped(&mut cx.meter, cx.flash.bytes(), &layout);
    ensure!(
        matches!(none, Err(Error::NoImage)),
        "erased flash: {:?}",
        none.map(|(info, _)| info)
    );
    let r = ok!(
        run_ab(cx, layout, &Stream::whole(images::v1(), 0), None),
        "update to v1"
    );
    ensure!(
        r.slot.is_some_and(|s| s.index == 0 && s.generation == 1),
        "v1 went to {:?}",
        r.slot
    );
    expect_active(cx, &layout, 0, 1, images::v1(), content::NOTE_V1)?;
    let id = identity(images::v2())?;
    let r = ok!(
        run_ab(cx, layout, &Stream::whole(images::v2(), 3), Some(id)),
        "update to v2"
    );
    ensure!(r.image_id == id, "report image id {:#x}", r.image_id);
    expect_active(cx, &layout, 1, 2, images::v2(), content::NOTE_V2)?;
    // Back to v1: slot A holds it already, only its commit changes.
    let (r, (erases, _)) = erases_and_writes(cx, |cx| {
        run_ab(cx, layout, &Stream::whole(images::v1(), 5), None)
    });
    let r = ok!(r, "update back to v1");
    ensure!(
        r.stats.sectors_programmed == 0 && erases == 1,
        "re-sending v1 cost {:?}",
        r.stats
    );
    expect_active(cx, &layout, 0, 3, images::v1(), content::NOTE_V1)?;
    // The whole sequence as a user writes it (the README's pattern, one
    // function, the driver inlined): its peak stack is budgeted as well.
    let (meter, flash, buf) = (&mut cx.meter, &mut cx.flash, &mut cx.buf[..]);
    let r = ok!(
        meter.run(Op::UserUpdate, || {
            user::update(&mut *flash, layout, buf, images::v2().chunks(100))
        }),
        "update to v2 as a user writes it"
    );
    ensure!(
        r.slot.is_some_and(|s| s.index == 1),
        "v2 went to {:?}",
        r.slot
    );
    expect_active(cx, &layout, 1, 4, images::v2(), content::NOTE_V2)
}

fn ab_errors(cx: &mut Ctx) -> Outcome {
    let layout = layout();
    ok!(
        run_ab(cx, layout, &Stream::whole(images::v2(), 0), None),
        "update to v2"
    );
    expect_active(cx, &layout, 0, 1, images::v2(), content::NOTE_V2)?;
    let v1 = images::v1();
    let big_at = v1.len() / 2;
    let wrong_id = identity(v1)? ^ 1;
    let cases: [(&str, Stream, Option<u32>); 4] = [
        ("corrupt", Stream::flipped(v1, big_at, 1), None),
        (
            "another image expected",
            Stream::whole(v1, 2),
            Some(wrong_id),
        ),
        ("truncated", Stream::cut(v1, v1.len() - 100, 3), None),
        ("too long", Stream::too_long(v1, 3, 4), None),
    ];
    for (what, stream, expected) in cases {
        let r = run_ab(cx, layout, &stream, expected);
        let right = match (what, &r) {
            ("corrupt", Err(UpdateError::ChecksumMismatch { .. })) => true,
            ("another image expected", Err(UpdateError::WrongImage { expected, .. })) => {
                *expected == wrong_id
            }
            (
                "truncated",
                Err(UpdateError::Truncated {
                    received,
                    image_len,
                }),
            ) => *received as usize == v1.len() - 100 && *image_len == Some(v1.len() as u32),
            ("too long", Err(UpdateError::TooLong { image_len })) => {
                *image_len as usize == v1.len()
            }
            _ => false,
        };
        ensure!(right, "{}: {:?}", what, r.map(|r| r.slot));
        expect_active(cx, &layout, 0, 1, images::v2(), content::NOTE_V2)?;
    }
    let r = run_ab(cx, layout, &Stream::whole(b"not an image", 0), None);
    ensure!(
        matches!(r, Err(UpdateError::NotAnImage)),
        "not an image: {:?}",
        r.map(|r| r.slot)
    );
    expect_active(cx, &layout, 0, 1, images::v2(), content::NOTE_V2)?;

    // Slots whose image area (two sectors) is smaller than v1.
    cx.flash.erase_all();
    let small = ok!(
        AbLayout::new(
            Region::new(0, 3 * SECTOR),
            Region::new(3 * SECTOR, 3 * SECTOR),
            SECTOR as usize,
            content::WRITE_SIZE,
        ),
        "small layout"
    );
    let r = run_ab(cx, small, &Stream::whole(v1, 0), None);
    ensure!(
        matches!(r, Err(UpdateError::TooLarge { capacity, .. }) if capacity == 2 * SECTOR),
        "too large: {:?}",
        r.map(|r| r.slot)
    );
    let c = cx.flash.counts();
    ensure!(
        c.erases == 0 && c.writes == 0,
        "a refused image changed flash: {:?}",
        c
    );
    Ok(())
}

fn delta_update(cx: &mut Ctx) -> Outcome {
    let layout = layout();
    ok!(
        run_ab(cx, layout, &Stream::whole(images::v1(), 0), None),
        "update to v1"
    );
    let id = identity(images::v2())?;
    let patch = images::v1_to_v2();
    let r = ok!(
        run_delta(cx, layout, &Stream::whole(patch, 1), Some(id)),
        "delta to v2"
    );
    ensure!(r.image_id == id, "report image id {:#x}", r.image_id);
    expect_active(cx, &layout, 1, 2, images::v2(), content::NOTE_V2)?;
    // And back, the whole patch in one chunk.
    let back = images::v2_to_v1();
    ensure!(back.len() <= 509, "the patch does not fit one chunk");
    ok!(
        run_delta(cx, layout, &Stream::whole(back, WHOLE), None),
        "delta back to v1"
    );
    expect_active(cx, &layout, 0, 3, images::v1(), content::NOTE_V1)
}

fn delta_errors(cx: &mut Ctx) -> Outcome {
    let layout = layout();
    let none = run_delta(cx, layout, &Stream::whole(images::v1_to_v2(), 0), None);
    ensure!(
        matches!(none, Err(UpdateError::NoDeltaBase)),
        "no running image: {:?}",
        none.map(|r| r.slot)
    );
    ok!(
        run_ab(cx, layout, &Stream::whole(images::v1(), 0), None),
        "update to v1"
    );
    let patch = images::v1_to_v2();
    let (r, cost) = erases_and_writes(cx, |cx| {
        run_delta(cx, layout, &Stream::whole(images::v2_to_v1(), 2), None)
    });
    ensure!(
        matches!(r, Err(UpdateError::Delta(DeltaError::WrongBase))),
        "another base: {:?}",
        r.map(|r| r.slot)
    );
    ensure!(cost == (0, 0), "a patch for another base changed flash");
    expect_active(cx, &layout, 0, 1, images::v1(), content::NOTE_V1)?;
    // Patches refused while streamed, v1 still active after each: cut
    // short, the promised identity of the result (header bytes 17..21)
    // altered, not a patch at all.
    let refused = [
        (
            "cut",
            Stream::cut(patch, patch.len() - 1, 3),
            DeltaError::Truncated,
        ),
        (
            "wrong result",
            Stream::flipped(patch, 18, 4),
            DeltaError::WrongResult,
        ),
        (
            "not a patch",
            Stream::flipped(patch, 0, 5),
            DeltaError::BadMagic,
        ),
    ];
    for (case, stream, refusal) in refused {
        let r = run_delta(cx, layout, &stream, None);
        ensure!(
            matches!(r, Err(UpdateError::Delta(e)) if e == refusal),
            "{}: {:?}",
            case,
            r.map(|r| r.slot)
        );
        if expect_active(cx, &layout, 0, 1, images::v1(), content::NOTE_V1).is_err() {
            hprintln!("    after the refused patch: {}", case);
            return Err(Failed);
        }
    }
    Ok(())
}

const SLOT: Region = Region::new(0, 12 * SECTOR);

fn run_single(cx: &mut Ctx, region: Region, s: &Stream, expected_id: Option<u32>) -> Update {
    let mut up = ops::begin_single(&mut cx.meter, &mut cx.flash, region, &mut cx.buf[..])?;
    feed(&mut cx.meter, s, |m, c| ops::write(m, &mut up, c))?;
    ops::finish(&mut cx.meter, up, expected_id)
}

/// The single slot holds exactly `image`, which mounts and checks out.
fn expect_single(cx: &mut Ctx, image: &[u8], note: &[u8]) -> Outcome {
    let m = &mut cx.meter;
    let slot = &cx.flash.bytes()[..SLOT.len as usize];
    let fs = ok!(ops::mapped_mount(m, slot), "mount the slot");
    ensure!(fs.image().bytes() == image, "the slot holds another image");
    let c = fs.image().checksum();
    ensure!(matches!(c, Checksum::Valid(_)), "checksum {:?}", c);
    let got = ok!(ops::mapped_open(m, &fs, b"note.txt"), "open note.txt");
    ensure!(got == note, "note.txt: {:?}", got);
    Ok(())
}

/// After a failed single-slot update the slot holds no image, or `old`
/// intact: never a corrupt one.
fn expect_no_corrupt_image(cx: &mut Ctx, old: &[u8]) -> Outcome {
    let slot = &cx.flash.bytes()[..SLOT.len as usize];
    if let Ok(fs) = ops::mapped_mount(&mut cx.meter, slot) {
        ensure!(
            fs.image().bytes() == old && matches!(fs.image().checksum(), Checksum::Valid(_)),
            "a failed update left a mountable image that is not the old one"
        );
    }
    Ok(())
}

fn single_update(cx: &mut Ctx) -> Outcome {
    let r = ok!(
        run_single(cx, SLOT, &Stream::whole(images::v1(), 0), None),
        "update to v1"
    );
    ensure!(r.header_safe && !r.unchanged, "report {:?}", r);
    expect_single(cx, images::v1(), content::NOTE_V1)?;
    let id = identity(images::v2())?;
    ok!(
        run_single(cx, SLOT, &Stream::whole(images::v2(), 6), Some(id)),
        "update to v2"
    );
    expect_single(cx, images::v2(), content::NOTE_V2)?;
    let (r, cost) = erases_and_writes(cx, |cx| {
        run_single(cx, SLOT, &Stream::whole(images::v2(), 7), None)
    });
    let r = ok!(r, "v2 again");
    ensure!(
        r.unchanged && cost == (0, 0),
        "re-sending v2 changed flash: {:?}",
        r.stats
    );
    expect_single(cx, images::v2(), content::NOTE_V2)
}

fn single_errors(cx: &mut Ctx) -> Outcome {
    ok!(
        run_single(cx, SLOT, &Stream::whole(images::v2(), 0), None),
        "update to v2"
    );
    let v1 = images::v1();
    let r = run_single(cx, SLOT, &Stream::flipped(v1, v1.len() / 2, 1), None);
    ensure!(
        matches!(r, Err(UpdateError::ChecksumMismatch { .. })),
        "corrupt: {:?}",
        r.map(|r| r.image_id)
    );
    expect_no_corrupt_image(cx, images::v2())?;
    let r = run_single(cx, SLOT, &Stream::cut(v1, v1.len() - 1, 2), None);
    ensure!(
        matches!(r, Err(UpdateError::Truncated { .. })),
        "truncated: {:?}",
        r.map(|r| r.image_id)
    );
    expect_no_corrupt_image(cx, images::v2())?;
    // The slot recovers with a good image.
    ok!(
        run_single(cx, SLOT, &Stream::whole(v1, 3), None),
        "update to v1"
    );
    expect_single(cx, v1, content::NOTE_V1)?;

    let ((too_large, unsafe_header), cost) = erases_and_writes(cx, |cx| {
        let too_large = run_single(cx, Region::new(0, 2 * SECTOR), &Stream::whole(v1, 0), None);
        let unsafe_header = run_single(cx, SLOT, &Stream::whole(images::unsafe_header(), 0), None);
        (too_large, unsafe_header)
    });
    ensure!(
        matches!(too_large, Err(UpdateError::TooLarge { capacity, .. }) if capacity == 2 * SECTOR),
        "too large: {:?}",
        too_large.map(|r| r.image_id)
    );
    ensure!(
        matches!(
            unsafe_header,
            Err(UpdateError::HeaderNotSafe { write_size: 8 })
        ),
        "unsafe header: {:?}",
        unsafe_header.map(|r| r.image_id)
    );
    ensure!(cost == (0, 0), "refused images changed flash");
    expect_single(cx, v1, content::NOTE_V1)
}
