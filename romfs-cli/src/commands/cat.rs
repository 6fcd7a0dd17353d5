//! `romfs cat`: a file of an image on stdout.

use std::path::PathBuf;

use romfs_build::inspect::{self, ImageFile};

use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs cat`.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// The image.
    image: PathBuf,
    /// The file's path in the image.
    path: String,
}

impl Run for CatArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let file = ImageFile::open(&self.image)?;
        ui.out.write_all(inspect::cat(&file, &self.path)?)?;
        Ok(Status::Success)
    }
}
