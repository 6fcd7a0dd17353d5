//! What a build can be asked to do, and the rules options must follow.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use romfs_format::mpy::Arch;
use romfs_format::signature::Manifest;
use romfs_format::write::Layout;
use romfs_sign::SigningKey;

use crate::error::BuildError;

/// Whether to compile `.py` files to `.mpy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MpyMode {
    /// Compile when `mpy-cross` is available, otherwise store sources (with a note).
    #[default]
    Auto,
    /// Compile; a missing `mpy-cross` is an error.
    Always,
    /// Store `.py` files as they are.
    Never,
}

/// A build time to record in the image's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildTime {
    /// Seconds since the Unix epoch.
    At(u64),
    /// `SOURCE_DATE_EPOCH` when it is set (reproducible builds), otherwise
    /// the clock; resolved when the image is built.
    Now,
}

impl FromStr for BuildTime {
    type Err = BuildError;

    /// `now`, or Unix seconds.
    fn from_str(s: &str) -> Result<Self, BuildError> {
        match s {
            "now" => Ok(BuildTime::Now),
            _ => s
                .parse()
                .map(BuildTime::At)
                .map_err(|_| BuildError::InvalidBuildTime(s.to_string())),
        }
    }
}

impl BuildTime {
    /// The seconds to record.
    pub fn resolve(self) -> Result<u64, BuildError> {
        match self {
            BuildTime::At(secs) => Ok(secs),
            BuildTime::Now => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| BuildError::InvalidSourceDateEpoch(v)),
                Err(_) => Ok(std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)),
            },
        }
    }
}

/// A setting only the default layout has, named as the `romfs build` flag
/// that gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// [`BuildOptions::align`].
    Align,
    /// [`BuildOptions::align_rules`].
    AlignRules,
    /// [`BuildOptions::dedup`].
    Dedup,
    /// [`BuildOptions::checksum`].
    Checksum,
    /// [`BuildOptions::label`].
    Label,
    /// [`BuildOptions::generation`].
    Generation,
    /// [`BuildOptions::build_time`].
    BuildTime,
    /// [`BuildOptions::flash_write_size`].
    FlashWriteSize,
    /// [`BuildOptions::product`].
    Product,
    /// [`BuildOptions::sign`].
    Sign,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Align => "--align",
            Setting::AlignRules => "--align-rule",
            Setting::Dedup => "--no-dedup",
            Setting::Checksum => "--no-checksum",
            Setting::Label => "--label",
            Setting::Generation => "--generation",
            Setting::BuildTime => "--build-time",
            Setting::FlashWriteSize => "--flash-write-size",
            Setting::Product => "--product",
            Setting::Sign => "--sign",
        })
    }
}

/// Everything a build can be asked to do. `None` and empty fields leave the
/// layout's defaults; the mpremote layout takes none of the default
/// layout's settings (see [`BuildOptions::validate`]).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Byte layout.
    pub layout: Layout,
    /// Alignment of file data (default layout; the writer's default is 4).
    pub align: Option<u32>,
    /// `(glob, alignment)` rules; a file gets the largest alignment of the
    /// rules matching its path or name (default layout).
    pub align_rules: Vec<(String, u32)>,
    /// Store identical files once (default layout; on by default).
    pub dedup: Option<bool>,
    /// End the image with a CRC32 (default layout; on by default).
    pub checksum: Option<bool>,
    /// Metadata label (default layout).
    pub label: Option<String>,
    /// Metadata generation number (default layout).
    pub generation: Option<u64>,
    /// Metadata build time (default layout); `None` keeps the image
    /// reproducible.
    pub build_time: Option<BuildTime>,
    /// Make the image header-safe for single-slot updates of flash with
    /// write units of this many bytes (default layout; see
    /// `romfs_format::write::Options::header_write_size`).
    pub flash_write_size: Option<u32>,
    /// The product (board) the image is for, recorded in the metadata
    /// (default layout); a signed image's manifest carries it too.
    pub product: Option<String>,
    /// Sign the image with this key (default layout with a checksum; needs
    /// `product` and `generation`, which the signed manifest carries: see
    /// FORMAT.md, section 3.4).
    pub sign: Option<Arc<SigningKey>>,
    /// Glob patterns of entries to leave out.
    pub exclude: Vec<String>,
    /// Largest image allowed (a partition size).
    pub max_size: Option<u64>,
    /// `.py` → `.mpy` compilation.
    pub mpy: MpyMode,
    /// The compiler (default: `mpy-cross` on `PATH`).
    pub mpy_cross: Option<PathBuf>,
    /// Target architecture: passed to mpy-cross and used to check `.mpy` files.
    pub march: Option<Arch>,
    /// Target small-int bits: passed to mpy-cross and checked.
    pub small_int_bits: Option<u8>,
    /// Further mpy-cross arguments (e.g. `-O2`, `-X emit=native`).
    pub mpy_cross_args: Vec<OsString>,
    /// Compiler processes at once (0: one per core).
    pub jobs: usize,
    /// Reuse compiled `.mpy` files from this cache directory (see
    /// [`crate::cache`]); `None`: compile every file.
    pub compile_cache: Option<PathBuf>,
}

impl BuildOptions {
    /// Check the options against each other: the mpremote layout has no
    /// alignment, dedup, checksum, metadata or signature, so every such
    /// setting given with it is an error (one error listing them all); a
    /// signature needs the checksum record, a product and a generation that
    /// fits the manifest.
    pub fn validate(&self) -> Result<(), BuildError> {
        self.check(self.sign.is_some())
    }

    /// [`BuildOptions::validate`] before the signing key is loaded:
    /// `signing` says whether one will be (a command line checks its
    /// flags this way, so a wrong one is a usage error whatever the key).
    pub fn check(&self, signing: bool) -> Result<(), BuildError> {
        if self.layout != Layout::Mpremote {
            return self.check_signing(signing);
        }
        let given = [
            (self.align.is_some(), Setting::Align),
            (!self.align_rules.is_empty(), Setting::AlignRules),
            (self.dedup.is_some(), Setting::Dedup),
            (self.checksum.is_some(), Setting::Checksum),
            (self.label.is_some(), Setting::Label),
            (self.generation.is_some(), Setting::Generation),
            (self.build_time.is_some(), Setting::BuildTime),
            (self.flash_write_size.is_some(), Setting::FlashWriteSize),
            (self.product.is_some(), Setting::Product),
            (signing, Setting::Sign),
        ];
        let refused: Vec<Setting> = given
            .into_iter()
            .filter_map(|(set, setting)| set.then_some(setting))
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(BuildError::NotForMpremote(refused))
        }
    }

    /// A signed build's own rules (default layout).
    fn check_signing(&self, signing: bool) -> Result<(), BuildError> {
        if !signing {
            return Ok(());
        }
        if self.checksum == Some(false) {
            return Err(BuildError::SignNeedsChecksum);
        }
        let mut missing = Vec::new();
        if self.product.is_none() {
            missing.push(Setting::Product);
        }
        if self.generation.is_none() {
            missing.push(Setting::Generation);
        }
        if !missing.is_empty() {
            return Err(BuildError::SignNeeds(missing));
        }
        if let Some(g) = self.generation.filter(|&g| g > u64::from(u32::MAX)) {
            return Err(BuildError::SignedGeneration(g));
        }
        match &self.product {
            Some(p) if Manifest::product_field(p.as_bytes()).is_none() => {
                Err(BuildError::SignedProduct(p.clone()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpremote_refuses_every_default_layout_setting_at_once() {
        let opts = BuildOptions {
            layout: Layout::Mpremote,
            align: Some(16),
            label: Some("x".into()),
            flash_write_size: Some(8),
            ..BuildOptions::default()
        };
        let e = opts.validate().unwrap_err();
        assert!(matches!(
            &e,
            BuildError::NotForMpremote(s)
                if s == &[Setting::Align, Setting::Label, Setting::FlashWriteSize]
        ));
        assert!(e
            .to_string()
            .starts_with("--align, --label, --flash-write-size only apply to the default layout"));
        let one = BuildOptions {
            layout: Layout::Mpremote,
            label: Some("x".into()),
            ..BuildOptions::default()
        };
        assert!(one
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("--label only applies to the default layout"));
        let default_layout = BuildOptions {
            layout: Layout::Default,
            ..opts
        };
        assert!(default_layout.validate().is_ok());
        assert!(BuildOptions {
            layout: Layout::Mpremote,
            ..BuildOptions::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn signing_needs_a_checksum_a_product_and_a_32_bit_generation() {
        let key = Some(Arc::new(SigningKey::from_bytes(&[1; 32])));
        let signed = BuildOptions {
            sign: key,
            product: Some("board".into()),
            generation: Some(3),
            ..BuildOptions::default()
        };
        assert!(signed.validate().is_ok());
        let e = BuildOptions {
            product: None,
            generation: None,
            ..signed.clone()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--sign needs --product, --generation: the signed manifest carries the product \
             and the anti-rollback generation"
        );
        let e = BuildOptions {
            checksum: Some(false),
            ..signed.clone()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, BuildError::SignNeedsChecksum));
        let e = BuildOptions {
            generation: Some(1 << 32),
            ..signed.clone()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(e, BuildError::SignedGeneration(g) if g == 1 << 32));
        let e = BuildOptions {
            layout: Layout::Mpremote,
            ..signed
        }
        .validate()
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("--generation, --product, --sign only apply to the default layout"));
    }

    #[test]
    fn build_times() {
        assert_eq!("now".parse::<BuildTime>().unwrap(), BuildTime::Now);
        assert_eq!(
            "1700000000".parse::<BuildTime>().unwrap(),
            BuildTime::At(1_700_000_000)
        );
        for bad in ["yesterday", "", "-1", "1.5"] {
            let e = bad.parse::<BuildTime>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("build time {bad:?}: expected Unix seconds or `now`")
            );
        }
        assert_eq!(BuildTime::At(7).resolve().unwrap(), 7);
    }
}
