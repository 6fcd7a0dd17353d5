//! Mounting in the background: fork before any thread exists, detach from
//! the terminal, and tell the caller over a pipe once the mount exists (or
//! why it failed).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

use crate::serve::serve;
use crate::{prepare, MountError, MountOptions, Prepared};

/// First byte on the readiness pipe: mounted.
const READY: u8 = 0;
/// First byte on the readiness pipe: failed; the message follows.
const FAILED: u8 = 1;

/// Mount `image` at `mountpoint`: [`prepare`] then [`Prepared::mount`].
/// Harmless findings ([`Prepared::warnings`]) are not reported; call the
/// two steps yourself to show them.
pub fn mount(image: &Path, mountpoint: &Path, opts: &MountOptions) -> Result<(), MountError> {
    prepare(image, mountpoint, opts)?.mount()
}

impl Prepared {
    /// Mount the image.
    ///
    /// Without [`MountOptions::foreground`] this returns once the
    /// filesystem is mounted, served by a forked background process (call
    /// it before starting threads: the fork happens before any thread
    /// exists in the child). With `foreground` it serves in this process
    /// and returns when unmounted; SIGINT, SIGTERM and SIGHUP unmount
    /// cleanly.
    pub fn mount(self) -> Result<(), MountError> {
        if self.opts.foreground {
            return serve(self, None);
        }
        let system = |action| MountError::System {
            action,
            error: io::Error::last_os_error(),
        };
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 fills two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(system("create the readiness pipe"));
        }
        // SAFETY: both fds were just created and are owned here.
        let (mut rd, wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // SAFETY: fork; the child only runs daemon_child and then exits
        // with _exit, never returning into the caller.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(system("fork the mount process"));
        }
        if pid == 0 {
            drop(rd);
            daemon_child(self, wr);
        }
        drop(wr);
        drop(self);
        // The first child only forks the daemon and exits: reap it now, so
        // the daemon belongs to init and never lingers as our zombie.
        let mut st = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        // The daemon keeps the pipe open while it serves: read the status
        // byte, and only on failure the message that follows (until it exits).
        let mut status = [0u8; 1];
        let got = loop {
            match rd.read(&mut status) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match got {
            Ok(1) if status[0] == READY => Ok(()),
            Ok(1) => {
                let mut msg = Vec::new();
                let _ = rd.read_to_end(&mut msg);
                Err(MountError::Daemon(
                    String::from_utf8_lossy(&msg).into_owned(),
                ))
            }
            _ => Err(MountError::Daemon(
                "the mount process exited before mounting".into(),
            )),
        }
    }
}

/// The forked child: detach, fork the daemon, serve, and report failure on
/// `wr` (whose `READY` byte `serve` writes once mounted).
fn daemon_child(prepared: Prepared, mut wr: File) -> ! {
    let fail = |wr: &mut File, msg: String| {
        let mut bytes = vec![FAILED];
        bytes.extend_from_slice(msg.as_bytes());
        let _ = wr.write_all(&bytes);
    };
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        // Fork again: the daemon is then no session leader (it can never
        // get a controlling terminal) and is reparented to init at once.
        match libc::fork() {
            0 => {}
            pid if pid > 0 => libc::_exit(0),
            _ => {
                let error = io::Error::last_os_error();
                fail(&mut wr, format!("cannot fork the mount daemon: {error}"));
                libc::_exit(1)
            }
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        libc::chdir(c"/".as_ptr());
    }
    let ready = wr.try_clone().ok();
    let code = match serve(prepared, ready) {
        Ok(()) => 0,
        Err(e) => {
            fail(&mut wr, e.to_string());
            1
        }
    };
    drop(wr);
    // SAFETY: leave without running the caller's atexit handlers.
    unsafe { libc::_exit(code) }
}
