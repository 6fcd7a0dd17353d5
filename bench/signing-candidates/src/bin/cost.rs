#![no_std]
#![no_main]
use core::hint::black_box;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use romfs_mcu_tests::stack;
#[cortex_m_rt::entry]
fn main() -> ! {
    let (ok, used) = stack::measure(|| {
        romfs_signing_candidates::verify(
            black_box(&romfs_signing_candidates::PK),
            black_box(&romfs_signing_candidates::MSG),
            black_box(&romfs_signing_candidates::SIG),
        )
    });
    let mut bad = romfs_signing_candidates::SIG;
    bad[0] ^= 1;
    let (ok2, _) = stack::measure(|| {
        romfs_signing_candidates::verify(
            black_box(&romfs_signing_candidates::PK),
            black_box(&romfs_signing_candidates::MSG),
            black_box(&bad),
        )
    });
    let (_, sused) =
        stack::measure(|| romfs_signing_candidates::sha(black_box(&romfs_signing_candidates::SIG)));
    #[cfg(feature = "compact")]
    {
        use romfs_signing_candidates::compact_split as c;
        let (st, s1) = stack::measure(|| {
            c::start(
                black_box(&romfs_signing_candidates::PK),
                black_box(&romfs_signing_candidates::SIG),
            )
        });
        if let Some(mut st) = st {
            let msg = black_box(&romfs_signing_candidates::MSG);
            let (_, s2) = stack::measure(|| c::absorb(&mut st, msg));
            let (ok, s3) = stack::measure(|| c::end(&st));
            hprintln!(
                "steps: decode {} absorb {} equation {} ok {}",
                s1,
                s2,
                s3,
                ok
            );
        }
    }
    hprintln!(
        "verify ok={} bad-refused={} stack {} sha-stack {} free {}",
        ok,
        !ok2,
        used,
        sused,
        stack::free()
    );
    debug::exit(if ok && !ok2 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {}
}
