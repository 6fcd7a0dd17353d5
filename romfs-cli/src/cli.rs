//! The `romfs` command line: one variant per subcommand.

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{
    build, cat, completions, deploy, diff, extract, info, keygen, ls, mount, publish, query, sign,
    tree, umount, verify,
};
use crate::exit::CheckUsage;
use crate::ui::{Status, Ui};

/// Build, inspect and mount MicroPython ROMFS images.
#[derive(Debug, Parser)]
#[command(name = "romfs", version, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand that can run.
pub trait Run {
    /// Do the work; output goes through `ui`.
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status>;
}

/// The subcommands.
///
/// To add one (e.g. `deploy`): write `src/commands/deploy.rs` with a clap
/// `Args` struct that implements [`Run`], declare it in `commands.rs`, then
/// add a variant here (its doc comment is the help line) and its arm in
/// [`Command::run`]. Errors are returned (`anyhow`), never printed: the one
/// exit path prints them.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a directory into an image.
    ///
    /// `.py` files are compiled to `.mpy` with `mpy-cross` (on PATH, or
    /// --mpy-cross) when it is available, unless a `.mpy` of the same name
    /// is beside them. Symlinks are followed. In the default layout names
    /// must be valid UTF-8 (MicroPython paths are str); in mpremote layout,
    /// ASCII.
    Build(Box<build::BuildArgs>),
    /// List a directory of an image (the root by default).
    Ls(ls::LsArgs),
    /// Show an image's tree.
    Tree(tree::TreeArgs),
    /// Write a file of an image to stdout (binary-safe).
    Cat(cat::CatArgs),
    /// Recreate an image's tree in a directory.
    Extract(extract::ExtractArgs),
    /// Describe an image: layout, sizes, counts, alignment of every file,
    /// checksum, metadata, signature, `.mpy` files by version and
    /// architecture.
    Info(info::InfoArgs),
    /// Check an image completely (and its signature, with --key); exit
    /// status 0 only when it is clean.
    Verify(verify::VerifyArgs),
    /// Write a delta patch that turns OLD into NEW (copied ranges and
    /// literal bytes; FORMAT.md, section 9).
    Diff(diff::DiffArgs),
    /// Make an Ed25519 key pair for signing images (PKCS#8 and SPKI PEM,
    /// the files OpenSSL reads and writes).
    Keygen(keygen::KeygenArgs),
    /// Sign an image built without a signature, or sign a signed one again
    /// (FORMAT.md, section 3.4).
    Sign(sign::SignArgs),
    /// Mount an image read-only with FUSE (returns once mounted; -f to stay
    /// in the foreground). Needs `fusermount3` (Debian package `fuse3`).
    Mount(Box<mount::MountArgs>),
    /// Unmount an image mounted with `romfs mount`.
    Umount(umount::UmountArgs),
    /// Describe a board's ROM partitions over its serial REPL: size, erase
    /// block and write sizes, and the image each holds (length, label,
    /// generation, and whether its CRC-32 matches the flash).
    Query(query::QueryArgs),
    /// Put an image on a board's ROM partition over its serial REPL, and
    /// run it.
    ///
    /// A directory is built first (as `romfs build`, with the same
    /// options) for the board's .mpy version, architecture and small-int
    /// bits. Only the erase blocks that changed are written, data the board
    /// already holds elsewhere is copied there, and the image header is
    /// written last, after the board checked everything else: an
    /// interrupted deploy leaves the old image, none, or the new one. Then
    /// the board soft-resets to run it.
    Deploy(Box<deploy::DeployArgs>),
    /// Publish an app for over-the-air updates: write its image and a
    /// manifest (block hashes, generation, product, Ed25519 signature with
    /// --sign) into a folder any static HTTP server can serve to devices
    /// running the `romfs_ota` MicroPython package (FORMAT.md, section 7).
    ///
    /// A folder is built in the stable layout, against the image the
    /// output folder already publishes when there is one (unless --fresh):
    /// unchanged files keep their offsets, so devices fetch and rewrite
    /// only the blocks that changed.
    Publish(Box<publish::PublishArgs>),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Run the subcommand.
    pub fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        match self {
            Command::Build(args) => (*args).run(ui),
            Command::Ls(args) => args.run(ui),
            Command::Tree(args) => args.run(ui),
            Command::Cat(args) => args.run(ui),
            Command::Extract(args) => args.run(ui),
            Command::Info(args) => args.run(ui),
            Command::Verify(args) => args.run(ui),
            Command::Diff(args) => args.run(ui),
            Command::Keygen(args) => args.run(ui),
            Command::Sign(args) => args.run(ui),
            Command::Mount(args) => (*args).run(ui),
            Command::Umount(args) => args.run(ui),
            Command::Query(args) => args.run(ui),
            Command::Deploy(args) => (*args).run(ui),
            Command::Publish(args) => (*args).run(ui),
            Command::Completions(args) => args.run(ui),
        }
    }
}

impl CheckUsage for Cli {
    fn check_usage(&self) -> Result<(), clap::Error> {
        let (name, checked) = match &self.command {
            Command::Build(args) => ("build", args.check_usage()),
            Command::Deploy(args) => ("deploy", args.check_usage()),
            _ => return Ok(()),
        };
        checked.map_err(|message| {
            let mut cli = Cli::command();
            cli.build();
            let sub = cli
                .find_subcommand_mut(name)
                .expect("the subcommand exists");
            sub.error(clap::error::ErrorKind::ArgumentConflict, message)
        })
    }
}
