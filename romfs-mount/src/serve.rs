//! Serving a mount: the FUSE session over the `/dev/fuse` descriptor, and
//! the signals that end it with an unmount.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fuser::{Config, Session, SessionACL};
use nix::sys::pthread::pthread_kill;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::error::ServeError;
use crate::{fusermount, Action, FuseProblem, Prepared};

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
        * 2
}

/// Signals that unmount the filesystem.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The set of [`STOP_SIGNALS`].
pub(crate) fn stop_signal_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in STOP_SIGNALS {
        set.add(signal);
    }
    set
}

/// Mount the prepared image and serve it until unmounted. `ready` is told
/// once the mount exists (one 0 byte); the caller reports failures.
pub(crate) fn serve(p: Prepared, ready: Option<File>) -> Result<(), ServeError> {
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
            return Err(ServeError::Fuse(FuseProblem::Handshake(e)));
        }
    };
    let _ = notifier_slot.set(session.notifier());
    if let Some(mut r) = ready {
        let _ = r.write_all(&[0]);
    }

    // Block the stop signals in this thread (and so in every FUSE thread
    // spawned from it); one thread waits for them and unmounts.
    let set = stop_signal_set();
    let old_mask = set.thread_swap_mask(SigmaskHow::SIG_BLOCK).ok();
    let finished = Arc::new(AtomicBool::new(false));
    let keepalive = mount.keepalive;
    let watcher = {
        let finished = finished.clone();
        let mountpoint = mountpoint.clone();
        std::thread::Builder::new()
            .name("romfs-signals".into())
            .spawn(move || {
                while set.wait().is_err() {}
                if !finished.load(Ordering::SeqCst) {
                    // Lazy: the mount disappears now; open files keep working
                    // until closed, then the FUSE threads see the device go.
                    let _ = fusermount::unmount_now(&mountpoint, true);
                }
                // fusermount3 may go: the mount is gone, or (after a failed
                // session, the last /dev/fuse descriptor closed) dead.
                drop(keepalive);
            })
    };
    let result = session
        .run()
        .map_err(|error| ServeError::System(Action::ServeRequests, error));
    // The session's notifier is the last holder of the /dev/fuse descriptor.
    drop(notifier_slot);
    finished.store(true, Ordering::SeqCst);
    if let Ok(handle) = watcher {
        use std::os::unix::thread::JoinHandleExt;
        // The thread is alive (joined below) and waits for SIGTERM.
        let _ = pthread_kill(handle.as_pthread_t(), Signal::SIGTERM);
        let _ = handle.join();
    }
    if let Some(old_mask) = old_mask {
        let _ = old_mask.thread_set_mask();
    }
    drop(mount.stderr);
    result
}
