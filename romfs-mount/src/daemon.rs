//! Preparing an image, mounting it through `fusermount3`, the daemon
//! lifecycle (fork before any thread, readiness pipe), signals, unmounting.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{Config, Session, SessionACL};
use memmap2::Mmap;
use romfs_format::{FindingKind, Image};

use crate::fs::{Attrs, RomFs};
use crate::index::{Index, IndexError};
use crate::{display, MountError, MountOptions};

const FUSERMOUNT: &str = "fusermount3";

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn mountpoint_error(path: &Path, reason: impl Into<String>) -> MountError {
    MountError::Mountpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Check the mountpoint: it must exist, be a directory, and not already be
/// a FUSE mount. Returns its canonical path.
fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf, MountError> {
    let meta = std::fs::metadata(mountpoint).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => mountpoint_error(mountpoint, "does not exist"),
        Some(libc::ENOTCONN) => mountpoint_error(
            mountpoint,
            format!(
                "is a disconnected FUSE mount (its server died); clean it up with: fusermount3 -u {}",
                display(mountpoint)
            ),
        ),
        _ => mountpoint_error(mountpoint, e.to_string()),
    })?;
    if !meta.is_dir() {
        return Err(mountpoint_error(mountpoint, "is not a directory"));
    }
    let canonical = mountpoint
        .canonicalize()
        .map_err(|e| mountpoint_error(mountpoint, e.to_string()))?;
    if let Some(fstype) = mount_type(&canonical) {
        if fstype.starts_with("fuse") {
            return Err(MountError::AlreadyMounted(mountpoint.to_path_buf()));
        }
    }
    Ok(canonical)
}

/// Undo the octal escapes of /proc/self/mountinfo (`\040` for a space...).
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The filesystem type mounted exactly at `path` (canonical), if any; the
/// topmost mount wins.
fn mount_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut found = None;
    for line in info.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source superopts
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 5 || dash + 1 >= fields.len() {
            continue;
        }
        if unescape_mountinfo(fields[4]) == path.as_os_str().as_bytes() {
            found = Some(fields[dash + 1].to_string());
        }
    }
    found
}

/// True when a filesystem is mounted exactly at `mountpoint`. A
/// disconnected FUSE mount (server gone) counts as mounted.
pub fn is_mounted(mountpoint: &Path) -> bool {
    let canonical = match mountpoint.canonicalize() {
        Ok(p) => p,
        // A dead FUSE mount cannot be stat'ed; look for the path as given.
        Err(_) => std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf()),
    };
    mount_type(&canonical).is_some()
}

/// A verified, indexed image ready to be mounted.
pub struct Prepared {
    fs: RomFs,
    image_path: PathBuf,
    mountpoint: PathBuf,
    /// Non-fatal remarks about the image (printed by the binary).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("image", &self.image_path)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

impl Prepared {
    /// Number of files and directories (root included).
    pub fn nodes(&self) -> usize {
        self.fs.index.len()
    }
}

/// Map, verify and index `image`, and check `mountpoint`, without mounting
/// anything. [`mount`] calls this first; it is public so callers can check
/// an image the same way.
pub fn prepare(
    image: &Path,
    mountpoint: &Path,
    opts: &MountOptions,
) -> Result<Prepared, MountError> {
    let mountpoint = check_mountpoint(mountpoint)?;
    let image_err = |source: io::Error| MountError::Image {
        path: image.to_path_buf(),
        source,
    };
    let file = File::open(image).map_err(image_err)?;
    let meta = file.metadata().map_err(image_err)?;
    if meta.is_dir() {
        return Err(MountError::NotRomfs {
            path: image.to_path_buf(),
            reason: "it is a directory".into(),
        });
    }
    if meta.len() < 4 {
        return Err(MountError::NotRomfs {
            path: image.to_path_buf(),
            reason: format!(
                "{} bytes is shorter than the smallest image (4 bytes)",
                meta.len()
            ),
        });
    }
    // SAFETY: the mapping is read-only. The file may still change under
    // us; the index is built here, once, and afterwards only the kernel
    // touches the mapping (copying read replies), which turns faults into
    // EIO instead of SIGBUS.
    let map = unsafe { Mmap::map(&file) }.map_err(image_err)?;
    let parsed = Image::parse(&map).map_err(|e| MountError::NotRomfs {
        path: image.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut fatal = Vec::new();
    let mut warnings = Vec::new();
    parsed.verify(|finding| match finding.kind {
        FindingKind::DuplicateName => warnings.push(format!(
            "{finding} (hidden: the first entry with this name wins)"
        )),
        FindingKind::OddImageSize => warnings.push(finding.to_string()),
        FindingKind::ChecksumMismatch { .. } if opts.ignore_checksum => {
            warnings.push(finding.to_string())
        }
        _ => fatal.push(finding.to_string()),
    });
    if !fatal.is_empty() {
        return Err(MountError::Corrupt {
            path: image.to_path_buf(),
            findings: fatal,
        });
    }
    let index = Index::build(&parsed).map_err(|e| MountError::Corrupt {
        path: image.to_path_buf(),
        findings: vec![match e {
            IndexError::Corrupt(s) => s,
            IndexError::TooBig => "too many entries or names to index".into(),
        }],
    })?;
    let build_time = parsed.metadata().ok().flatten().and_then(|m| m.build_time);
    let image_len = parsed.len() as u64;
    let time = match build_time {
        Some(secs) => SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .unwrap_or(SystemTime::UNIX_EPOCH),
        None => meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    };
    // Verification touched every page; let them go from our page tables
    // (they stay in the page cache). Reads fault in what they need.
    // SAFETY: a read-only shared file mapping: dropped pages are re-read
    // from the file on the next access.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let attrs = Attrs {
        uid: opts.uid.unwrap_or(uid),
        gid: opts.gid.unwrap_or(gid),
        file_mode: opts.file_mode,
        dir_mode: opts.dir_mode,
        time,
    };
    // Absolute: the daemon changes directory to / before it mounts.
    let image_path = std::path::absolute(image).unwrap_or_else(|_| image.to_path_buf());
    Ok(Prepared {
        fs: RomFs::new(map, file, index, attrs, image_len, opts.readahead_mib),
        image_path,
        mountpoint,
        warnings,
    })
}

/// Escape a value for fusermount's comma-separated option list.
fn escape_opt(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if c == ',' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn fuse_option_string(p: &Prepared, opts: &MountOptions) -> String {
    let fsname = opts
        .fsname
        .clone()
        .unwrap_or_else(|| p.image_path.display().to_string());
    let mut o = vec![
        "ro".to_string(),
        "nodev".into(),
        "nosuid".into(),
        format!("fsname={}", escape_opt(&fsname)),
        "subtype=romfs".into(),
    ];
    if opts.default_permissions {
        o.push("default_permissions".into());
    }
    if opts.allow_other || opts.allow_root {
        o.push("allow_other".into());
    }
    if opts.auto_unmount {
        o.push("auto_unmount".into());
    }
    for e in &opts.extra {
        if !o.contains(e) {
            o.push(e.clone());
        }
    }
    o.join(",")
}

/// Receive one file descriptor over a unix socket (SCM_RIGHTS).
fn recv_fd(sock: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    loop {
        // SAFETY: msg points at valid buffers for the duration of the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = errno();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        break;
    }
    // SAFETY: CMSG_* walk the control buffer the kernel filled in.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
                if fd >= 0 {
                    return Ok(Some(OwnedFd::from_raw_fd(fd)));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(None)
}

/// A live FUSE mount made by fusermount3.
struct FuseMount {
    dev: OwnedFd,
    /// With auto_unmount, fusermount3 stays running and unmounts when this
    /// socket closes (i.e. when we exit, however we exit).
    keepalive: Option<UnixStream>,
    /// Read end of fusermount3's stderr, kept open so late messages from it
    /// never hit a closed pipe.
    _stderr: Option<std::process::ChildStderr>,
}

fn fusermount_mount(
    mountpoint: &Path,
    options: &str,
    auto_unmount: bool,
) -> Result<FuseMount, MountError> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| MountError::Fuse(e.to_string()))?;
    let theirs_fd = theirs.as_raw_fd();
    let mut cmd = Command::new(FUSERMOUNT);
    cmd.arg("-o").arg(options).arg("--").arg(mountpoint);
    cmd.env("_FUSE_COMMFD", theirs_fd.to_string());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(theirs_fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(theirs_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        MountError::Fuse(if e.kind() == io::ErrorKind::NotFound {
            format!("{FUSERMOUNT} not found: install the fuse3 package")
        } else {
            format!("running {FUSERMOUNT}: {e}")
        })
    })?;
    drop(theirs);
    let received = recv_fd(&ours);
    match received {
        Ok(Some(dev)) => {
            let stderr = child.stderr.take();
            if auto_unmount {
                // fusermount3 keeps running; it is reaped by whoever outlives it.
                Ok(FuseMount {
                    dev,
                    keepalive: Some(ours),
                    _stderr: stderr,
                })
            } else {
                drop(ours);
                let _ = child.wait();
                Ok(FuseMount {
                    dev,
                    keepalive: None,
                    _stderr: stderr,
                })
            }
        }
        other => {
            drop(ours);
            let mut msg = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut msg);
            }
            let status = child.wait();
            let mut msg = msg.trim().to_string();
            if msg.is_empty() {
                msg = match (other, status) {
                    (Err(e), _) => e.to_string(),
                    (_, Ok(s)) => format!("{FUSERMOUNT} exited with {s}"),
                    (_, Err(e)) => e.to_string(),
                };
            }
            Err(MountError::Fuse(msg))
        }
    }
}

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
/// once the mount exists (one 0 byte) or why it failed (1 and a message).
fn serve(p: Prepared, opts: &MountOptions, ready: Option<File>) -> Result<(), MountError> {
    let options = fuse_option_string(&p, opts);
    let mountpoint = p.mountpoint.clone();
    let mount = fusermount_mount(&mountpoint, &options, opts.auto_unmount)?;
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
    let session = Session::from_fd(p.fs, mount.dev, acl, config);
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let _ = run_fusermount_unmount(&mountpoint, true);
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
                    let _ = run_fusermount_unmount(&mountpoint, true);
                    drop(keepalive);
                }
            })
    };
    let result = session
        .run()
        .map_err(|e| MountError::Fuse(format!("serving requests: {e}")));
    finished.store(true, Ordering::SeqCst);
    if let Ok(handle) = watcher {
        use std::os::unix::thread::JoinHandleExt;
        // SAFETY: the thread is alive (joined below) and waits for SIGTERM.
        unsafe { libc::pthread_kill(handle.as_pthread_t(), libc::SIGTERM) };
        let _ = handle.join();
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(mount._stderr);
    result
}

/// Mount `image` at `mountpoint`.
///
/// Without `opts.foreground` this returns once the filesystem is mounted,
/// served by a forked background process (call it before starting threads:
/// the fork happens before any thread exists in the child). With
/// `foreground` it serves in this process and returns when unmounted;
/// SIGINT, SIGTERM and SIGHUP unmount cleanly.
pub fn mount(image: &Path, mountpoint: &Path, opts: &MountOptions) -> Result<(), MountError> {
    let prepared = prepare(image, mountpoint, opts)?;
    for w in &prepared.warnings {
        eprintln!("warning: {}: {w}", display(image));
    }
    if opts.foreground {
        return serve(prepared, opts, None);
    }
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(MountError::Fuse(format!("pipe: {}", errno())));
    }
    // SAFETY: both fds were just created and are owned here.
    let (mut rd, wr) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: fork; the child only runs this function's code and then
    // exits with _exit, never returning into the caller.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(MountError::Fuse(format!("fork: {}", errno())));
    }
    if pid == 0 {
        drop(rd);
        daemon_child(prepared, opts, wr);
    }
    drop(wr);
    drop(prepared);
    // The first child only forks the daemon and exits: reap it now, so the
    // daemon belongs to init and never lingers as our zombie.
    let mut st = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    // The child keeps the pipe open while it serves: read the status byte,
    // and only on failure the message that follows (until it exits).
    let mut status = [0u8; 1];
    let got = loop {
        match rd.read(&mut status) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    match got {
        Ok(1) if status[0] == 0 => Ok(()),
        Ok(1) => {
            let mut msg = Vec::new();
            let _ = rd.read_to_end(&mut msg);
            // The child sent the whole message; don't prefix it twice.
            let msg = String::from_utf8_lossy(&msg).into_owned();
            Err(MountError::Fuse(
                msg.strip_prefix("FUSE mount failed: ")
                    .unwrap_or(&msg)
                    .to_string(),
            ))
        }
        _ => Err(MountError::Fuse(
            "the mount process exited before mounting".into(),
        )),
    }
}

fn daemon_child(prepared: Prepared, opts: &MountOptions, mut wr: File) -> ! {
    // SAFETY: plain syscalls on our own process.
    unsafe {
        libc::setsid();
        // Fork again: the daemon is then no session leader (it can never
        // get a controlling terminal) and is reparented to init at once.
        match libc::fork() {
            0 => {}
            pid if pid > 0 => libc::_exit(0),
            _ => {
                let _ = wr.write_all(format!("\u{1}fork: {}", errno()).as_bytes());
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
    let code = match serve(prepared, opts, ready) {
        Ok(()) => 0,
        Err(e) => {
            let mut msg = vec![1u8];
            msg.extend_from_slice(e.to_string().as_bytes());
            let _ = wr.write_all(&msg);
            1
        }
    };
    drop(wr);
    // SAFETY: leave without running the caller's atexit handlers.
    unsafe { libc::_exit(code) }
}

fn run_fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<(), String> {
    let mut cmd = Command::new(FUSERMOUNT);
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    cmd.arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Root can unmount without the helper.
            let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
                .map_err(|e| e.to_string())?;
            let flags = if lazy { libc::MNT_DETACH } else { 0 };
            // SAFETY: c is a valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
                Ok(())
            } else {
                Err(format!("{FUSERMOUNT} not found, and umount2: {}", errno()))
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

fn unmount_impl(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    if !is_mounted(mountpoint) {
        return Err(MountError::NotMounted(mountpoint.to_path_buf()));
    }
    let target = mountpoint.canonicalize().unwrap_or_else(|_| {
        std::path::absolute(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf())
    });
    run_fusermount_unmount(&target, lazy).map_err(|reason| MountError::Unmount {
        path: mountpoint.to_path_buf(),
        reason: if reason.contains("busy") {
            format!("{reason} (files are open in it; close them, or unmount lazily)")
        } else {
            reason
        },
    })
}

/// Unmount the filesystem at `mountpoint` (as `fusermount3 -u`); the
/// serving process then exits. Fails if the mount is busy.
pub fn unmount(mountpoint: &Path) -> Result<(), MountError> {
    unmount_impl(mountpoint, false)
}

/// Detach the filesystem at `mountpoint` now, even if busy (as
/// `fusermount3 -u -z`); it goes away when the last open file is closed.
pub fn unmount_lazy(mountpoint: &Path) -> Result<(), MountError> {
    unmount_impl(mountpoint, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
        assert_eq!(unescape_mountinfo("/end\\04"), b"/end\\04");
    }

    #[test]
    fn option_escaping() {
        assert_eq!(escape_opt("a,b\\c"), "a\\,b\\\\c");
    }

    #[test]
    fn mountpoint_errors() {
        let e = check_mountpoint(Path::new("/definitely/not/here")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = check_mountpoint(Path::new("/proc/self/status")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        assert!(check_mountpoint(Path::new("/")).is_ok());
    }
}
