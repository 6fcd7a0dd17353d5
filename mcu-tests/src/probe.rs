//! What every size probe links besides the part it measures: a flash
//! driver for reading, one for reading and writing, and the images, each
//! used once in a way the optimizer cannot see through. `size-baseline`
//! is this alone, so a probe's size minus the baseline's is what the part
//! adds to a firmware that already has its flash drivers.

use core::hint::black_box;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use crate::images;
use crate::nor::{RamNorFlash, ReadFlash};

/// Sector size of the probes' writable flash.
pub const SECTOR: usize = 256;
/// Write unit of the probes' writable flash.
pub const WRITE: usize = 8;
const BYTES: usize = 24 * SECTOR;

static mut RAM: [u8; BYTES] = [0; BYTES];
static mut PROGRAMMED: [u8; BYTES / 8 / 8] = [0; BYTES / 8 / 8];
static mut BUF: [u8; 2 * SECTOR] = [0; 2 * SECTOR];

/// A flash driver as a firmware has one: its methods are not inlined
/// into romfs code, so their size counts once, in the baseline.
#[derive(Debug)]
pub struct Driver<F>(pub F);

impl<F: ErrorType> ErrorType for Driver<F> {
    type Error = F::Error;
}

impl<F: ReadNorFlash> ReadNorFlash for Driver<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    #[inline(never)]
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes)
    }

    #[inline(never)]
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> NorFlash for Driver<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    #[inline(never)]
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to)
    }

    #[inline(never)]
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes)
    }
}

/// Read-only flash holding the main image, read in 4-byte units.
pub type RomFlash = Driver<ReadFlash<'static, 4>>;
/// Writable flash in RAM.
pub type WritableFlash = Driver<RamNorFlash<'static, 4, WRITE, SECTOR>>;

/// What every probe has: the drivers, each used once, and the images.
pub struct Common {
    /// The main image, mapped.
    pub image: &'static [u8],
    /// An update image.
    pub update: &'static [u8],
    /// A delta patch (to `update`'s successor from `update`).
    pub patch: &'static [u8],
    /// The main image behind a driver.
    pub rom: RomFlash,
    /// Writable flash.
    pub flash: WritableFlash,
    /// A buffer of two sectors.
    pub buf: &'static mut [u8],
}

/// Set up what every probe has.
pub fn common() -> Common {
    // SAFETY: called once, at start-up; nothing else refers to these.
    let (ram, programmed, buf) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(RAM),
            &mut *core::ptr::addr_of_mut!(PROGRAMMED),
            &mut *core::ptr::addr_of_mut!(BUF),
        )
    };
    let image = black_box(images::main());
    let update = black_box(images::v1());
    let patch = black_box(images::v1_to_v2());
    let mut rom = Driver(ReadFlash::new(image));
    let mut flash = match RamNorFlash::new(ram, programmed) {
        Some(f) => Driver(f),
        None => panic!(),
    };
    let mut word = [0u8; 8];
    let offset = black_box(0);
    black_box(rom.read(offset, &mut word[..4]).is_ok());
    black_box(flash.erase(offset, offset + SECTOR as u32).is_ok());
    black_box(flash.write(offset, &word).is_ok());
    black_box(flash.read(offset, &mut word[..4]).is_ok());
    black_box(rom.capacity() + flash.capacity());
    black_box(&word);
    Common {
        image,
        update,
        patch,
        rom,
        flash,
        buf: black_box(buf),
    }
}

/// Use `value` in a way the optimizer cannot see through (as a firmware
/// would act on a result), so the code computing it stays.
pub fn sink<T>(value: T) {
    black_box(value);
}

/// A size probe's firmware around the statements of its `main`:
///
/// - `size_probe!(|c| { ... })`: an entry point that sets up [`common`] as
///   `c`, runs the statements and idles, and a panic handler that loops;
/// - `size_probe!(semihosting, |c| { ... })`: the same, panicking through
///   panic-semihosting (the binary depends on it).
///
/// A macro and not a function, so that each probe's code is its own, as a
/// firmware would have it: a shared function changes the figures.
#[macro_export]
macro_rules! size_probe {
    (|$c:pat_param| { $($body:tt)* }) => {
        $crate::size_probe!(@main |$c| { $($body)* });

        #[panic_handler]
        fn panic(_: &::core::panic::PanicInfo) -> ! {
            #[allow(clippy::empty_loop)]
            loop {}
        }
    };
    (semihosting, |$c:pat_param| { $($body:tt)* }) => {
        use panic_semihosting as _;

        $crate::size_probe!(@main |$c| { $($body)* });
    };
    (@main |$c:pat_param| { $($body:tt)* }) => {
        #[cortex_m_rt::entry]
        fn main() -> ! {
            let $c = $crate::probe::common();
            $($body)*
            #[allow(clippy::empty_loop)]
            loop {}
        }
    };
}

/// The A/B layout of the updating probes: two slots of `half` bytes each
/// in the writable flash (`Result<AbLayout, _>`; the binary depends on
/// romfs-embedded). A macro for the same reason as [`size_probe!`].
#[macro_export]
macro_rules! probe_ab_layout {
    ($half:expr) => {
        romfs_embedded::AbLayout::new(
            romfs_embedded::Region::new(0, $half),
            romfs_embedded::Region::new($half, $half),
            $crate::probe::SECTOR,
            $crate::probe::WRITE,
        )
    };
}

/// Stream `data` into the updater `up` in chunks with `write`, commit it
/// with `finish`, and sink whether both succeeded: the updating probes'
/// update, whatever the updater (`m` is the meter). A macro for the same
/// reason as [`size_probe!`].
#[macro_export]
macro_rules! probe_stream {
    ($m:ident, $up:ident, $data:expr, $write:path, $finish:path) => {
        let chunk = ::core::hint::black_box(100);
        let written = $data
            .chunks(chunk)
            .try_for_each(|piece| $write($m, &mut $up, piece));
        $crate::probe::sink(written.and_then(|()| $finish($m, $up, None)).is_ok());
    };
}

/// An updating probe's firmware: an A/B update into the writable flash,
/// then the newest slot mounted (mapped) and a file opened, as a firmware
/// that updates itself and boots from the result, with a looping panic
/// handler. `|c, m, half, layout|` name the [`Common`], the meter
/// ([`Unmetered`](crate::ops::Unmetered)), the slot size and the layout
/// for the parts a probe gives in place of the defaults, each optional, in
/// this order:
///
/// - `before { ... }`: statements after the slot size is set (none);
/// - `if let PATTERN = LAYOUT;`: how the layout is had
///   (`if let Ok(layout) = probe_ab_layout!(half);`);
/// - `update { ... }`: the update (`c.update` streamed into
///   [`ops::begin_ab`](crate::ops::begin_ab)'s updater and committed);
/// - `keep (...);`: what the firmware keeps besides
///   (`keep (c.image, c.rom, c.buf);`);
/// - `after { ... }`: statements at the end (none).
///
/// A macro for the same reason as [`size_probe!`].
#[macro_export]
macro_rules! updating_probe {
    (|$c:ident, $m:ident, $half:ident, $layout:ident| {
        $(before { $($before:tt)* })?
        $(if let $pattern:pat = $layouts:expr;)?
        $(update { $($update:tt)* })?
        $(keep $keep:expr;)?
        $(after { $($after:tt)* })?
    }) => {
        $crate::size_probe!(|mut $c| {
            let $m = &mut $crate::ops::Unmetered;
            let $half = ::core::hint::black_box(12 * $crate::probe::SECTOR as u32);
            $($($before)*)?
            if let $crate::__probe_or!({ $($pattern)? } { Ok($layout) })
                = $crate::__probe_or!({ $($layouts)? } { $crate::probe_ab_layout!($half) })
            {
                $crate::__probe_or! {
                    { $($($update)*)? }
                    {
                        if let Ok(mut up) =
                            $crate::ops::begin_ab($m, &mut $c.flash, $layout, &mut $c.buf[..])
                        {
                            $crate::probe_stream!(
                                $m,
                                up,
                                $c.update,
                                $crate::ops::write,
                                $crate::ops::finish
                            );
                        }
                    }
                }
                let path: &[u8] = ::core::hint::black_box(b"note.txt");
                let opened = $crate::ops::ab_mount_mapped($m, $c.flash.0.bytes(), &$layout)
                    .ok()
                    .and_then(|(_, fs)| $crate::ops::mapped_open($m, &fs, path).ok());
                $crate::probe::sink(opened.map(|d| (d.as_ptr(), d.len())));
            }
            $crate::probe::sink($crate::__probe_or!({ $($keep)? } { ($c.image, $c.rom, $c.buf) }));
            $($($after)*)?
        });
    };
}

/// The user probes' firmware: an A/B update and a mapped mount as a user
/// writes them ([`user`](crate::user)), the flash driver inlined into
/// romfs code; `user_probe!()` panics in a looping handler,
/// `user_probe!(semihosting)` through panic-semihosting (the binary
/// depends on it and on romfs-embedded). A macro for the same reason as
/// [`size_probe!`].
#[macro_export]
macro_rules! user_probe {
    ($($semihosting:ident)?) => {
        $crate::size_probe!($($semihosting,)? |mut c| {
            let half = ::core::hint::black_box(12 * $crate::probe::SECTOR as u32);
            if let Ok(layout) = $crate::probe_ab_layout!(half) {
                let flash = &mut c.flash.0;
                let chunks = c.update.chunks(::core::hint::black_box(100));
                $crate::probe::sink(
                    $crate::user::update(&mut *flash, layout, &mut c.buf[..], chunks).is_ok(),
                );
                let path: &[u8] = ::core::hint::black_box(b"note.txt");
                let opened = romfs_embedded::mapped::mount_ab(
                    flash.bytes(),
                    &layout,
                    romfs_embedded::Verify::CommitOnly,
                )
                .ok()
                .and_then(|(_, fs)| fs.open(path).ok());
                $crate::probe::sink(opened.map(|d| (d.as_ptr(), d.len())));
            }
            $crate::probe::sink((c.image, c.rom, c.buf));
        });
    };
}

/// The tokens in the first braces, or those in the second when the first
/// are empty: a probe's part, or the default.
#[doc(hidden)]
#[macro_export]
macro_rules! __probe_or {
    ({} { $($default:tt)* }) => { $($default)* };
    ({ $($given:tt)+ } { $($default:tt)* }) => { $($given)+ };
}
