//! Holding `fusermount3`'s auto-unmount socket until the serving process
//! is wholly gone.
//!
//! With `auto_unmount`, fusermount3 waits for its socket to close, then
//! unmounts only a *dead* connection: one whose mountpoint fails to open
//! with ENOTCONN. If the server holds the socket itself and is killed, the
//! kernel closes the socket and the `/dev/fuse` descriptors in an order of
//! its own; when the socket goes first, fusermount3's `open` reaches a
//! connection that is still alive, waits, and fails with ECONNABORTED as
//! the connection goes: it leaves the dead mount behind. So a small child
//! process holds the socket instead, never a `/dev/fuse` descriptor, and
//! closes it once a pidfd says the server (every thread) has exited, when
//! the connection is certainly dead.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use rustix::process::{pidfd_open, PidfdFlags};

use crate::sys::{exit_child, fork, Forked};

/// The name the holding process shows in `ps` and `/proc/PID/comm`.
const NAME: &std::ffi::CStr = c"romfs-keepalive";

/// Who holds fusermount3's socket; dropping this closes it.
pub(crate) enum Keepalive {
    /// A child process, until this process has exited.
    Child(Pid),
    /// This process (no pidfds: a kernel before 5.3), as a last resort:
    /// then a killed server may leave its dead mount behind.
    InProcess {
        /// Held only to be closed when this is dropped.
        _socket: UnixStream,
    },
}

impl Keepalive {
    /// Hold `socket` (this process's copy is then closed). Call it before
    /// this process holds any `/dev/fuse` descriptor of the mount: the
    /// child gets a copy of every descriptor open now, and one of those
    /// would keep the connection alive after the server died.
    ///
    /// The child runs only async-signal-safe system calls, so this is
    /// sound in a process with threads.
    pub(crate) fn hold(socket: UnixStream) -> Keepalive {
        let Ok(server) = pidfd_open(rustix::process::getpid(), PidfdFlags::empty()) else {
            return Keepalive::InProcess { _socket: socket };
        };
        // Signals that stop the server must not stop the holder first
        // (a terminal's Ctrl-C reaches both): only the server's exit does.
        let stop_signals = crate::serve::stop_signal_set();
        match fork() {
            Ok(Forked::Child) => {
                let _ = stop_signals.thread_block();
                let _ = nix::sys::prctl::set_name(NAME);
                let mut fds = [PollFd::new(server.as_fd(), PollFlags::POLLIN)];
                // Readable once the whole thread group has exited.
                while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
                exit_child(0)
            }
            Ok(Forked::Parent(child)) => Keepalive::Child(child),
            Err(_) => Keepalive::InProcess { _socket: socket },
        }
    }
}

impl Drop for Keepalive {
    /// Close the socket now: fusermount3 wakes, finds the mount gone (or
    /// gone dead), and exits.
    fn drop(&mut self) {
        if let Keepalive::Child(pid) = *self {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}
