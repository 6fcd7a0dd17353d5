//! Parsers for what the board prints in answer to the helper's functions.
//! A board may answer anything (a different firmware, line noise, a program
//! of the user's still printing): each parser accepts exactly the expected
//! shape and returns `None` for anything else, never panicking.

use romfs_format::mpy::Arch;

/// How the board hashes blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// First 16 bytes of SHA-256.
    Sha256,
    /// CRC-32, little-endian (boards without `hashlib.sha256`).
    Crc32,
}

impl HashKind {
    /// Length of one hash in bytes.
    pub fn size(self) -> usize {
        match self {
            HashKind::Sha256 => 16,
            HashKind::Crc32 => 4,
        }
    }

    /// Hash `data` as the board does.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashKind::Sha256 => {
                use sha2::Digest;
                sha2::Sha256::digest(data)[..16].to_vec()
            }
            HashKind::Crc32 => romfs_format::crc32::checksum(data).to_le_bytes().to_vec(),
        }
    }
}

/// What the board's `.mpy` loader accepts (`sys.implementation._mpy` and
/// the width of its small ints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpyTarget {
    /// `.mpy` format version.
    pub version: u8,
    /// Native architecture (`Arch::None` when the board runs no native code).
    pub arch: Arch,
    /// Native sub-version.
    pub sub_version: u8,
    /// Bits in a small int.
    pub small_int_bits: u8,
}

impl MpyTarget {
    /// Decode `sys.implementation._mpy` (low byte: version; next byte:
    /// architecture << 2 | sub-version) and the small-int width.
    pub fn from_sys(mpy: u32, small_int_bits: u8) -> Option<MpyTarget> {
        if mpy > 0xffff || !(2..=64).contains(&small_int_bits) {
            return None;
        }
        let feature = (mpy >> 8) as u8;
        Some(MpyTarget {
            version: mpy as u8,
            arch: Arch::from_code(feature >> 2),
            sub_version: feature & 3,
            small_int_bits,
        })
    }
}

/// The line the helper prints once loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperInfo {
    /// Number of ROM partitions; `None` when the firmware has no `vfs.rom_ioctl`.
    pub partitions: Option<u32>,
    /// `deflate.DeflateIO` is available.
    pub deflate: bool,
    /// How blocks are hashed.
    pub hash: HashKind,
    /// The `.mpy` target; `None` when the firmware does not say.
    pub mpy: Option<MpyTarget>,
    /// `sys.platform`: the port (`rp2`, `esp32`, `pyboard` for stm32, ...).
    pub platform: String,
}

/// `romfs-helper <partitions|False> <0|1> <s|c> <_mpy|-1> <small-int bits>`.
pub fn helper_info(stdout: &[u8]) -> Option<HelperInfo> {
    let line = only_line(stdout)?;
    let mut words = line.split(' ');
    if words.next()? != "romfs-helper" {
        return None;
    }
    let partitions = match words.next()? {
        "False" => None,
        n => Some(n.parse::<u32>().ok().filter(|&n| n <= 64)?),
    };
    let deflate = match words.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    let hash = match words.next()? {
        "s" => HashKind::Sha256,
        "c" => HashKind::Crc32,
        _ => return None,
    };
    let mpy: i64 = words.next()?.parse().ok()?;
    let bits: u8 = words.next()?.parse().ok()?;
    // `sys.platform` (older helpers did not send it).
    let platform = match words.next() {
        Some(p) if !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_graphic()) => {
            p.to_string()
        }
        Some(_) => return None,
        None => String::new(),
    };
    if words.next().is_some() {
        return None;
    }
    let mpy = if mpy < 0 {
        None
    } else {
        Some(MpyTarget::from_sys(u32::try_from(mpy).ok()?, bits)?)
    };
    Some(HelperInfo {
        partitions,
        deflate,
        hash,
        mpy,
        platform,
    })
}

/// Exactly `n` integers on one line, separated by single spaces.
pub fn ints(stdout: &[u8], n: usize) -> Option<Vec<i64>> {
    let line = only_line(stdout)?;
    let v: Vec<i64> = line
        .split(' ')
        .map(|w| w.parse::<i64>().ok())
        .collect::<Option<_>>()?;
    (v.len() == n).then_some(v)
}

/// `count` lines of `len`-byte hashes in lowercase hex.
pub fn hashes(stdout: &[u8], count: usize, len: usize) -> Option<Vec<Vec<u8>>> {
    let text = std::str::from_utf8(stdout).ok()?;
    let text = text.strip_suffix("\r\n").or(text.strip_suffix('\n'))?;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() != count {
        return None;
    }
    lines
        .iter()
        .map(|l| hex(l.strip_suffix('\r').unwrap_or(l), len))
        .collect()
}

/// Base64 printed by `binascii.b2a_base64` (one line), exactly `len` bytes.
pub fn base64_bytes(stdout: &[u8], len: usize) -> Option<Vec<u8>> {
    use base64::Engine;
    let line = only_line(stdout)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .ok()?;
    (bytes.len() == len).then_some(bytes)
}

/// One line of base64 per expected length, each decoding to exactly that
/// many bytes.
pub fn base64_lines(stdout: &[u8], lens: &[usize]) -> Option<Vec<Vec<u8>>> {
    use base64::Engine;
    let text = std::str::from_utf8(stdout).ok()?;
    let text = text.strip_suffix("\r\n").or(text.strip_suffix('\n'))?;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() != lens.len() {
        return None;
    }
    lines
        .iter()
        .zip(lens)
        .map(|(l, &n)| {
            let l = l.strip_suffix('\r').unwrap_or(l);
            let b = base64::engine::general_purpose::STANDARD.decode(l).ok()?;
            (b.len() == n).then_some(b)
        })
        .collect()
}

/// The failure the helper reports with `RomErr(op, offset, code)`: the
/// traceback's last line `RomErr: ('erase', 4096, -22)`.
pub fn rom_error(stderr_last_line: &str) -> Option<(String, i64, i64)> {
    let rest = stderr_last_line
        .strip_prefix("FlashError: (")
        .or_else(|| stderr_last_line.strip_prefix("RomErr: ("))?
        .strip_suffix(')')?;
    let mut parts = rest.splitn(3, ", ");
    let op = parts.next()?.strip_prefix('\'')?.strip_suffix('\'')?;
    if op.is_empty() || !op.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let offset = parts.next()?.parse().ok()?;
    // The code is what the firmware returned: normally a negative errno,
    // but it may be anything (`None`, `True`); keep a number.
    let code = parts.next()?.parse().unwrap_or(i64::MIN);
    Some((op.to_string(), offset, code))
}

fn hex(s: &str, len: usize) -> Option<Vec<u8>> {
    if s.len() != len * 2 {
        return None;
    }
    (0..len)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The text of output that is exactly one line (MicroPython ends lines
/// with `\r\n` on most ports, `\n` on some).
fn only_line(stdout: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(stdout).ok()?;
    let line = text.strip_suffix("\r\n").or(text.strip_suffix('\n'))?;
    (!line.contains(['\n', '\r'])).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_line() {
        let info = helper_info(b"romfs-helper 1 1 s 6918 31\r\n").unwrap();
        assert_eq!(info.partitions, Some(1));
        assert!(info.deflate);
        assert_eq!(info.hash, HashKind::Sha256);
        let mpy = info.mpy.unwrap();
        assert_eq!(
            (mpy.version, mpy.arch, mpy.sub_version, mpy.small_int_bits),
            (6, Arch::Armv7em, 3, 31)
        );
        assert_eq!(
            helper_info(b"romfs-helper False 0 c -1 31\n")
                .unwrap()
                .partitions,
            None
        );
        for bad in [
            &b""[..],
            b"romfs-helper 1 1 s 6918 31",
            b"romfs-helper 1 1 s 6918 31 qemu 9\r\n",
            b"romfs-helper 1 1 s 6918 31 \xff\r\n",
            b"romfs-helper 1 2 s 6918 31\r\n",
            b"romfs-helper x 1 s 6918 31\r\n",
            b"romfs-helper 1 1 s 99999999 31\r\n",
            b"romfs-helper 1 1 s 6918 200\r\n",
            b"hello\r\nromfs-helper 1 1 s 6918 31\r\n",
            b"\xff\r\n",
        ] {
            assert_eq!(helper_info(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_hashes_errors() {
        assert_eq!(ints(b"4194304 4096 0\r\n", 3), Some(vec![4194304, 4096, 0]));
        assert_eq!(ints(b"4194304 4096\r\n", 3), None);
        assert_eq!(ints(b"4194304  4096 0\r\n", 3), None);
        assert_eq!(
            hashes(b"00ff\r\n0a0b\r\n", 2, 2),
            Some(vec![vec![0, 255], vec![10, 11]])
        );
        assert_eq!(hashes(b"00ff\r\n0a0b\r\n", 3, 2), None);
        assert_eq!(hashes(b"00fg\r\n", 1, 2), None);
        assert_eq!(hashes(b"\xc3\xa9\xc3\xa9\r\n", 1, 2), None);
        assert_eq!(base64_bytes(b"AAEC\n", 3), Some(vec![0, 1, 2]));
        assert_eq!(base64_bytes(b"AAEC\n", 4), None);
        assert_eq!(
            base64_lines(b"AAEC\r\nAA==\r\n", &[3, 1]),
            Some(vec![vec![0, 1, 2], vec![0]])
        );
        assert_eq!(base64_lines(b"AAEC\r\nAA==\r\n", &[3, 2]), None);
        assert_eq!(base64_lines(b"AAEC\r\n", &[3, 1]), None);
        assert_eq!(
            rom_error("RomErr: ('erase', 4096, -22)"),
            Some(("erase".into(), 4096, -22))
        );
        assert_eq!(
            rom_error("RomErr: ('write', 0, None)"),
            Some(("write".into(), 0, i64::MIN))
        );
        assert_eq!(rom_error("OSError: 22"), None);
        assert_eq!(rom_error("RomErr: ('', 0, 1)"), None);
    }
}
