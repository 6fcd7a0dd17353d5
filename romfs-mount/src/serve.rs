//! Serving a mount: the FUSE session over the `/dev/fuse` descriptor, and
//! the signals that end it with an unmount.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fuser::{Config, Session, SessionACL};

use crate::{fusermount, MountError, Prepared};

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        * 2
}

/// Signals that unmount the filesystem.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset manipulation on an owned set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in STOP_SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Mount the prepared image and serve it until unmounted. `ready` is told
/// once the mount exists (one 0 byte); the caller reports failures.
pub(crate) fn serve(p: Prepared, ready: Option<File>) -> Result<(), MountError> {
    let opts = p.opts;
    let options = fusermount::option_string(&p.image_path, &opts);
    let mountpoint = p.mountpoint;
    let mount = fusermount::mount(&mountpoint, &options, opts.auto_unmount)?;
    let acl = if opts.allow_other {
        SessionACL::All
    } else if opts.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    let mut config = Config::default();
    config.n_threads = Some(opts.threads.unwrap_or_else(default_threads));
    config.clone_fd = true;
    let notifier_slot = p.fs.notifier_slot();
    let session = match Session::from_fd(p.fs, mount.dev, acl, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = fusermount::unmount_now(&mountpoint, true);
            return Err(MountError::Fuse(format!("FUSE handshake failed: {e}")));
        }
    };
    let _ = notifier_slot.set(session.notifier());
    if let Some(mut r) = ready {
        let _ = r.write_all(&[0]);
    }

    // Block the stop signals in this thread (and so in every FUSE thread
    // spawned from it); one thread waits for them and unmounts.
    let set = signal_set();
    // SAFETY: sigset_t is plain data, filled in by pthread_sigmask below.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    let finished = Arc::new(AtomicBool::new(false));
    let keepalive = mount.keepalive;
    let watcher = {
        let finished = finished.clone();
        let mountpoint = mountpoint.clone();
        std::thread::Builder::new()
            .name("romfs-signals".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: waits on a valid, owned set.
                while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
                if !finished.load(Ordering::SeqCst) {
                    // Lazy: the mount disappears now; open files keep working
                    // until closed, then the FUSE threads see the device go.
                    let _ = fusermount::unmount_now(&mountpoint, true);
                    drop(keepalive);
                }
            })
    };
    let result = session.run().map_err(|error| MountError::System {
        action: "serve FUSE requests",
        error,
    });
    finished.store(true, Ordering::SeqCst);
    if let Ok(handle) = watcher {
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: the thread is alive (joined below) and waits for SIGTERM.
        unsafe { libc::pthread_kill(handle.as_pthread_t(), libc::SIGTERM) };
        let _ = handle.join();
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(mount.stderr);
    result
}
