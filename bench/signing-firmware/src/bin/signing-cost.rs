//! Signed A/B updates on the emulated core, and what they cost: the peak
//! stack of each operation (mcu-tests' stack painting), with the unsigned
//! updater's figures from the same run beside them, and instruction counts
//! under `qemu-system-arm -icount shift=0` (SysTick, calibrated by a loop
//! of known length, as mcu-tests' crc-speed does; QEMU counts
//! instructions, not cycles). Also checks that the attacks are refused.
//!
//! Prints `stack NAME BYTES`, `instructions NAME COUNT`, one `ok`/`FAIL`
//! line per check and `N passed, M failed`; exits non-zero on a failure.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, Peripherals, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use romfs_embedded::mapped;
use romfs_embedded::update::TrustPolicy;
use romfs_embedded::{AbLayout, Region, UpdateError, Updater, Verify};
use romfs_format::crc32;
use romfs_format::signature::SignedManifest;
use romfs_mcu_tests::nor::{FlashError, RamNorFlash};
use romfs_mcu_tests::semihosting::exit;
use romfs_mcu_tests::stack;
use romfs_signing_firmware::{manifest_of, other_product, policy, v1, v1_to_v2, v2};

const SECTOR: usize = 256;
const SLOT_SECTORS: usize = 8;
const FLASH_BYTES: usize = 2 * SLOT_SECTORS * SECTOR;
type Flash = RamNorFlash<'static, 4, 8, SECTOR>;

static mut FLASH: [u8; FLASH_BYTES] = [0; FLASH_BYTES];
static mut PROGRAMMED: [u8; FLASH_BYTES / 8 / 8] = [0; FLASH_BYTES / 8 / 8];
static mut BUF: [u8; 2 * SECTOR] = [0; 2 * SECTOR];

/// SysTick reloads since the counter was started.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // Single core, and main only reads it: no read-modify-write race.
    WRAPS.store(WRAPS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

const RELOAD: u32 = 0x00ff_ffff;

/// SysTick ticks `f` took, across counter wraps.
fn ticks(syst: &mut SYST, f: impl FnOnce()) -> u64 {
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    // The counter reads 0 until its first reload.
    while SYST::get_current() == 0 {}
    WRAPS.store(0, Ordering::Relaxed);
    let start = SYST::get_current();
    f();
    let (wraps, end) = loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let end = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            break (before, end);
        }
    };
    syst.disable_counter();
    syst.disable_interrupt();
    (u64::from(wraps) * u64::from(RELOAD + 1) + u64::from(start)) - u64::from(end)
}

/// Converts SysTick ticks to instructions.
struct Clock {
    syst: SYST,
    /// Ticks per 1,000 instructions.
    per_kilo: u64,
}

impl Clock {
    fn new(mut syst: SYST) -> Clock {
        syst.set_clock_source(SystClkSource::Core);
        // Two instructions per iteration.
        let loops: u32 = 200_000;
        let t = ticks(&mut syst, || unsafe {
            // SAFETY: a register-only countdown loop.
            core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) loops => _)
        });
        Clock {
            syst,
            per_kilo: (t * 1000 / (2 * u64::from(loops))).max(1),
        }
    }

    /// Run `f`; report and return its instruction count.
    fn count<R>(&mut self, name: &str, f: impl FnOnce() -> R) -> R {
        let mut result = None;
        let t = ticks(&mut self.syst, || result = Some(f()));
        hprintln!("instructions {} {}", name, t * 1000 / self.per_kilo);
        match result {
            Some(r) => r,
            None => unreachable!("ticks() runs f"),
        }
    }
}

/// Peak stack per named operation.
struct Peaks {
    names: [&'static str; 16],
    bytes: [usize; 16],
    len: usize,
}

impl Peaks {
    fn measure<R>(&mut self, name: &'static str, f: impl FnOnce() -> R) -> R {
        let (result, used) = stack::measure(f);
        let i = match self.names[..self.len].iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names[self.len] = name;
                self.len += 1;
                self.len - 1
            }
        };
        self.bytes[i] = self.bytes[i].max(used);
        result
    }
}

type Result<T> = core::result::Result<T, UpdateError<FlashError>>;
/// Whether an update failed as it should.
type Expected = fn(&UpdateError<FlashError>) -> bool;

fn layout() -> Option<AbLayout> {
    let slot = (SLOT_SECTORS * SECTOR) as u32;
    AbLayout::new(Region::new(0, slot), Region::new(slot, slot), SECTOR, 8).ok()
}

/// An A/B update of `image` in 300-byte chunks, signed per `policy` (and
/// with its manifest sent first) or not, the stack of each call measured.
///
/// The updater stays in one place of this frame, as the README shows it:
/// started there (`begin_ab_in`) and driven where it is by the `_in_place`
/// forms, so that no step copies it (a copy per step is more than the
/// Cortex-M0's 16 KiB of RAM could hold beside a signature check).
#[inline(never)]
fn update(
    peaks: &mut Peaks,
    flash: &mut Flash,
    buf: &mut [u8],
    image: &[u8],
    signed: Option<(TrustPolicy, Option<&[u8]>)>,
) -> Result<()> {
    let Some(layout) = layout() else {
        return Err(UpdateError::Aborted);
    };
    let mut slot = None;
    match signed {
        None => peaks.measure("unsigned.begin_ab", || {
            Updater::begin_ab_in(&mut slot, &mut *flash, layout, Verify::Full, buf)?;
            Ok::<_, UpdateError<FlashError>>(())
        })?,
        Some((policy, manifest)) => {
            peaks.measure("signed.begin_ab+require_signature", || {
                begin_signed(&mut slot, &mut *flash, buf, layout, policy)
            })?;
            if let Some(m) = manifest {
                peaks.measure("signed.with_manifest", || hand_over_manifest(&mut slot, m))?;
            }
        }
    }
    let (write, finish) = match signed {
        None => ("unsigned.write", "unsigned.finish"),
        Some((_, Some(_))) => ("signed.write", "signed.finish(manifest-sent-first)"),
        Some((_, None)) => ("signed.write", "signed.finish(manifest-in-stream)"),
    };
    for chunk in image.chunks(300) {
        peaks.measure(write, || match slot.as_mut() {
            Some(up) => up.write(chunk),
            None => Err(UpdateError::Aborted),
        })?;
    }
    peaks.measure(finish, || match slot.as_mut() {
        Some(up) => up.finish_in_place(None).map(|_| ()),
        None => Err(UpdateError::Aborted),
    })
}

/// A signed A/B delta update: `patch` applied to the running image, the
/// result's manifest sent first, the stack of each call measured.
#[inline(never)]
fn update_delta(
    peaks: &mut Peaks,
    flash: &mut Flash,
    buf: &mut [u8],
    patch: &[u8],
    policy: TrustPolicy,
    manifest: &[u8],
) -> Result<()> {
    let Some(layout) = layout() else {
        return Err(UpdateError::Aborted);
    };
    let mut slot = None;
    begin_signed(&mut slot, flash, buf, layout, policy)?;
    hand_over_manifest(&mut slot, manifest)?;
    let Some(up) = slot.as_mut() else {
        return Err(UpdateError::Aborted);
    };
    let mut delta = peaks.measure("signed.delta", || up.delta())?;
    for chunk in patch.chunks(300) {
        peaks.measure("signed.delta.write", || delta.write(chunk))?;
    }
    peaks
        .measure("signed.delta.finish", || delta.finish(None))
        .map(|_| ())
}

/// Attacks on the running v2: each refused, and the flash unchanged as the
/// manifest comes first. A function of its own: the updaters it starts
/// would otherwise take space in `main`'s frame for the whole run.
#[inline(never)]
fn attacks(
    flash: &mut Flash,
    buf: &mut [u8],
    policy: TrustPolicy,
    check: &mut impl FnMut(&str, bool),
) {
    // Attacks: refused, and the flash does not change when the manifest
    // comes first.
    let before = crc32::checksum(flash.bytes());
    let mut forged = [0u8; 160];
    forged.copy_from_slice(manifest_of(v2()));
    forged[159] ^= 1;
    let cases: [(&str, &[u8], Expected); 3] = [
        ("a forged signature is refused", &forged, |e| {
            matches!(e, UpdateError::BadSignature)
        }),
        (
            "a replayed older generation is refused",
            manifest_of(v1()),
            |e| matches!(e, UpdateError::Rollback { .. }),
        ),
        (
            "another product's image is refused",
            manifest_of(other_product()),
            |e| matches!(e, UpdateError::WrongProduct),
        ),
    ];
    for (name, manifest, expected) in cases {
        let mut slot = None;
        let r = begin_signed(
            &mut slot,
            &mut *flash,
            &mut *buf,
            layout().unwrap_or_else(|| exit(false)),
            policy,
        )
        .and_then(|()| hand_over_manifest(&mut slot, manifest));
        let refused = matches!(&r, Err(e) if expected(e));
        check(name, refused && crc32::checksum(flash.bytes()) == before);
    }
}

/// Start a signed A/B update into `slot`. Functions of their own (this and
/// [`hand_over_manifest`]), so that the updaters of their steps do not
/// stay in their callers' frames.
#[inline(never)]
fn begin_signed<'b>(
    slot: &mut Option<Updater<'b, &'b mut Flash>>,
    flash: &'b mut Flash,
    buf: &'b mut [u8],
    layout: AbLayout,
    policy: TrustPolicy,
) -> Result<()> {
    Updater::begin_ab_in(slot, flash, layout, Verify::Full, buf)?.require_signature_in_place(policy)
}

/// Hand the signed manifest over to the update in `slot`.
#[inline(never)]
fn hand_over_manifest(slot: &mut Option<Updater<'_, &mut Flash>>, manifest: &[u8]) -> Result<()> {
    slot.as_mut()
        .ok_or(UpdateError::Aborted)?
        .with_manifest_in_place(manifest)
}

/// The image the flash would boot.
fn active(flash: &Flash) -> Option<&[u8]> {
    let layout = layout()?;
    mapped::mount_ab(flash.bytes(), &layout, Verify::Full)
        .ok()
        .map(|(_, fs)| fs.image().bytes())
}

#[entry]
fn main() -> ! {
    let Some(p) = Peripherals::take() else {
        exit(false)
    };
    let mut clock = Clock::new(p.SYST);
    // SAFETY: main runs once; these are its only references to the buffers.
    let (bytes, programmed, buf) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(FLASH),
            &mut *core::ptr::addr_of_mut!(PROGRAMMED),
            &mut *core::ptr::addr_of_mut!(BUF),
        )
    };
    let (Some(mut flash), Some(policy)) = (Flash::new(bytes, programmed), policy()) else {
        hprintln!("FAIL set-up");
        exit(false)
    };
    hprintln!(
        "signed updates: images of {} and {} bytes, {} bytes of free stack",
        v1().len(),
        v2().len(),
        stack::free()
    );
    let mut peaks = Peaks {
        names: [""; 16],
        bytes: [0; 16],
        len: 0,
    };
    let (mut passed, mut failed) = (0, 0);
    let mut check = |name: &str, ok: bool| {
        hprintln!("{} {}", if ok { "ok  " } else { "FAIL" }, name);
        if ok {
            passed += 1
        } else {
            failed += 1
        }
    };

    // The cryptography alone.
    let signed = SignedManifest::parse(manifest_of(v1()));
    let trusted = signed.is_ok_and(|s| {
        peaks
            .measure("TrustPolicy::check", || {
                clock.count("TrustPolicy::check", || policy.check::<()>(&s, None))
            })
            .is_ok()
    });
    check("v1's manifest verifies", trusted);
    let image = v2();
    let digest = peaks.measure("sha256", || {
        clock.count("sha256-of-v2", || hmac_sha256::Hash::hash(image))
    });
    hprintln!("bytes sha256-of-v2 {}", image.len());
    check("SHA-256 of v2 computed", digest[..] != [0; 32]);

    // The unsigned updater, for comparison: v1 then v2 into blank flash.
    flash.erase_all();
    let r = update(&mut peaks, &mut flash, buf, v1(), None);
    check(
        "unsigned update of v1",
        r.is_ok() && active(&flash) == Some(v1()),
    );
    let r = clock.count("unsigned-update-of-v2", || {
        update(&mut peaks, &mut flash, buf, v2(), None)
    });
    check(
        "unsigned update of v2",
        r.is_ok() && active(&flash) == Some(v2()),
    );

    // Signed: v1 checked at the end of the stream, v2 with its manifest first.
    flash.erase_all();
    let r = update(&mut peaks, &mut flash, buf, v1(), Some((policy, None)));
    check(
        "signed update of v1 (manifest in the stream)",
        r.is_ok() && active(&flash) == Some(v1()),
    );
    let r = clock.count("signed-update-of-v2", || {
        update(
            &mut peaks,
            &mut flash,
            buf,
            v2(),
            Some((policy, Some(manifest_of(v2())))),
        )
    });
    check(
        "signed update of v2 (manifest first)",
        r.is_ok() && active(&flash) == Some(v2()),
    );

    // Signed delta: v1 runs, the patch makes v2.
    flash.erase_all();
    let r = update(&mut peaks, &mut flash, buf, v1(), Some((policy, None)));
    let r = r.and_then(|()| {
        update_delta(
            &mut peaks,
            &mut flash,
            buf,
            v1_to_v2(),
            policy,
            manifest_of(v2()),
        )
    });
    check(
        "signed delta update from v1 to v2 (manifest first)",
        r.is_ok() && active(&flash) == Some(v2()),
    );

    attacks(&mut flash, buf, policy, &mut check);
    check("v2 still runs", active(&flash) == Some(v2()));

    for (name, bytes) in peaks.names.iter().zip(peaks.bytes).take(peaks.len) {
        hprintln!("stack {} {}", name, bytes);
    }
    hprintln!("{} passed, {} failed", passed, failed);
    exit(failed == 0)
}
