//! `romfs sign`: sign an image that was built without a signature, or sign
//! a signed one again (another key, product or generation). An image whose
//! checksum or signed digest no longer matches is refused unless told
//! `--ignore-checksum`: signing it would vouch for the change.

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use romfs_build::output;
use romfs_sign::{sign_image, SigningKey};

use crate::cli::Run;
use crate::integrity;
use crate::ui::{count, Status, Ui};

/// Arguments of `romfs sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The image (a default-layout image with a checksum record, signed or not).
    image: PathBuf,
    /// The Ed25519 private key: PKCS#8 PEM, as `romfs keygen` or `openssl
    /// genpkey -algorithm ed25519` writes it.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The product (board) the image is for (at most 32 bytes). Default:
    /// what its signature record, else its metadata, says.
    #[arg(long, value_name = "NAME")]
    product: Option<String>,
    /// The anti-rollback generation (devices refuse images not newer than
    /// the one they run). Default: what its signature record, else its
    /// metadata, says.
    #[arg(long, value_name = "N")]
    generation: Option<u32>,
    /// Write the signed image here instead of replacing IMAGE (either way
    /// as `romfs build -o` writes: atomically, through symlinks, devices in
    /// place; on failure nothing changes).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Sign even when the image's checksum or signed digest says it was
    /// changed (a warning says so): its bytes are signed as they are, with
    /// their checksum made to match.
    #[arg(long)]
    ignore_checksum: bool,
}

impl Run for SignArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let key = SigningKey::load(&self.key)?;
        let out = self.output.as_ref().unwrap_or(&self.image);
        let mut bytes = fs::read(&self.image).with_context(|| self.image.display().to_string())?;
        let in_file = |error| romfs_sign::Error::InFile {
            path: self.image.clone(),
            error: Box::new(error),
        };
        romfs_format::Image::parse(&bytes).map_err(|e| e.in_file(&self.image))?;
        // A changed image is not vouched for without being told to: signing
        // it would hide the change.
        let ignored = integrity::require_intact(
            &self.image,
            &bytes,
            integrity::Use::Sign,
            self.ignore_checksum,
            ui,
        )?;
        if !ignored.is_empty() {
            romfs_format::write::restamp_checksum(&mut bytes)
                .map_err(|e| in_file(romfs_sign::Error::Image(e)))?;
        }
        let (image, signed) =
            sign_image(bytes, &key, self.product.as_deref(), self.generation).map_err(in_file)?;
        output::write_file(out, &image).with_context(|| out.display().to_string())?;
        writeln!(
            ui.out,
            "{}: signed by key {} for product {:?}, generation {} ({})",
            out.display(),
            signed.key_id,
            signed.product,
            signed.generation,
            count(signed.image_len as usize, "byte")
        )?;
        Ok(Status::Success)
    }
}
