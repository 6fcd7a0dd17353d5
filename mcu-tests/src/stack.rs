//! Peak stack of an operation, measured by painting: every word between
//! the bottom of the stack and the current stack pointer is set to a
//! pattern, the operation runs, and the lowest word no longer holding the
//! pattern is how deep it went.

use core::sync::atomic::{compiler_fence, Ordering};

const PAINT: u32 = 0x5AC3_A53C;

extern "C" {
    /// The lowest address the stack may grow to (from cortex-m-rt's
    /// linker script: the end of `.bss` and `.uninit`).
    static mut _stack_end: u32;
}

#[inline(always)]
fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

/// Run `op` and return the bytes of stack it used below the caller's
/// stack pointer, including the call into it.
#[inline(never)]
fn painted(op: &mut dyn FnMut()) -> usize {
    let bottom = core::ptr::addr_of_mut!(_stack_end) as usize;
    let sp = stack_pointer() & !3;
    let mut p = bottom;
    while p < sp {
        // SAFETY: `bottom..sp` is free stack: nothing lives below the
        // stack pointer, and no interrupt is enabled to use it meanwhile.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
    compiler_fence(Ordering::SeqCst);
    op();
    compiler_fence(Ordering::SeqCst);
    let mut low = bottom;
    // SAFETY: as above; reading the words back.
    while low < sp && unsafe { core::ptr::read_volatile(low as *const u32) } == PAINT {
        low += 4;
    }
    sp - low
}

/// The stack a call through [`painted`] takes by itself (the call and an
/// empty operation's frame), subtracted from every figure.
fn overhead() -> usize {
    painted(&mut || {})
}

/// Run `op`; return its result and the peak bytes of stack it used.
pub fn measure<R>(op: impl FnOnce() -> R) -> (R, usize) {
    let mut op = Some(op);
    let mut result = None;
    let used = painted(&mut || {
        if let Some(op) = op.take() {
            result = Some(op());
        }
    });
    let used = used.saturating_sub(overhead());
    match result {
        Some(r) => (r, used),
        None => unreachable!("painted() always runs the operation"),
    }
}

/// Bytes between the current stack pointer and the lowest address the
/// stack may reach.
pub fn free() -> usize {
    stack_pointer().saturating_sub(core::ptr::addr_of_mut!(_stack_end) as usize)
}
