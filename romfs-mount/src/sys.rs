//! The few operations Rust cannot offer safely, and so the only `unsafe`
//! code of this crate: forking, leaving a forked child, and mapping the
//! image file. Everything else goes through safe wrappers (std, nix,
//! rustix).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, UncheckedAdvice};
use nix::unistd::{ForkResult, Pid};

/// Which side of a [`fork`] this is.
pub(crate) enum Forked {
    /// The calling process; the child has this pid.
    Parent(Pid),
    /// The new process.
    Child,
}

/// Fork this process.
///
/// The child is a copy of the calling thread only. Where other threads
/// may exist, the child must keep to async-signal-safe work (system calls;
/// no allocation, no locks) and leave with [`exit_child`]; the callers in
/// this crate either do so, or fork before any thread exists (the daemon:
/// [`Prepared::mount`](crate::Prepared::mount) says to call it first).
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: fork itself is sound; what the child may do afterwards is
    // the contract above, which every caller keeps.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// Leave a forked child now: no atexit handlers and no destructors (they
/// belong to the parent's copy of everything), no unwinding into the
/// caller's frames. Async-signal-safe.
pub(crate) fn exit_child(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and only ends the process.
    unsafe { libc::_exit(code) }
}

/// Map the whole image file read-only.
pub(crate) fn map_image(file: &File) -> io::Result<Mmap> {
    // SAFETY: the mapping is read-only. The file may still change under
    // us; the index is built once, right after mapping, and afterwards only
    // the kernel reads the mapping (copying read replies), which turns
    // faults into EIO instead of SIGBUS.
    unsafe { Mmap::map(file) }
}

/// Let the mapping's pages go from this process's page tables (they stay
/// in the page cache); the next access faults them in again.
pub(crate) fn release_pages(map: &Mmap) {
    // SAFETY: a read-only shared file mapping: dropped pages are re-read
    // from the file on the next access, so no content is lost.
    let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
}
