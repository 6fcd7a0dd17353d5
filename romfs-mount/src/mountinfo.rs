//! What is mounted where: `/proc/self/mountinfo`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Undo the octal escapes of /proc/self/mountinfo (`\040` for a space...).
fn unescape(field: &str) -> Vec<u8> {
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
pub(crate) fn mount_type(path: &Path) -> Option<String> {
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
        if unescape(fields[4]) == path.as_os_str().as_bytes() {
            found = Some(fields[dash + 1].to_string());
        }
    }
    found
}

/// The path `mountinfo` lists for `mountpoint`: canonical, or as given
/// (made absolute) when it cannot be resolved, as for a dead FUSE mount.
pub(crate) fn listed_path(mountpoint: &Path) -> std::path::PathBuf {
    mountpoint
        .canonicalize()
        .unwrap_or_else(|_| crate::absolute(mountpoint))
}

/// True when a filesystem is mounted exactly at `mountpoint`. A
/// disconnected FUSE mount (server gone) counts as mounted.
pub fn is_mounted(mountpoint: &Path) -> bool {
    mount_type(&listed_path(mountpoint)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), b"/a b");
        assert_eq!(unescape("/plain"), b"/plain");
        assert_eq!(unescape("/end\\04"), b"/end\\04");
    }

    #[test]
    fn the_root_is_mounted() {
        assert!(is_mounted(Path::new("/")));
        assert!(mount_type(Path::new("/definitely/not/mounted")).is_none());
    }
}
