//! The rules a directory or file name must follow, written once for the
//! writer, `verify`, `romfs build` and `romfs extract`.
//!
//! The format itself (and MicroPython's lookup) needs a name that is not
//! empty, holds no `/` or NUL and is not `.` or `..`: otherwise no path can
//! reach it, or a host cannot recreate it. MicroPython also turns every name
//! into a `str` when it lists a directory, so a name that is not valid UTF-8
//! makes `os.listdir()` of its whole directory raise `UnicodeError`.
//! `mpremote romfs build` encodes names as ASCII.

use core::fmt;

/// Why a name cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name contains `/`, the path separator.
    Slash,
    /// The name contains a NUL byte.
    Nul,
    /// The name is `.` or `..`.
    Dot,
    /// The name is not valid UTF-8: MicroPython, which lists names as `str`,
    /// fails to list its directory (it is looser only on overlong forms
    /// and surrogates).
    NotUtf8,
    /// The name is not ASCII, which the mpremote layout requires.
    NotAscii,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "empty name",
            NameProblem::Slash => "name contains '/'",
            NameProblem::Nul => "name contains a NUL byte",
            NameProblem::Dot => "name is '.' or '..'",
            NameProblem::NotUtf8 => {
                "name is not valid UTF-8 (MicroPython lists names as str: listing its directory can fail)"
            }
            NameProblem::NotAscii => "name is not ASCII (the mpremote layout allows only ASCII)",
        })
    }
}

impl core::error::Error for NameProblem {}

/// Which rules apply beyond the format's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameRules {
    /// Require valid UTF-8 (names MicroPython can list and open).
    pub utf8: bool,
    /// Require ASCII (the mpremote layout).
    pub ascii: bool,
}

impl NameRules {
    /// Only what the format needs: any bytes but `/` and NUL, not empty,
    /// not `.` or `..`.
    pub const FORMAT: NameRules = NameRules {
        utf8: false,
        ascii: false,
    };
    /// What MicroPython needs to list, stat and open the entry: the format's
    /// rules and valid UTF-8.
    pub const MICROPYTHON: NameRules = NameRules {
        utf8: true,
        ascii: false,
    };
    /// What `mpremote romfs build` can write: ASCII.
    pub const MPREMOTE: NameRules = NameRules {
        utf8: true,
        ascii: true,
    };
}

/// Check `name` against the format's rules and `rules`; the first problem
/// found, in the order of [`NameProblem`]'s variants.
pub fn check(name: &[u8], rules: NameRules) -> Result<(), NameProblem> {
    if name.is_empty() {
        Err(NameProblem::Empty)
    } else if name.contains(&b'/') {
        Err(NameProblem::Slash)
    } else if name.contains(&0) {
        Err(NameProblem::Nul)
    } else if name == b"." || name == b".." {
        Err(NameProblem::Dot)
    } else if rules.utf8 && core::str::from_utf8(name).is_err() {
        Err(NameProblem::NotUtf8)
    } else if rules.ascii && !name.is_ascii() {
        Err(NameProblem::NotAscii)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule() {
        let m = NameRules::MICROPYTHON;
        assert_eq!(check(b"", m), Err(NameProblem::Empty));
        assert_eq!(check(b"a/b", m), Err(NameProblem::Slash));
        assert_eq!(check(b"a\0", m), Err(NameProblem::Nul));
        assert_eq!(check(b".", m), Err(NameProblem::Dot));
        assert_eq!(check(b"..", m), Err(NameProblem::Dot));
        assert_eq!(check(b"...", m), Ok(()));
        assert_eq!(check(b"\xff", m), Err(NameProblem::NotUtf8));
        assert_eq!(check(b"\xff", NameRules::FORMAT), Ok(()));
        assert_eq!(check("é".as_bytes(), m), Ok(()));
        assert_eq!(
            check("é".as_bytes(), NameRules::MPREMOTE),
            Err(NameProblem::NotAscii)
        );
        assert_eq!(check(b"main.py", NameRules::MPREMOTE), Ok(()));
    }
}
