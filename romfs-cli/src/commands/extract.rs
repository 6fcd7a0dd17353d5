//! `romfs extract`: recreate an image's tree in a directory.

use std::path::PathBuf;

use romfs_build::inspect;

use crate::cli::Run;
use crate::integrity;
use crate::ui::{count, Status, Ui};

/// Arguments of `romfs extract`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// The image.
    image: PathBuf,
    /// Destination directory (created if missing).
    dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
    /// Extract even when the image's checksum or signed digest says it is
    /// damaged (a warning says so).
    #[arg(long)]
    ignore_checksum: bool,
}

impl Run for ExtractArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let file = integrity::open_to_read(&self.image, self.ignore_checksum, ui)?;
        let (dirs, files) = inspect::extract(&file, &self.dir, self.force)?;
        eprintln!(
            "extracted {} and {} into {}",
            count(files, "file"),
            count(dirs, "directory"),
            self.dir.display()
        );
        Ok(Status::Success)
    }
}
