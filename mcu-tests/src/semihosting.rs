//! Ending a firmware run under QEMU.

use cortex_m_semihosting::debug;

/// End the run through semihosting, QEMU exiting with success or failure.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Without a debugger that acts on semihosting, the run halts here.
    #[allow(clippy::empty_loop)]
    loop {}
}
