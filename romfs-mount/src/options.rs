//! Mount options, and parsing of the usual `-o a,b=c` list.

use crate::MountError;

/// How to mount. `Default` gives: daemonize, owner = the mounting user,
/// files 0444, directories 0555, `auto_unmount`, `default_permissions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Stay in the foreground serving requests until unmounted (or
    /// SIGINT/SIGTERM, which unmount). Otherwise [`mount`](crate::mount)
    /// returns once the filesystem is mounted and a background process
    /// serves it.
    pub foreground: bool,
    /// Owner of every file and directory; `None` = the mounting user.
    pub uid: Option<u32>,
    /// Group of every file and directory; `None` = the mounting user's group.
    pub gid: Option<u32>,
    /// Permission bits of files (default 0o444).
    pub file_mode: u16,
    /// Permission bits of directories (default 0o555).
    pub dir_mode: u16,
    /// Let other users access the mount (`-o allow_other`; non-root users
    /// need `user_allow_other` in `/etc/fuse.conf`).
    pub allow_other: bool,
    /// Let root (besides the owner) access the mount (`-o allow_root`).
    pub allow_root: bool,
    /// Unmount automatically if the serving process dies (default on).
    pub auto_unmount: bool,
    /// Let the kernel check permission bits (default on).
    pub default_permissions: bool,
    /// FUSE worker threads; `None` picks a default.
    pub threads: Option<usize>,
    /// The source name shown in `mount`/`df`; `None` = the image path.
    pub fsname: Option<String>,
    /// Other kernel/fusermount options passed through (`noexec`,
    /// `noatime`, `nodev`, `nosuid`, `max_read=N`...).
    pub extra: Vec<String>,
    /// Mount even if the image's checksum does not match (structure is
    /// still checked). Off by default.
    pub ignore_checksum: bool,
    /// How far ahead of a sequential reader the image is read, in MiB
    /// (`-o readahead=MIB`; default 16, 0 turns read-ahead off).
    pub readahead_mib: u32,
}

/// The default of [`MountOptions::readahead_mib`].
pub const DEFAULT_READAHEAD_MIB: u32 = 16;
/// The largest `readahead=` accepted.
const MAX_READAHEAD_MIB: u32 = 1024;

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            foreground: false,
            uid: None,
            gid: None,
            file_mode: 0o444,
            dir_mode: 0o555,
            allow_other: false,
            allow_root: false,
            auto_unmount: true,
            default_permissions: true,
            threads: None,
            fsname: None,
            extra: Vec::new(),
            ignore_checksum: false,
            readahead_mib: DEFAULT_READAHEAD_MIB,
        }
    }
}

/// Parse an octal permission string such as `644` or `0o755` (at most 0o7777).
pub fn parse_mode(s: &str) -> Result<u16, MountError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u16::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(MountError::Options(format!(
            "{s:?} is not an octal mode like 0444"
        ))),
    }
}

fn parse_id(key: &str, v: &str) -> Result<u32, MountError> {
    v.parse()
        .map_err(|_| MountError::Options(format!("{key}={v}: expected a number")))
}

/// Options accepted only for compatibility with libfuse's command lines;
/// they change nothing here.
const IGNORED: &[&str] = &[
    "ro",
    "nonempty",
    "kernel_cache",
    "auto_cache",
    "use_ino",
    "readdir_ino",
    "large_read",
    "big_writes",
    "hard_remove",
    "debug",
    "suid",
    "dev",
];

/// Kernel and fusermount flags passed through as they are.
const PASSED: &[&str] = &[
    "noexec",
    "exec",
    "noatime",
    "atime",
    "relatime",
    "nodiratime",
    "nodev",
    "nosuid",
    "sync",
    "async",
    "dirsync",
];

impl MountOptions {
    /// Apply a comma-separated `-o` list: `allow_other`, `allow_root`,
    /// `auto_unmount`, `noauto_unmount`, `default_permissions`,
    /// `uid=N`, `gid=N`, `umask=OCT` (clears bits from 0444/0555),
    /// `fmode=OCT`, `dmode=OCT`, `fsname=NAME`, `threads=N`,
    /// `readahead=MIB` (0 = off), `ignore_checksum`, kernel flags (`noexec`, `noatime`, `nodev`,
    /// `nosuid`, `sync`, `dirsync`...), `max_read=N`; `ro` and libfuse
    /// cache options are accepted and ignored. `rw` is refused: the mount is
    /// always read-only. Unknown options are an error.
    pub fn parse_fuse_options(&mut self, list: &str) -> Result<(), MountError> {
        for opt in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (key, value) {
                ("rw", None) => {
                    return Err(MountError::Options("rw: ROMFS images are mounted read-only".into()))
                }
                ("allow_other", None) => self.allow_other = true,
                ("allow_root", None) => self.allow_root = true,
                ("auto_unmount", None) => self.auto_unmount = true,
                ("noauto_unmount", None) => self.auto_unmount = false,
                ("default_permissions", None) => self.default_permissions = true,
                ("ignore_checksum", None) => self.ignore_checksum = true,
                ("uid", Some(v)) => self.uid = Some(parse_id(key, v)?),
                ("gid", Some(v)) => self.gid = Some(parse_id(key, v)?),
                ("umask", Some(v)) => {
                    let mask = parse_mode(v)?;
                    self.file_mode = 0o444 & !mask;
                    self.dir_mode = 0o555 & !mask;
                }
                ("fmode" | "file_mode", Some(v)) => self.file_mode = parse_mode(v)?,
                ("dmode" | "dir_mode", Some(v)) => self.dir_mode = parse_mode(v)?,
                ("fsname", Some(v)) => self.fsname = Some(v.to_string()),
                ("threads", Some(v)) => match v.parse::<usize>() {
                    Ok(n) if (1..=256).contains(&n) => self.threads = Some(n),
                    _ => return Err(MountError::Options(format!("threads={v}: expected 1 to 256"))),
                },
                ("readahead", Some(v)) => match v.parse::<u32>() {
                    Ok(n) if n <= MAX_READAHEAD_MIB => self.readahead_mib = n,
                    _ => {
                        return Err(MountError::Options(format!(
                            "readahead={v}: expected MiB from 0 (off) to {MAX_READAHEAD_MIB}"
                        )))
                    }
                },
                ("max_read", Some(v)) => {
                    parse_id(key, v)?;
                    self.extra.push(opt.to_string());
                }
                ("subtype" | "entry_timeout" | "attr_timeout" | "negative_timeout", Some(_)) => {}
                (k, None) if IGNORED.contains(&k) => {}
                (k, None) if PASSED.contains(&k) => self.extra.push(k.to_string()),
                _ => {
                    return Err(MountError::Options(format!(
                        "unknown option {opt:?} (known: allow_other, allow_root, auto_unmount, noauto_unmount, \
                         default_permissions, uid=, gid=, umask=, fmode=, dmode=, fsname=, threads=, \
                         readahead=, ignore_checksum, max_read=, {})",
                        PASSED.join(", ")
                    )))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_usual_options() {
        let mut o = MountOptions::default();
        o.parse_fuse_options(
            "ro,allow_other,uid=1000,gid=100,noexec,nonempty,fmode=0644,dmode=755",
        )
        .unwrap();
        assert!(o.allow_other);
        assert_eq!((o.uid, o.gid), (Some(1000), Some(100)));
        assert_eq!((o.file_mode, o.dir_mode), (0o644, 0o755));
        assert_eq!(o.extra, vec!["noexec".to_string()]);
        let mut o = MountOptions::default();
        o.parse_fuse_options("umask=027").unwrap();
        assert_eq!((o.file_mode, o.dir_mode), (0o440, 0o550));
        assert_eq!(o.readahead_mib, DEFAULT_READAHEAD_MIB);
        o.parse_fuse_options("readahead=0").unwrap();
        assert_eq!(o.readahead_mib, 0);
        o.parse_fuse_options("readahead=64").unwrap();
        assert_eq!(o.readahead_mib, 64);
    }

    #[test]
    fn refuses_bad_options() {
        for bad in [
            "rw",
            "uid=abc",
            "fmode=9",
            "bogus",
            "threads=0",
            "readahead=-1",
            "readahead=1025",
            "readahead=",
            "fmode=",
            "umask=77777",
        ] {
            assert!(
                MountOptions::default().parse_fuse_options(bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse_mode("0o755").unwrap(), 0o755);
    }
}
