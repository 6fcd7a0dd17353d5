//! `romfs mount`: mount an image read-only with FUSE.

use std::path::PathBuf;

use crate::cli::Run;
use crate::mount_cli::{mount, MountOptionArgs};
use crate::ui::{Status, Ui};

/// Arguments of `romfs mount`.
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// The image.
    image: PathBuf,
    /// The directory to mount it on.
    mountpoint: PathBuf,
    /// How to mount.
    #[command(flatten)]
    pub options: MountOptionArgs,
}

impl Run for MountArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        mount(
            &self.image,
            &self.mountpoint,
            &self.options.to_options(),
            ui,
        )
    }
}
