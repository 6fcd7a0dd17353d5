//! Mount options, and parsing of the usual `-o a,b=c` list.
//!
//! Parsing and applying are separate steps: [`OptionList`] is a parsed
//! `-o` list (so a command line can be checked before anything happens) and
//! [`MountOptions::apply`] applies one, in order, later items winning.

use std::fmt;
use std::str::FromStr;

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
    /// FUSE worker threads (1 to [`MAX_THREADS`]); `None` picks a default.
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
    /// (`-o readahead=MIB`; default [`DEFAULT_READAHEAD_MIB`], 0 turns
    /// read-ahead off, at most [`MAX_READAHEAD_MIB`]).
    pub readahead_mib: u32,
}

/// The default of [`MountOptions::readahead_mib`].
pub const DEFAULT_READAHEAD_MIB: u32 = 16;
/// The largest `readahead=` accepted.
pub const MAX_READAHEAD_MIB: u32 = 1024;
/// The most FUSE worker threads accepted (`threads=`).
pub const MAX_THREADS: usize = 256;
/// The default file permission bits (`umask=` clears bits from these).
const DEFAULT_FILE_MODE: u16 = 0o444;
/// The default directory permission bits.
const DEFAULT_DIR_MODE: u16 = 0o555;

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            foreground: false,
            uid: None,
            gid: None,
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
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

/// A mount option that is not understood or not allowed; the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError(String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

/// Parse an octal permission string such as `644` or `0o755` (at most 0o7777).
pub fn parse_mode(s: &str) -> Result<u16, OptionError> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u16::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(OptionError(format!("{s:?} is not an octal mode like 0444"))),
    }
}

/// Parse a FUSE worker thread count (1 to [`MAX_THREADS`]).
pub fn parse_threads(s: &str) -> Result<usize, OptionError> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(OptionError(format!(
            "{s:?} is not a thread count from 1 to {MAX_THREADS}"
        ))),
    }
}

fn parse_id(key: &str, v: &str) -> Result<u32, OptionError> {
    v.parse()
        .map_err(|_| OptionError(format!("{key}={v}: expected a number")))
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

/// One item of an `-o` list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    AllowOther,
    AllowRoot,
    AutoUnmount(bool),
    DefaultPermissions,
    IgnoreChecksum,
    Uid(u32),
    Gid(u32),
    Umask(u16),
    FileMode(u16),
    DirMode(u16),
    FsName(String),
    Threads(usize),
    Readahead(u32),
    /// Passed to fusermount as it is.
    Extra(String),
    /// Accepted for compatibility; changes nothing.
    Ignored,
}

impl Item {
    fn parse(opt: &str) -> Result<Item, OptionError> {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        // Name the option in the value parsers' messages.
        let named = |e: OptionError| OptionError(format!("{key}: {e}"));
        Ok(match (key, value) {
            ("rw", None) => {
                return Err(OptionError("rw: ROMFS images are mounted read-only".into()))
            }
            ("allow_other", None) => Item::AllowOther,
            ("allow_root", None) => Item::AllowRoot,
            ("auto_unmount", None) => Item::AutoUnmount(true),
            ("noauto_unmount", None) => Item::AutoUnmount(false),
            ("default_permissions", None) => Item::DefaultPermissions,
            ("ignore_checksum", None) => Item::IgnoreChecksum,
            ("uid", Some(v)) => Item::Uid(parse_id(key, v)?),
            ("gid", Some(v)) => Item::Gid(parse_id(key, v)?),
            ("umask", Some(v)) => Item::Umask(parse_mode(v).map_err(named)?),
            ("fmode" | "file_mode", Some(v)) => Item::FileMode(parse_mode(v).map_err(named)?),
            ("dmode" | "dir_mode", Some(v)) => Item::DirMode(parse_mode(v).map_err(named)?),
            ("fsname", Some(v)) => Item::FsName(v.to_string()),
            ("threads", Some(v)) => Item::Threads(parse_threads(v).map_err(named)?),
            ("readahead", Some(v)) => match v.parse::<u32>() {
                Ok(n) if n <= MAX_READAHEAD_MIB => Item::Readahead(n),
                _ => {
                    return Err(OptionError(format!(
                        "readahead={v}: expected MiB from 0 (off) to {MAX_READAHEAD_MIB}"
                    )))
                }
            },
            ("max_read", Some(v)) => {
                parse_id(key, v)?;
                Item::Extra(opt.to_string())
            }
            ("subtype" | "entry_timeout" | "attr_timeout" | "negative_timeout", Some(_)) => {
                Item::Ignored
            }
            (k, None) if IGNORED.contains(&k) => Item::Ignored,
            (k, None) if PASSED.contains(&k) => Item::Extra(k.to_string()),
            _ => {
                return Err(OptionError(format!(
                    "unknown option {opt:?} (known: allow_other, allow_root, [no]auto_unmount, \
                     default_permissions, uid=, gid=, umask=, fmode=, dmode=, fsname=, threads=, \
                     readahead=, ignore_checksum, max_read=, {})",
                    PASSED.join(", ")
                )))
            }
        })
    }
}

/// A parsed comma-separated `-o` list: `allow_other`, `allow_root`,
/// `auto_unmount`, `noauto_unmount`, `default_permissions`, `uid=N`,
/// `gid=N`, `umask=OCT` (clears bits from 0444/0555), `fmode=OCT`,
/// `dmode=OCT`, `fsname=NAME`, `threads=N`, `readahead=MIB` (0 = off),
/// `ignore_checksum`, kernel flags (`noexec`, `noatime`, `nodev`, `nosuid`,
/// `sync`, `dirsync`...), `max_read=N`; `ro` and libfuse cache options are
/// accepted and ignored. `rw` is refused: the mount is always read-only.
/// Unknown options are an error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptionList(Vec<Item>);

impl FromStr for OptionList {
    type Err = OptionError;

    fn from_str(list: &str) -> Result<Self, OptionError> {
        list.split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(Item::parse)
            .collect::<Result<_, _>>()
            .map(OptionList)
    }
}

impl MountOptions {
    /// Apply a parsed `-o` list; a later item overrides an earlier one.
    pub fn apply(&mut self, list: &OptionList) {
        for item in &list.0 {
            match item {
                Item::AllowOther => self.allow_other = true,
                Item::AllowRoot => self.allow_root = true,
                Item::AutoUnmount(on) => self.auto_unmount = *on,
                Item::DefaultPermissions => self.default_permissions = true,
                Item::IgnoreChecksum => self.ignore_checksum = true,
                Item::Uid(uid) => self.uid = Some(*uid),
                Item::Gid(gid) => self.gid = Some(*gid),
                Item::Umask(mask) => {
                    self.file_mode = DEFAULT_FILE_MODE & !mask;
                    self.dir_mode = DEFAULT_DIR_MODE & !mask;
                }
                Item::FileMode(mode) => self.file_mode = *mode,
                Item::DirMode(mode) => self.dir_mode = *mode,
                Item::FsName(name) => self.fsname = Some(name.clone()),
                Item::Threads(n) => self.threads = Some(*n),
                Item::Readahead(mib) => self.readahead_mib = *mib,
                Item::Extra(opt) => self.extra.push(opt.clone()),
                Item::Ignored => {}
            }
        }
    }

    /// Parse a comma-separated `-o` list (see [`OptionList`]) and apply it.
    /// On error nothing is applied.
    pub fn parse_fuse_options(&mut self, list: &str) -> Result<(), OptionError> {
        self.apply(&list.parse()?);
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

    #[test]
    fn later_items_win_and_errors_apply_nothing() {
        let mut o = MountOptions::default();
        o.parse_fuse_options("uid=5,uid=6,threads=2").unwrap();
        assert_eq!((o.uid, o.threads), (Some(6), Some(2)));
        let before = o.clone();
        assert!(o.parse_fuse_options("gid=7,bogus").is_err());
        assert_eq!(o, before, "a list with an error applies nothing");
        assert_eq!(parse_threads("256"), Ok(256));
        assert!(parse_threads("257").is_err());
    }
}
