//! A global allocator for fuzz targets that turns allocations out of
//! proportion to the input into crashes: one allocation larger than a
//! bound (what a length field read from the input would ask for), or more
//! bytes live at once than another bound (work that grows faster than the
//! input). Either makes the allocation fail, which aborts the process with
//! a message, and libFuzzer keeps the input as a crash.
//!
//! ```no_run
//! use romfs_testkit::alloc_limit::LimitedAlloc;
//!
//! #[global_allocator]
//! static ALLOC: LimitedAlloc = LimitedAlloc::new();
//!
//! // The body of a fuzz target (`fuzz_target!(|data: &[u8]| ...)`).
//! fn fuzz_one(data: &[u8]) {
//!     let n = data.len();
//!     let _limits = ALLOC.limit((1 << 20) + 128 * n, (32 << 20) + 1024 * n);
//!     // ... parse `data`: an allocation out of proportion aborts here.
//! }
//! # fuzz_one(b"");
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// The system allocator, with limits switched on by [`LimitedAlloc::limit`].
#[derive(Debug)]
pub struct LimitedAlloc {
    /// Largest single allocation; `usize::MAX` when off.
    single: AtomicUsize,
    /// Most bytes live at once, counted from when the limit was set.
    live_limit: AtomicIsize,
    live: AtomicIsize,
    peak: AtomicIsize,
    /// Set while a refusal is reported, so the report may allocate.
    reporting: AtomicBool,
}

impl Default for LimitedAlloc {
    fn default() -> Self {
        Self::new()
    }
}

/// Limits in force until dropped.
#[derive(Debug)]
#[must_use = "the limits end when this is dropped"]
pub struct Limits<'a>(&'a LimitedAlloc);

impl Drop for Limits<'_> {
    fn drop(&mut self) {
        self.0.lift();
    }
}

impl LimitedAlloc {
    /// No limits until [`limit`](Self::limit) is called.
    pub const fn new() -> Self {
        LimitedAlloc {
            single: AtomicUsize::new(usize::MAX),
            live_limit: AtomicIsize::new(isize::MAX),
            live: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
            reporting: AtomicBool::new(false),
        }
    }

    /// Refuse any allocation larger than `single` bytes, and any that
    /// would make more than `live` bytes allocated since this call live at
    /// once, until the returned guard is dropped.
    ///
    /// A panic lifts the limits first (reporting it allocates).
    pub fn limit(&'static self, single: usize, live: usize) -> Limits<'static> {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let report = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                self.lift();
                report(info);
            }));
        });
        self.live.store(0, Ordering::SeqCst);
        self.peak.store(0, Ordering::SeqCst);
        self.live_limit.store(
            isize::try_from(live).unwrap_or(isize::MAX),
            Ordering::SeqCst,
        );
        self.single.store(single, Ordering::SeqCst);
        Limits(self)
    }

    fn lift(&self) {
        self.single.store(usize::MAX, Ordering::SeqCst);
        self.live_limit.store(isize::MAX, Ordering::SeqCst);
    }

    /// Most bytes live at once since the last [`limit`](Self::limit).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst).max(0) as usize
    }

    /// An allocation of `size` bytes that makes `grow` more bytes live:
    /// counted, or false (and a report) when over a limit.
    fn admit(&self, size: usize, grow: isize) -> bool {
        let live = self
            .live
            .fetch_add(grow, Ordering::SeqCst)
            .saturating_add(grow);
        let single = self.single.load(Ordering::SeqCst);
        let live_limit = self.live_limit.load(Ordering::SeqCst);
        if size <= single && live <= live_limit {
            self.peak.fetch_max(live, Ordering::SeqCst);
            return true;
        }
        self.live.fetch_sub(grow, Ordering::SeqCst);
        if !self.reporting.swap(true, Ordering::SeqCst) {
            // A fixed buffer: the report must not allocate.
            let mut buf = [0u8; 200];
            let mut w = &mut buf[..];
            let _ = writeln!(
                w,
                "alloc_limit: refused {size} bytes ({live} live; limits: {single} per allocation, {live_limit} live)"
            );
            let left = w.len();
            let _ = std::io::stderr().write_all(&buf[..buf.len() - left]);
            self.reporting.store(false, Ordering::SeqCst);
        }
        false
    }

    fn release(&self, grow: isize) {
        self.live.fetch_sub(grow, Ordering::SeqCst);
    }
}

fn bytes(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` with the caller's layout; the
// bookkeeping only decides whether to forward an allocation at all.
unsafe impl GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size(), bytes(layout.size())) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout, as GlobalAlloc requires.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            self.release(bytes(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size(), bytes(layout.size())) {
            return std::ptr::null_mut();
        }
        // SAFETY: as in alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            self.release(bytes(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.release(bytes(layout.size()));
        // SAFETY: `ptr` came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // One allocation of `new_size`, growing what is live by the difference.
        let grow = bytes(new_size).saturating_sub(bytes(layout.size()));
        if !self.admit(new_size, grow) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from System with `layout`; the caller
        // guarantees `new_size` is valid for it.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            self.release(grow);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_and_lift() {
        static A: LimitedAlloc = LimitedAlloc::new();
        let a = &A;
        let small = Layout::from_size_align(100, 8).unwrap();
        let big = Layout::from_size_align(10_000, 8).unwrap();
        // SAFETY: layouts are non-zero; every block is freed with its layout.
        unsafe {
            let limits = a.limit(1000, 250);
            assert!(a.alloc(big).is_null(), "larger than one allocation may be");
            let p = a.alloc(small);
            let q = a.alloc(small);
            assert!(!p.is_null() && !q.is_null());
            assert!(a.alloc(small).is_null(), "300 bytes live over a 250 limit");
            a.dealloc(q, small);
            let r = a.realloc(p, small, 200);
            assert!(!r.is_null(), "growing within the live limit");
            assert_eq!(a.peak(), 200);
            drop(limits);
            let b = a.alloc(big);
            assert!(!b.is_null(), "no limits after the guard is gone");
            a.dealloc(b, big);
            a.dealloc(r, Layout::from_size_align(200, 8).unwrap());
        }
    }
}
