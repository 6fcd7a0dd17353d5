//! The `.mpy` header (first 4 bytes) and the compatibility check a device
//! makes at import time ("incompatible .mpy file" / "incompatible .mpy arch").

use core::fmt;

/// The only `.mpy` format version current MicroPython loads.
pub const MPY_VERSION: u8 = 6;
/// The native-code sub-version current MicroPython expects.
pub const MPY_SUB_VERSION: u8 = 3;

/// Native architecture of code inside a `.mpy` (bits 2..7 of the feature byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Arch {
    /// Pure bytecode: runs anywhere with the same version.
    None,
    /// x86 (32-bit).
    X86,
    /// x86-64.
    X64,
    /// ARMv6.
    Armv6,
    /// ARMv6-M (Cortex-M0/M0+).
    Armv6m,
    /// ARMv7-M (Cortex-M3).
    Armv7m,
    /// ARMv7E-M (Cortex-M4 without FPU).
    Armv7em,
    /// ARMv7E-M with single-precision FPU.
    Armv7emsp,
    /// ARMv7E-M with double-precision FPU.
    Armv7emdp,
    /// Xtensa (ESP8266).
    Xtensa,
    /// Xtensa windowed (ESP32).
    Xtensawin,
    /// RISC-V 32-bit IMC.
    Rv32imc,
    /// RISC-V 64-bit IMC.
    Rv64imc,
    /// A value this version of the tool does not know.
    Unknown(u8),
}

const NAMES: [(&str, Arch); 13] = [
    ("none", Arch::None),
    ("x86", Arch::X86),
    ("x64", Arch::X64),
    ("armv6", Arch::Armv6),
    ("armv6m", Arch::Armv6m),
    ("armv7m", Arch::Armv7m),
    ("armv7em", Arch::Armv7em),
    ("armv7emsp", Arch::Armv7emsp),
    ("armv7emdp", Arch::Armv7emdp),
    ("xtensa", Arch::Xtensa),
    ("xtensawin", Arch::Xtensawin),
    ("rv32imc", Arch::Rv32imc),
    ("rv64imc", Arch::Rv64imc),
];

impl Arch {
    /// The architecture number stored in the feature byte.
    pub fn from_code(code: u8) -> Arch {
        NAMES
            .get(code as usize)
            .map(|&(_, a)| a)
            .unwrap_or(Arch::Unknown(code))
    }

    /// The number stored in the feature byte.
    pub fn code(self) -> u8 {
        match self {
            Arch::Unknown(c) => c,
            known => NAMES.iter().position(|&(_, a)| a == known).unwrap_or(0) as u8,
        }
    }

    /// The name `mpy-cross -march=` uses (`none` for bytecode).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Unknown(_) => "unknown",
            known => NAMES
                .iter()
                .find(|&&(_, a)| a == known)
                .map(|&(n, _)| n)
                .unwrap_or("unknown"),
        }
    }

    /// Parse an `mpy-cross -march=` name.
    pub fn from_name(name: &str) -> Option<Arch> {
        NAMES.iter().find(|&&(n, _)| n == name).map(|&(_, a)| a)
    }

    /// All names accepted by [`Arch::from_name`].
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|&(n, _)| n)
    }

    /// Can a device built for `self` run native code for `code`? ARM Thumb
    /// devices run any Thumb architecture from ARMv6-M up to their own; every
    /// other device needs an exact match (as MicroPython's loader decides).
    pub fn can_run(self, code: Arch) -> bool {
        let thumb = Arch::Armv6m.code()..=Arch::Armv7emdp.code();
        if thumb.contains(&self.code()) {
            thumb.start() <= &code.code() && code.code() <= self.code()
        } else {
            self == code
        }
    }

    /// Small-int bits of a typical port of this architecture.
    pub fn default_small_int_bits(self) -> u8 {
        match self {
            Arch::X64 | Arch::Rv64imc => 63,
            _ => 31,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::Unknown(c) => write!(f, "unknown({c})"),
            a => f.write_str(a.name()),
        }
    }
}

/// The decoded first 4 bytes of a `.mpy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpyHeader {
    /// Format version (6 today).
    pub version: u8,
    /// Native architecture, `Arch::None` for pure bytecode.
    pub arch: Arch,
    /// Native sub-version (checked only when `arch` is not `None`).
    pub sub_version: u8,
    /// Bits in a small int on the compiling side.
    pub small_int_bits: u8,
}

/// Why a `.mpy` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MpyError {
    /// Shorter than 4 bytes or not starting with `M`.
    NotMpy,
    /// A version other than [`MPY_VERSION`].
    Version(u8),
    /// Native code for an architecture the target cannot run.
    Arch {
        /// Architecture in the file.
        found: Arch,
        /// The target's architecture.
        target: Arch,
    },
    /// Native code with a sub-version the target does not load.
    SubVersion(u8),
    /// More small-int bits than the target has.
    SmallIntBits {
        /// Bits in the file.
        found: u8,
        /// The target's bits.
        target: u8,
    },
}

impl fmt::Display for MpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MpyError::NotMpy => f.write_str("not a .mpy file (no 'M' header)"),
            MpyError::Version(v) => {
                write!(
                    f,
                    "incompatible .mpy file: version {v}, devices load version {MPY_VERSION}"
                )
            }
            MpyError::Arch { found, target } => {
                write!(
                    f,
                    "incompatible .mpy arch: native code for {found}, target is {target}"
                )
            }
            MpyError::SubVersion(v) => write!(
                f,
                "incompatible .mpy arch: native sub-version {v}, devices load {MPY_SUB_VERSION}"
            ),
            MpyError::SmallIntBits { found, target } => write!(
                f,
                "incompatible .mpy file: compiled for {found}-bit small ints, target has {target}"
            ),
        }
    }
}

impl core::error::Error for MpyError {}

impl MpyHeader {
    /// Decode the header at the start of a `.mpy` file.
    pub fn parse(data: &[u8]) -> Result<MpyHeader, MpyError> {
        if data.len() < 4 || data[0] != b'M' {
            return Err(MpyError::NotMpy);
        }
        Ok(MpyHeader {
            version: data[1],
            arch: Arch::from_code(data[2] >> 2),
            sub_version: data[2] & 3,
            small_int_bits: data[3],
        })
    }

    /// True if the file carries native code (so its arch matters).
    pub fn has_native_code(&self) -> bool {
        self.arch != Arch::None
    }

    /// The check a device makes when importing: version, then (for native
    /// code) architecture and sub-version, then small-int bits. With
    /// `target_arch` `None`, only what does not depend on the target is checked.
    pub fn check(
        &self,
        target_arch: Option<Arch>,
        target_small_int_bits: Option<u8>,
    ) -> Result<(), MpyError> {
        if self.version != MPY_VERSION {
            return Err(MpyError::Version(self.version));
        }
        if self.has_native_code() {
            if self.sub_version != MPY_SUB_VERSION {
                return Err(MpyError::SubVersion(self.sub_version));
            }
            if let Some(target) = target_arch {
                if !target.can_run(self.arch) {
                    return Err(MpyError::Arch {
                        found: self.arch,
                        target,
                    });
                }
            }
        }
        let bits = target_small_int_bits.or(target_arch.map(Arch::default_small_int_bits));
        if let Some(target) = bits {
            if self.small_int_bits > target {
                return Err(MpyError::SmallIntBits {
                    found: self.small_int_bits,
                    target,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_checks() {
        let h = MpyHeader::parse(&[b'M', 6, (Arch::Armv7emsp.code() << 2) | 3, 31]).unwrap();
        assert_eq!(h.arch, Arch::Armv7emsp);
        assert!(h.check(Some(Arch::Armv7emdp), None).is_ok());
        assert_eq!(
            h.check(Some(Arch::Armv6m), None),
            Err(MpyError::Arch {
                found: Arch::Armv7emsp,
                target: Arch::Armv6m
            })
        );
        assert!(h.check(Some(Arch::Xtensawin), None).is_err());
        let bytecode = MpyHeader::parse(&[b'M', 6, 0, 31]).unwrap();
        assert!(bytecode.check(Some(Arch::Xtensa), None).is_ok());
        assert_eq!(
            MpyHeader::parse(&[b'M', 5, 0, 31])
                .unwrap()
                .check(None, None),
            Err(MpyError::Version(5))
        );
        let wide = MpyHeader::parse(&[b'M', 6, 0, 63]).unwrap();
        assert!(wide.check(Some(Arch::Armv7m), None).is_err());
        assert!(wide.check(Some(Arch::X64), None).is_ok());
    }
}
