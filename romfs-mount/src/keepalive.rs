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

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{close, pipe2, read, Pid};
use rustix::process::{getpid, pidfd_open, PidfdFlags};

use crate::error::ServeError;
use crate::fusermount::recv_fd;
use crate::sys::{exit_child, fork, Forked};
use crate::Action;

/// How long the holder waits for a `/dev/fuse` descriptor the dead server
/// never took (fusermount3 sends it right after mounting).
const DEVICE_WAIT_MS: u16 = 2000;

/// The name the holding process shows in `ps` and `/proc/PID/comm`.
const NAME: &std::ffi::CStr = c"romfs-keepalive";

/// Who holds fusermount3's socket; dropping this closes it.
pub(crate) enum Keepalive {
    /// A child process, until this process has exited.
    Child {
        /// The child.
        pid: Pid,
        /// Told (one byte) once this process holds the `/dev/fuse`
        /// descriptor.
        received: File,
    },
    /// This process (no pidfds: a kernel before 5.3), as a last resort:
    /// then a killed server may leave its dead mount behind.
    InProcess {
        /// Held only to be closed when this is dropped.
        _socket: UnixStream,
    },
}

impl Keepalive {
    /// Hold `socket`, our end of the pair whose other end, `peer`, is for
    /// fusermount3. Call it before fusermount3 runs: the child gets a copy
    /// of every descriptor open now, and a `/dev/fuse` one would keep the
    /// connection alive after the server died.
    ///
    /// The child runs only async-signal-safe system calls, so this is
    /// sound in a process with threads.
    pub(crate) fn hold(socket: &UnixStream, peer: &UnixStream) -> Result<Keepalive, ServeError> {
        let in_process = || match socket.try_clone() {
            Ok(socket) => Ok(Keepalive::InProcess { _socket: socket }),
            Err(error) => Err(ServeError::System(Action::CopySocket, error)),
        };
        let Ok(server) = pidfd_open(getpid(), PidfdFlags::empty()) else {
            return in_process();
        };
        let Ok((received_rd, received_wr)) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) else {
            return in_process();
        };
        // Signals that stop the server must not stop the holder first
        // (a terminal's Ctrl-C reaches both): only the server's exit does.
        let stop_signals = crate::serve::stop_signal_set();
        match fork() {
            Ok(Forked::Child) => {
                // These copies belong to this process alone; it never
                // returns to code that would close them again.
                let _ = close(peer.as_raw_fd());
                let _ = close(received_wr.as_raw_fd());
                let _ = stop_signals.thread_block();
                let _ = nix::sys::prctl::set_name(NAME);
                let mut fds = [PollFd::new(server.as_fd(), PollFlags::POLLIN)];
                // Readable once the whole thread group has exited.
                while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
                if !matches!(read(&received_rd, &mut [0u8]), Ok(1)) {
                    // The server died before it said it had the device: it
                    // may be waiting in the socket, or on its way from a
                    // fusermount3 still mounting. Take it and close it, so
                    // the connection is dead when fusermount3 looks (or
                    // stop when fusermount3 hangs up without sending it).
                    // Bounded: the server may have died just after taking
                    // it, and then nothing comes.
                    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
                    if let Ok(1..) = poll(&mut fds, DEVICE_WAIT_MS) {
                        let _ = recv_fd(socket);
                    }
                }
                exit_child(0)
            }
            Ok(Forked::Parent(pid)) => Ok(Keepalive::Child {
                pid,
                received: File::from(received_wr),
            }),
            Err(_) => in_process(),
        }
    }

    /// This process now holds the `/dev/fuse` descriptor.
    pub(crate) fn device_received(&mut self) {
        if let Keepalive::Child { received, .. } = self {
            let _ = received.write_all(&[1]);
        }
    }
}

impl Drop for Keepalive {
    /// Close the socket now: fusermount3 wakes, finds the mount gone (or
    /// gone dead), and exits.
    fn drop(&mut self) {
        if let Keepalive::Child { pid, .. } = *self {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}
