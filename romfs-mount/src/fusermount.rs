//! The `fusermount3` protocol: it mounts (so non-root users can) and passes
//! the `/dev/fuse` descriptor back over a unix socket; it also unmounts.

use std::io::{self, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{ChildStderr, Command, Stdio};

use nix::mount::{umount2, MntFlags};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::error::ServeError;
use crate::keepalive::Keepalive;
use crate::mountinfo::listed_path;
use crate::{is_mounted, Action, FuseProblem, MountError, MountOptions, UnmountProblem};

const FUSERMOUNT: &str = "fusermount3";

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

/// The `-o` list given to fusermount3 for `image`.
pub(crate) fn option_string(image: &Path, opts: &MountOptions) -> String {
    let fsname = opts
        .fsname
        .clone()
        .unwrap_or_else(|| image.display().to_string());
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

/// Receive one file descriptor over a unix socket (SCM_RIGHTS); `None` if
/// the peer closed the socket without sending one. Async-signal-safe (no
/// allocation).
pub(crate) fn recv_fd(sock: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(msg) if msg.bytes == 0 => return Ok(None),
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let fd = control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok(fd)
}

/// A live FUSE mount made by fusermount3.
pub(crate) struct FuseMount {
    pub(crate) dev: OwnedFd,
    /// With auto_unmount, fusermount3 stays running and unmounts when its
    /// socket closes, which this holds open while we serve.
    pub(crate) keepalive: Option<Keepalive>,
    /// Read end of fusermount3's stderr, kept open so late messages from it
    /// never hit a closed pipe.
    pub(crate) stderr: Option<ChildStderr>,
}

/// Mount at `mountpoint` with the `-o` list `options`.
pub(crate) fn mount(
    mountpoint: &Path,
    options: &str,
    auto_unmount: bool,
) -> Result<FuseMount, ServeError> {
    let (ours, theirs) =
        UnixStream::pair().map_err(|error| ServeError::System(Action::CreateSocketPair, error))?;
    // Before fusermount3 runs, so that no mount ever exists without its
    // holder (which must also never get the /dev/fuse descriptor).
    let mut keepalive = match auto_unmount {
        true => Some(Keepalive::hold(&ours, &theirs)?),
        false => None,
    };
    // fusermount3 gets its end of the socket as its stdin.
    let mut cmd = Command::new(FUSERMOUNT);
    cmd.arg("-o").arg(options).arg("--").arg(mountpoint);
    cmd.env("_FUSE_COMMFD", "0");
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => ServeError::Fuse(FuseProblem::NotInstalled),
        _ => ServeError::System(Action::RunFusermount, error),
    })?;
    // Dropping the command closes our copy of fusermount3's end: when it
    // exits, `recv_fd` sees the socket close.
    drop(cmd);
    match recv_fd(&ours) {
        Ok(Some(dev)) => {
            let stderr = child.stderr.take();
            match &mut keepalive {
                Some(keepalive) => keepalive.device_received(),
                None => {
                    let _ = child.wait();
                }
            }
            // With auto_unmount, fusermount3 keeps running; it is reaped by
            // whoever outlives it.
            Ok(FuseMount {
                dev,
                keepalive,
                stderr,
            })
        }
        other => {
            drop(keepalive);
            drop(ours);
            let mut message = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut message);
            }
            let status = child.wait();
            let message = message.trim();
            let problem = match (other, status) {
                _ if !message.is_empty() => FuseProblem::Refused(message.to_string()),
                (Err(e), _) | (_, Err(e)) => FuseProblem::Io(e),
                (_, Ok(status)) => FuseProblem::Exited(status),
            };
            Err(ServeError::Fuse(problem))
        }
    }
}

/// Unmount with `fusermount3 -u` (`-z`: lazily); root can do without it.
pub(crate) fn unmount_now(mountpoint: &Path, lazy: bool) -> Result<(), UnmountProblem> {
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
        Ok(out) => {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(match message.is_empty() {
                true => UnmountProblem::Exited(out.status),
                false => UnmountProblem::Refused(message),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let flags = match lazy {
                true => MntFlags::MNT_DETACH,
                false => MntFlags::empty(),
            };
            umount2(mountpoint, flags).map_err(|errno| UnmountProblem::Umount2(errno.into()))
        }
        Err(e) => Err(UnmountProblem::Run(e)),
    }
}

fn unmount_checked(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    if !is_mounted(mountpoint) {
        return Err(MountError::NotMounted(mountpoint.to_path_buf()));
    }
    unmount_now(&listed_path(mountpoint), lazy).map_err(|problem| MountError::Unmount {
        path: mountpoint.to_path_buf(),
        problem,
    })
}

/// Unmount the filesystem at `mountpoint` (as `fusermount3 -u`); the
/// serving process then exits. Fails if the mount is busy.
pub fn unmount(mountpoint: &Path) -> Result<(), MountError> {
    unmount_checked(mountpoint, false)
}

/// Detach the filesystem at `mountpoint` now, even if busy (as
/// `fusermount3 -u -z`); it goes away when the last open file is closed.
pub fn unmount_lazy(mountpoint: &Path) -> Result<(), MountError> {
    unmount_checked(mountpoint, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_escaping() {
        assert_eq!(escape_opt("a,b\\c"), "a\\,b\\\\c");
    }

    #[test]
    fn option_string_is_read_only_and_passes_extras_once() {
        let mut opts = MountOptions::default();
        opts.parse_fuse_options("allow_root,noexec,nodev,fsname=x\\y")
            .unwrap();
        let s = option_string(Path::new("/img"), &opts);
        assert_eq!(
            s,
            "ro,nodev,nosuid,fsname=x\\\\y,subtype=romfs,default_permissions,allow_other,auto_unmount,noexec"
        );
    }
}
