//! The mount options of both `romfs mount` and `romfs-mount`, defined
//! once, and the `romfs-mount` command line (squashfuse-like:
//! `romfs-mount [OPTIONS] IMAGE MOUNTPOINT`, `romfs-mount -u [-z] MOUNTPOINT`).

use std::path::{Path, PathBuf};

use clap::Parser;
use romfs_mount::{parse_mode, parse_threads, MountOptions, OptionList};

use crate::ui::{Status, Ui};

/// How to mount: the same flags for `romfs mount` and `romfs-mount`.
#[derive(Debug, Clone, clap::Args)]
pub struct MountOptionArgs {
    /// Serve in the foreground; Ctrl-C or SIGTERM unmount.
    #[arg(short, long)]
    foreground: bool,
    /// Mount options (repeatable, comma-separated): allow_other, allow_root,
    /// uid=N, gid=N, umask=OCT, fmode=OCT, dmode=OCT, fsname=NAME, threads=N,
    /// readahead=MIB (default 16, 0 = off), noauto_unmount, ignore_checksum,
    /// noexec, noatime, nodev, nosuid... (`ro` is implied). Later options win;
    /// a flag below (--uid, --gid, --file-mode, --dir-mode, --allow-other,
    /// --threads) overrides the same setting in -o, wherever it appears.
    #[arg(short = 'o', value_name = "OPT[,OPT...]", value_parser = option_list)]
    options: Vec<OptionList>,
    /// Owner of every entry (default: you).
    #[arg(long)]
    uid: Option<u32>,
    /// Group of every entry (default: your group).
    #[arg(long)]
    gid: Option<u32>,
    /// Permission bits of files, octal (default 0444).
    #[arg(long, value_name = "OCT", value_parser = parse_mode)]
    file_mode: Option<u16>,
    /// Permission bits of directories, octal (default 0555).
    #[arg(long, value_name = "OCT", value_parser = parse_mode)]
    dir_mode: Option<u16>,
    /// Let other users access the mount (as -o allow_other).
    #[arg(long)]
    allow_other: bool,
    /// FUSE worker threads.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
}

fn option_list(s: &str) -> Result<OptionList, romfs_mount::OptionError> {
    s.parse()
}

impl MountOptionArgs {
    /// The options these flags ask for: the `-o` lists in order, then the
    /// flags (which win).
    pub fn to_options(&self) -> MountOptions {
        let mut opts = MountOptions {
            foreground: self.foreground,
            ..MountOptions::default()
        };
        for list in &self.options {
            opts.apply(list);
        }
        opts.allow_other |= self.allow_other;
        opts.uid = self.uid.or(opts.uid);
        opts.gid = self.gid.or(opts.gid);
        opts.file_mode = self.file_mode.unwrap_or(opts.file_mode);
        opts.dir_mode = self.dir_mode.unwrap_or(opts.dir_mode);
        opts.threads = self.threads.or(opts.threads);
        opts
    }
}

/// Map, verify and index `image`, report harmless findings as warnings,
/// then mount (returning once mounted, unless in the foreground).
pub(crate) fn mount(
    image: &Path,
    mountpoint: &Path,
    opts: &MountOptions,
    ui: &Ui,
) -> anyhow::Result<Status> {
    // An image that cannot be opened is left for the mounter to report,
    // in its own words.
    if let Ok(file) = romfs_build::ImageFile::open(image) {
        if let Some(damage) = crate::integrity::signed_digest(file.bytes()) {
            match opts.ignore_checksum {
                true => ui.warn(format_args!("{}: {damage}", image.display())),
                false => anyhow::bail!(
                    "{}: {damage}; not mounted (-o ignore_checksum mounts it anyway)",
                    image.display()
                ),
            }
        }
    }
    let prepared = romfs_mount::prepare(image, mountpoint, opts)?;
    for finding in prepared.warnings() {
        ui.warn(format_args!("{}: {finding}", image.display()));
    }
    prepared.mount()?;
    Ok(Status::Success)
}

/// Mount a MicroPython ROMFS image read-only with FUSE.
///
/// Returns once mounted; a background process serves the files until
/// `romfs-mount -u MOUNTPOINT` (or `fusermount3 -u MOUNTPOINT`). Needs
/// `fusermount3` (Debian package `fuse3`).
#[derive(Debug, Parser)]
#[command(
    name = "romfs-mount",
    version,
    override_usage = "romfs-mount [OPTIONS] IMAGE MOUNTPOINT\n       romfs-mount -u [-z] MOUNTPOINT"
)]
pub struct RomfsMountCli {
    /// Unmount MOUNTPOINT.
    #[arg(short = 'u', long, conflicts_with_all = ["MountOptionArgs", "mountpoint"])]
    unmount: bool,
    /// With -u: detach even if busy.
    // (Without -u there is a MOUNTPOINT; `requires = "unmount"` would not
    // fire, as the unset flag has a default value.)
    #[arg(short = 'z', long, conflicts_with = "mountpoint")]
    lazy: bool,
    #[command(flatten)]
    options: MountOptionArgs,
    /// The image (with -u: the mountpoint).
    #[arg(value_name = "IMAGE")]
    image: PathBuf,
    /// The directory to mount it on.
    #[arg(value_name = "MOUNTPOINT", required_unless_present = "unmount")]
    mountpoint: Option<PathBuf>,
}

impl RomfsMountCli {
    /// The mount options the command line asks for.
    pub fn mount_options(&self) -> MountOptions {
        self.options.to_options()
    }

    /// Mount, or with `-u`, unmount.
    pub fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        // clap requires a MOUNTPOINT without -u and refuses one with it.
        match &self.mountpoint {
            Some(mountpoint) => mount(&self.image, mountpoint, &self.mount_options(), ui),
            None => crate::commands::umount::unmount(&self.image, self.lazy),
        }
    }
}

impl crate::exit::CheckUsage for RomfsMountCli {}
