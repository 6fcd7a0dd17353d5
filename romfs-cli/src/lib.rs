#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
mod exit;
mod integrity;
pub mod mount_cli;
mod progress;
mod ui;
pub mod values;

use std::process::ExitCode;

pub use ui::{count, Status, Ui};

/// The `romfs` command: parse the arguments of this process and run.
pub fn romfs_main() -> ExitCode {
    exit::run::<cli::Cli>("romfs", |cli, ui| cli.command.run(ui))
}

/// The `romfs-mount` command: parse the arguments of this process and run.
pub fn romfs_mount_main() -> ExitCode {
    exit::run::<mount_cli::RomfsMountCli>("romfs-mount", |cli, ui| cli.run(ui))
}
