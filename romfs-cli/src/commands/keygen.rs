//! `romfs keygen`: make an Ed25519 key pair for signing images.

use std::path::PathBuf;

use romfs_sign::{write_key_pair, SigningKey};

use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Write PREFIX.pem (the private key, readable by its owner only) and
    /// PREFIX.pub.pem (the public key). Existing files are never overwritten.
    #[arg(long, value_name = "PREFIX", default_value = "romfs-key")]
    out: PathBuf,
}

impl Run for KeygenArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let key = SigningKey::generate()?;
        let files = write_key_pair(&key, &self.out)?;
        writeln!(ui.out, "private key: {}", files.private.display())?;
        writeln!(ui.out, "public key:  {}", files.public.display())?;
        writeln!(ui.out, "key id:      {}", files.key_id)?;
        Ok(Status::Success)
    }
}
