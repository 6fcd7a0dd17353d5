//! `romfs publish`: an image and its over-the-air manifest (FORMAT.md,
//! section 7), in a folder any static HTTP server can serve to devices
//! running the `romfs_ota` MicroPython package.
//!
//! A folder is built in the stable layout (FORMAT.md, section 2.3) against
//! the image the output folder already publishes, so a new release keeps
//! the old one's unchanged files at their offsets and devices fetch and
//! rewrite few blocks.

use std::collections::HashSet;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use romfs_build::output::write_file;
use romfs_build::{build, build_with_base, Layout, StableOptions, StableReport};
use romfs_format::Image;
use romfs_sign::SigningKey;
use sha2::{Digest, Sha256};

use crate::cli::Run;
use crate::commands::build::BuildFlags;
use crate::progress::Bar;
use crate::ui::{count, Status, Ui};
use romfs_build::Progress as _;

/// The manifest's file name in the output folder.
pub const MANIFEST_NAME: &str = "ota.manifest";
/// First bytes of a manifest.
pub const MAGIC: &[u8; 8] = b"ROMFSOTA";
/// The manifest format version.
pub const VERSION: u8 = 1;
/// log2 of the block size the manifest hashes (4 KiB).
pub const BLOCK_SHIFT: u8 = 12;
/// Bytes of SHA-256 kept per block.
pub const BLOCK_HASH_LEN: usize = 8;
/// The signed header's length; the signature follows it.
pub const HEADER_LEN: usize = 128;
/// Where the block table starts.
pub const TABLE_OFFSET: usize = HEADER_LEN + 64;
/// Longest product name.
pub const PRODUCT_LEN: usize = 32;

/// Arguments of `romfs publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// An app folder (built as `romfs build --stable` builds it) or an
    /// image (published as it is).
    src: PathBuf,
    /// The folder to write the image and `ota.manifest` into (created if
    /// missing; files of earlier publishes are kept, so devices part way
    /// through an update can finish it).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// How to build a folder, and --sign KEY --product NAME --generation N,
    /// which also go into the manifest.
    #[command(flatten)]
    build: BuildFlags,
    /// Lay a folder out afresh instead of against the image DIR already
    /// publishes. By default a folder is built in the stable layout with
    /// that image as its base (`romfs build --base`): unchanged files keep
    /// their offsets, so a device updating from it fetches and rewrites
    /// only the blocks that changed.
    #[arg(long)]
    fresh: bool,
    /// Print only errors.
    #[arg(short, long)]
    quiet: bool,
}

impl Run for PublishArgs {
    fn run(self, ui: &mut Ui) -> Result<Status> {
        let options = self.build.options()?;
        let mut against = None;
        let image = if self.src.is_dir() {
            let tmp = tempfile::Builder::new()
                .prefix("romfs-publish-")
                .tempdir()?;
            let out = tmp.path().join("image.img");
            // The stable layout builds on the default layout only.
            let stable = options.layout == Layout::Default;
            let base = if stable && !self.fresh {
                match previous_publication(&self.output) {
                    Ok(found) => found,
                    Err(why) => {
                        ui.note(format!(
                            "{}: laid out afresh, not against the previous publication: {why}",
                            self.output.display()
                        ));
                        None
                    }
                }
            } else {
                None
            };
            let bar = Bar::new(!self.quiet && io::stderr().is_terminal());
            let report = if stable {
                build_with_base(
                    &self.src,
                    &out,
                    &options,
                    &StableOptions::default(),
                    base.as_ref().map(|b| b.image.as_slice()),
                    &bar,
                )
                .map(|(report, layout)| {
                    against = Some((base, layout));
                    report
                })
            } else {
                build(&self.src, &out, &options, &bar)
            };
            bar.finish();
            let report = report?;
            for w in &report.warnings {
                ui.warn(w);
            }
            std::fs::read(&out)?
        } else {
            let bytes = std::fs::read(&self.src)
                .with_context(|| format!("{}: cannot read", self.src.display()))?;
            Image::parse(&bytes).map_err(|e| e.in_file(&self.src))?;
            bytes
        };
        let claims = Claims {
            product: options.product.as_deref().unwrap_or(""),
            generation: options.generation.unwrap_or(0),
        };
        let manifest = manifest(&image, &claims, options.sign.as_deref())
            .with_context(|| format!("{}: cannot publish", self.src.display()))?;
        let name = image_name(&image);
        std::fs::create_dir_all(&self.output)
            .with_context(|| format!("{}: cannot create", self.output.display()))?;
        // The image first: a server never offers a manifest whose image is
        // missing.
        for (file, bytes) in [(name.as_str(), &image), (MANIFEST_NAME, &manifest)] {
            let path = self.output.join(file);
            write_file(&path, bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
        if !self.quiet {
            writeln!(
                ui.out,
                "{}: {} ({} bytes, {} blocks), generation {}{}{}",
                self.output.display(),
                name,
                image.len(),
                image.len().div_ceil(1 << BLOCK_SHIFT),
                claims.generation,
                if claims.product.is_empty() {
                    String::new()
                } else {
                    format!(", product {}", claims.product)
                },
                if options.sign.is_some() {
                    ", signed"
                } else {
                    ""
                }
            )?;
            if let Some((base, layout)) = &against {
                write_layout(ui, base.as_ref(), layout, &image)?;
            }
        }
        Ok(Status::Success)
    }
}

/// The image a folder already publishes, found through its manifest.
#[derive(Debug)]
struct Publication {
    /// The image's file name in the folder.
    name: String,
    /// Its bytes, which match the manifest's SHA-256.
    image: Vec<u8>,
}

/// The publication `dir` holds: `Ok(None)` when it holds none (no
/// manifest), `Err` saying why one that is there cannot serve as the base.
fn previous_publication(dir: &Path) -> Result<Option<Publication>, String> {
    let path = dir.join(MANIFEST_NAME);
    let manifest = match std::fs::read(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if manifest.len() < TABLE_OFFSET || &manifest[..8] != MAGIC {
        return Err(format!("{}: not an OTA manifest", path.display()));
    }
    let sha = &manifest[56..88];
    let name = image_name_of_digest(sha);
    let image_path = dir.join(&name);
    let image = std::fs::read(&image_path).map_err(|e| format!("{}: {e}", image_path.display()))?;
    if Sha256::digest(&image)[..] != *sha {
        return Err(format!(
            "{}: does not match the SHA-256 in {}",
            image_path.display(),
            path.display()
        ));
    }
    Ok(Some(Publication { name, image }))
}

/// What the stable layout cost, and what building against the previous
/// publication saved, on stdout: the blocks a device holding it rewrites,
/// and those it must fetch (held nowhere in the old image).
fn write_layout(
    ui: &mut Ui,
    base: Option<&Publication>,
    layout: &StableReport,
    image: &[u8],
) -> io::Result<()> {
    writeln!(
        ui.out,
        "  stable layout ({}-byte erase blocks): {} over a packed image, room to build the next release on",
        layout.erase_block,
        count(layout.cost().max(0) as usize, "byte"),
    )?;
    let Some(base) = base else { return Ok(()) };
    if let Some(reason) = &layout.fresh {
        ui.note(format!(
            "laid out afresh, not against the previous publication {}: {reason}",
            base.name
        ));
        return Ok(());
    }
    let (rewritten, fetched) = blocks_changed(&base.image, image);
    writeln!(
        ui.out,
        "  laid out against the previous publication {} ({} kept in place, {} placed anew): \
         a device holding it rewrites {} and fetches {} of {}",
        base.name,
        count(layout.kept, "file content"),
        count(layout.placed, "file content"),
        count(rewritten, "block"),
        fetched,
        count(image.len().div_ceil(1 << BLOCK_SHIFT), "block"),
    )
}

/// Of the manifest blocks of `new`: how many differ from `old` at the same
/// offset (a device rewrites them), and how many of those `old` holds
/// nowhere (a device fetches them; the others it copies).
pub fn blocks_changed(old: &[u8], new: &[u8]) -> (usize, usize) {
    let block = 1 << BLOCK_SHIFT;
    let held: HashSet<&[u8]> = old.chunks(block).collect();
    let mut rewritten = 0;
    let mut fetched = 0;
    for (i, b) in new.chunks(block).enumerate() {
        if old.get(i * block..i * block + b.len()) != Some(b) {
            rewritten += 1;
            if !held.contains(b) {
                fetched += 1;
            }
        }
    }
    (rewritten, fetched)
}

/// What the manifest promises besides the image.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// The product the image is for ("" for any).
    pub product: &'a str,
    /// The generation (devices take only newer ones).
    pub generation: u64,
}

/// The image's file name: named by its contents, so a new publish never
/// changes bytes a device is part way through fetching.
pub fn image_name(image: &[u8]) -> String {
    image_name_of_digest(&Sha256::digest(image))
}

/// The image file name for the SHA-256 `digest`.
fn image_name_of_digest(digest: &[u8]) -> String {
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.romfs")
}

/// The manifest of `image` (FORMAT.md, section 7), signed when `key` is given.
pub fn manifest(image: &[u8], claims: &Claims<'_>, key: Option<&SigningKey>) -> Result<Vec<u8>> {
    let len = u32::try_from(image.len()).context("the image is larger than 4 GiB")?;
    let product = claims.product.as_bytes();
    if product.len() > PRODUCT_LEN || product.contains(&0) {
        bail!("the product name must be at most {PRODUCT_LEN} bytes, without NUL");
    }
    let mut table = Vec::with_capacity(image.len().div_ceil(1 << BLOCK_SHIFT) * BLOCK_HASH_LEN);
    for block in image.chunks(1 << BLOCK_SHIFT) {
        table.extend_from_slice(&Sha256::digest(block)[..BLOCK_HASH_LEN]);
    }
    let mut out = Vec::with_capacity(TABLE_OFFSET + table.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(BLOCK_SHIFT);
    out.push(BLOCK_HASH_LEN as u8);
    out.push(key.is_some() as u8);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&claims.generation.to_le_bytes());
    let mut name = [0u8; PRODUCT_LEN];
    name[..product.len()].copy_from_slice(product);
    out.extend_from_slice(&name);
    out.extend_from_slice(&Sha256::digest(image));
    out.extend_from_slice(&Sha256::digest(&table));
    match key {
        Some(k) => out.extend_from_slice(&k.key_id().0),
        None => out.extend_from_slice(&[0; 8]),
    }
    debug_assert_eq!(out.len(), HEADER_LEN);
    let signature = key.map_or([0; 64], |k| k.sign_message(&out));
    out.extend_from_slice(&signature);
    out.extend_from_slice(&table);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_determinism() {
        let image: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let claims = Claims {
            product: "board-x",
            generation: 0x0102_0304_0506_0708,
        };
        let key = SigningKey::from_bytes(&[5; 32]);
        let a = manifest(&image, &claims, Some(&key)).unwrap();
        assert_eq!(a, manifest(&image, &claims, Some(&key)).unwrap());
        assert_eq!(a.len(), TABLE_OFFSET + 3 * BLOCK_HASH_LEN);
        assert_eq!(&a[..8], MAGIC);
        assert_eq!(a[8..12], [VERSION, BLOCK_SHIFT, 8, 1]);
        assert_eq!(a[12..16], 10_000u32.to_le_bytes());
        assert_eq!(a[16..24], claims.generation.to_le_bytes());
        assert_eq!(&a[24..31], b"board-x");
        assert_eq!(a[56..88], Sha256::digest(&image)[..]);
        assert_eq!(a[88..120], Sha256::digest(&a[TABLE_OFFSET..])[..]);
        assert_eq!(a[TABLE_OFFSET + 16..], Sha256::digest(&image[8192..])[..8]);
        let public = key.public_key().to_bytes();
        let vk = ed25519_dalek_verify(&public, &a[..HEADER_LEN], &a[HEADER_LEN..TABLE_OFFSET]);
        assert!(vk);
        let unsigned = manifest(&image, &claims, None).unwrap();
        assert_eq!(unsigned[11], 0);
        assert_eq!(unsigned[HEADER_LEN..TABLE_OFFSET], [0; 64]);
        assert!(manifest(
            &image,
            &Claims {
                product: &"x".repeat(33),
                generation: 1
            },
            None
        )
        .is_err());
    }

    #[test]
    fn blocks_changed_counts_rewritten_and_fetched_blocks() {
        let block = |b: u8| vec![b; 1 << BLOCK_SHIFT];
        let old = [block(1), block(2), block(3)].concat();
        // Block 0 in place, block 1 moved from old block 2 (copied),
        // block 2 new (fetched), a short last block new (fetched).
        let new = [block(1), block(3), block(9), vec![7; 100]].concat();
        assert_eq!(blocks_changed(&old, &new), (3, 2));
        assert_eq!(blocks_changed(&old, &old), (0, 0));
    }

    fn ed25519_dalek_verify(key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
        // The key's own check, through a one-off signature comparison:
        // Ed25519 is deterministic, so re-signing gives the same bytes.
        let k = SigningKey::from_bytes(&[5; 32]);
        k.public_key().to_bytes() == *key && k.sign_message(message)[..] == *signature
    }
}
