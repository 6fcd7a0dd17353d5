//! Mounting in the background: fork before any thread exists, detach from
//! the terminal, and tell the caller over a pipe once the mount exists (or
//! why it failed).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::wait::waitpid;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, pipe2, setsid};

use crate::error::ServeError;
use crate::serve::serve;
use crate::sys::{exit_child, fork, Forked};
use crate::{prepare, report, Action, MountError, MountOptions, Prepared};

/// First byte on the readiness pipe: mounted.
const READY: u8 = 0;
/// First byte on the readiness pipe: failed; the [report] follows.
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
        let mountpoint = self.mountpoint.clone();
        if self.opts.foreground {
            return serve(self, None).map_err(|e| e.at(&mountpoint));
        }
        let (rd, wr) = pipe2(OFlag::O_CLOEXEC).map_err(|errno| MountError::System {
            action: Action::CreateReadinessPipe,
            error: errno.into(),
        })?;
        let mut rd = File::from(rd);
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        // This process may have no threads yet (see above): the child is free
        // to do anything, and leaves through daemon_child's exit_child.
        let child = match fork() {
            Ok(Forked::Parent(child)) => child,
            Ok(Forked::Child) => {
                drop(rd);
                daemon_child(self, File::from(wr));
            }
            Err(error) => {
                return Err(MountError::System {
                    action: Action::ForkMountProcess,
                    error,
                })
            }
        };
        drop(wr);
        drop(self);
        // The first child only forks the daemon and exits: reap it now, so
        // the daemon belongs to init and never lingers as our zombie.
        let _ = waitpid(child, None);
        // The daemon keeps the pipe open while it serves: read the status
        // byte, and only on failure the report that follows (until it exits).
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
                let mut report = Vec::new();
                let _ = rd.read_to_end(&mut report);
                Err(match report::decode(&report) {
                    Some(error) => error.at(&mountpoint),
                    None => MountError::Daemon { mountpoint },
                })
            }
            _ => Err(MountError::Daemon { mountpoint }),
        }
    }
}

/// The forked child: detach, fork the daemon, serve, and report failure on
/// `wr` (whose `READY` byte `serve` writes once mounted).
fn daemon_child(prepared: Prepared, mut wr: File) -> ! {
    let fail = |wr: &mut File, error: &ServeError| {
        let mut bytes = vec![FAILED];
        bytes.extend_from_slice(&report::encode(error));
        let _ = wr.write_all(&bytes);
    };
    let _ = setsid();
    // Fork again: the daemon is then no session leader (it can never get a
    // controlling terminal) and is reparented to init at once.
    match fork() {
        Ok(Forked::Child) => {}
        Ok(Forked::Parent(_)) => exit_child(0),
        Err(error) => {
            fail(&mut wr, &ServeError::System(Action::ForkDaemon, error));
            exit_child(1)
        }
    }
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = dup2_stdin(&null);
        let _ = dup2_stdout(&null);
        let _ = dup2_stderr(&null);
    }
    let _ = std::env::set_current_dir("/");
    let ready = wr.try_clone().ok();
    let code = match serve(prepared, ready) {
        Ok(()) => 0,
        Err(e) => {
            fail(&mut wr, &e);
            1
        }
    };
    drop(wr);
    // Leave without running the caller's atexit handlers.
    exit_child(code)
}
