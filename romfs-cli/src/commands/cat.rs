//! `romfs cat`: a file of an image on stdout.

use std::path::PathBuf;

use romfs_build::inspect;

use crate::cli::Run;
use crate::integrity;
use crate::ui::{Status, Ui};

/// Arguments of `romfs cat`.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The image.
    image: PathBuf,
    /// The file's path in the image.
    path: String,
    /// Read the file even when the image's checksum or signed digest says
    /// it is damaged (a warning says so).
    #[arg(long)]
    ignore_checksum: bool,
}

impl Run for CatArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let file = integrity::open_to_read(&self.image, self.ignore_checksum, ui)?;
        ui.out.write_all(inspect::cat(&file, &self.path)?)?;
        Ok(Status::Success)
    }
}
