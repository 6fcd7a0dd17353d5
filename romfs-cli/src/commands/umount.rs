//! `romfs umount`: unmount an image mounted with `romfs mount`.

use std::path::PathBuf;

use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs umount`.
#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// The mountpoint.
    mountpoint: PathBuf,
    /// Detach even if the filesystem is busy.
    #[arg(short = 'z', long)]
    lazy: bool,
}

impl Run for UmountArgs {
    fn run(self, _ui: &mut Ui) -> anyhow::Result<Status> {
        unmount(&self.mountpoint, self.lazy)
    }
}

/// Unmount (lazily: detach now even if busy); shared with `romfs-mount -u`.
pub(crate) fn unmount(mountpoint: &std::path::Path, lazy: bool) -> anyhow::Result<Status> {
    if lazy {
        romfs_mount::unmount_lazy(mountpoint)?;
    } else {
        romfs_mount::unmount(mountpoint)?;
    }
    Ok(Status::Success)
}
