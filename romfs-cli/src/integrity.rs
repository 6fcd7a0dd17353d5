//! Whether an image is intact, for the commands that read one: its CRC-32
//! (when it has a checksum record) and its signed manifest's SHA-256 (when
//! it is signed; no key is needed to see the bytes changed). `cat`,
//! `extract` and `sign` refuse a damaged image unless told
//! `--ignore-checksum`, `deploy` refuses it; `info` warns; `ls` and `tree`
//! read only directory records and check only those (FORMAT.md, "What
//! each command checks").

use std::fmt;
use std::path::Path;

use romfs_format::{Checksum, Image};
use romfs_sign::SignatureState;

use crate::ui::Ui;

/// What is wrong with an image's own integrity data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The stored CRC-32 does not match the bytes it covers.
    Checksum {
        /// Stored in the checksum record.
        stored: u32,
        /// Computed over the image.
        computed: u32,
    },
    /// The signed bytes no longer match the manifest's SHA-256.
    Digest {
        /// How many leading bytes the digest covers.
        signed_len: usize,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the image is corrupt"
            ),
            Damage::Digest { signed_len } => write!(
                f,
                "{}",
                romfs_sign::Error::DigestMismatch {
                    signed_len: *signed_len
                }
            ),
        }
    }
}

impl Damage {
    /// The damage [`romfs info`](crate::commands::info) already measured.
    pub(crate) fn of(checksum: &Checksum, signature: &SignatureState) -> Vec<Damage> {
        let mut damage = Vec::new();
        if let Checksum::Mismatch { stored, computed } = *checksum {
            damage.push(Damage::Checksum { stored, computed });
        }
        if let SignatureState::Signed {
            offset,
            digest_matches: false,
            ..
        } = signature
        {
            damage.push(Damage::Digest {
                signed_len: *offset,
            });
        }
        damage
    }
}

/// Every way `bytes` (an image that parses) is damaged; none for bytes
/// that are no image (the caller's parse says why).
pub(crate) fn check(bytes: &[u8]) -> Vec<Damage> {
    let Ok(image) = Image::parse(bytes) else {
        return Vec::new();
    };
    let mut damage = Damage::of(&image.checksum(), &SignatureState::Unsigned);
    damage.extend(signed_digest(bytes));
    damage
}

/// The damage to a signed image's signed bytes (its manifest's SHA-256 no
/// longer matches), which the mounter's own checks (structure and CRC)
/// do not see.
pub(crate) fn signed_digest(bytes: &[u8]) -> Option<Damage> {
    match romfs_sign::inspect(bytes).ok()? {
        SignatureState::Signed {
            offset,
            digest_matches: false,
            ..
        } => Some(Damage::Digest { signed_len: offset }),
        _ => None,
    }
}

/// What a command that requires an intact image does with it, for its
/// refusal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Use {
    /// `cat`, `extract`: read file data (`--ignore-checksum` reads it anyway).
    Read,
    /// `sign`: vouch for the bytes (`--ignore-checksum` signs them as they are).
    Sign,
    /// `deploy`: put it on a board (no way around).
    Deploy,
}

impl Use {
    fn refusal(self) -> &'static str {
        match self {
            Use::Read => "nothing was read (--ignore-checksum reads it anyway)",
            Use::Sign => "nothing was signed (--ignore-checksum signs it as it is)",
            Use::Deploy => "nothing was deployed",
        }
    }
}

/// For a command that uses an image as `purpose` says: an error naming
/// the first damage, or with `ignore`, a warning per damage and on.
/// Returns the damage ignored.
pub(crate) fn require_intact(
    path: &Path,
    bytes: &[u8],
    purpose: Use,
    ignore: bool,
    ui: &Ui,
) -> anyhow::Result<Vec<Damage>> {
    let damage = check(bytes);
    match damage.first() {
        None => Ok(damage),
        Some(_) if ignore => {
            warn(path, &damage, ui);
            Ok(damage)
        }
        Some(first) => anyhow::bail!("{}: {first}; {}", path.display(), purpose.refusal()),
    }
}

/// The image at `path`, opened to read file data from (`cat`, `extract`):
/// refused when damaged unless `ignore` (then with a warning per damage).
pub(crate) fn open_to_read(
    path: &Path,
    ignore: bool,
    ui: &Ui,
) -> anyhow::Result<romfs_build::inspect::ImageFile> {
    let file = romfs_build::inspect::ImageFile::open(path)?;
    require_intact(path, file.bytes(), Use::Read, ignore, ui)?;
    Ok(file)
}

/// A warning per damage.
pub(crate) fn warn(path: &Path, damage: &[Damage], ui: &Ui) {
    for d in damage {
        ui.warn(format_args!("{}: {d}", path.display()));
    }
}
