//! `romfs deploy`: put an image, or a directory built for the board, on a
//! board's ROM partition, and run it.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use romfs_build::{build, BuildOptions, MpyMode};
use romfs_device::deploy::{DeployProgress, DeployReport};
use romfs_device::{ErrorKind, Holds};
use romfs_format::mpy::{Arch, MPY_VERSION};

use crate::cli::Run;
use crate::commands::board::ConnectArgs;
use crate::commands::build::BuildFlags;
use crate::integrity;
use crate::ui::{count, Status, Ui};

/// Arguments of `romfs deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// An image (checked first: structure, checksum, signed digest; a
    /// damaged one is refused before any board is opened), or a directory
    /// to build first (for the board's .mpy version, architecture and
    /// small-int bits, unless given).
    src: PathBuf,
    /// How to reach the board.
    #[command(flatten)]
    connect: ConnectArgs,
    /// The ROM partition to write.
    #[arg(long, value_name = "N", default_value_t = 0)]
    partition: u32,
    /// Leave the board as it is afterwards (by default it soft-resets and
    /// runs the new image).
    #[arg(long)]
    no_reset: bool,
    /// Print only errors.
    #[arg(short, long)]
    quiet: bool,
    /// How to build a directory (as `romfs build`).
    #[command(flatten)]
    build: BuildFlags,
}

impl DeployArgs {
    /// A usage error when the build flags do not go together, or are
    /// given with an image (which is deployed as it is).
    pub fn check_usage(&self) -> Result<(), String> {
        let given = self.build.given();
        if self.src.exists() && !self.src.is_dir() && !given.is_empty() {
            return Err(format!(
                "{} {} only when deploying a directory (it is built for the board); {} is deployed as it is",
                given.join(", "),
                if given.len() == 1 { "applies" } else { "apply" },
                self.src.display()
            ));
        }
        self.build.check_usage()
    }
}

impl Run for DeployArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        deploy(&self, ui)?;
        Ok(Status::Success)
    }
}

fn deploy(args: &DeployArgs, ui: &mut Ui) -> Result<()> {
    args.connect.stop_on_signals()?;
    let mut build_options = args.build.options()?;
    // An image file is read and checked (structure, CRC-32, signed digest)
    // before the board is touched; its problems name the file, once.
    let file_image = if args.src.is_dir() {
        None
    } else {
        let bytes = std::fs::read(&args.src)
            .with_context(|| format!("{}: cannot read the image", args.src.display()))?;
        romfs_format::Image::parse(&bytes).map_err(|e| e.in_file(&args.src))?;
        integrity::require_intact(&args.src, &bytes, integrity::Use::Deploy, false, ui)?;
        Some(bytes)
    };
    let mut err = io::stderr().lock();
    // Connecting and building touch no flash: a stop here (Ctrl-C also
    // ends a running mpy-cross) leaves the old image, whatever failed.
    let memory = (!args.build.no_cache)
        .then(romfs_build::cache::default_root)
        .flatten()
        .map(|root| root.join("deployed"));
    let previous = memory.as_deref().map(recent_images).unwrap_or_default();
    let prepared = (|| -> Result<_> {
        let mut board = args.connect.connect()?;
        let image = match file_image {
            Some(bytes) => bytes,
            None => {
                let stable = board_base(args, &mut board, &previous)?;
                build_for_board(args, &board, &mut build_options, stable, ui, &mut err)?
            }
        };
        Ok((board, image))
    })();
    let (mut board, image) = match prepared {
        Err(e) => match romfs_device::stop::requested() {
            Some(signal) => {
                let port = args.connect.port.as_deref().unwrap_or("the board");
                let holds = Some((args.partition, Holds::OldImage));
                return Err(with_rerun_hint(
                    romfs_device::Error::new(port, ErrorKind::Interrupted { signal, holds }),
                    args.no_reset,
                ));
            }
            None => return Err(e),
        },
        Ok(prepared) => prepared,
    };
    let previous: Vec<&[u8]> = previous.iter().map(Vec::as_slice).collect();
    let bar = Blocks::new(!args.quiet && io::stderr().is_terminal());
    let result = romfs_device::deploy_with(&mut board, &image, args.partition, &bar, &previous);
    bar.finish();
    let report = result.map_err(|e| match e.kind {
        // What is wrong with the image is said of the image.
        ErrorKind::BadImage(problem) => {
            anyhow::anyhow!("{}: {problem} (board on {})", args.src.display(), e.port)
        }
        _ => with_rerun_hint(e, args.no_reset),
    })?;
    if let Some(dir) = &memory {
        remember(dir, &image);
    }
    for w in &report.warnings {
        ui.warn(w);
    }
    let port = board.port().to_string();
    if let Some(signal) = romfs_device::stop::requested() {
        // Done, but asked to stop: no reset the user did not wait for.
        let holds = Some((args.partition, romfs_device::Holds::NewImage));
        board.close()?;
        return Err(with_rerun_hint(
            romfs_device::Error::new(port, ErrorKind::Interrupted { signal, holds }),
            args.no_reset,
        ));
    }
    let reset_started = Instant::now();
    if args.no_reset {
        board.close()?;
    } else {
        board.soft_reset()?;
    }
    if !args.quiet {
        print_deploy(
            &mut err,
            &port,
            &args.src,
            &report,
            (!args.no_reset).then(|| reset_started.elapsed()),
        )?;
    }
    Ok(())
}

/// Which of the images this host deployed the board holds now (its first
/// block tells, one exchange): the base of a stable-layout build, so that
/// unchanged files keep their place in flash. A wrong guess costs only
/// blocks rewritten; the deploy still compares every block.
fn board_base<'p>(
    args: &DeployArgs,
    board: &mut romfs_device::Board<romfs_device::SerialTransport>,
    previous: &'p [Vec<u8>],
) -> Result<Stable<'p>> {
    if args.build.layout_given() {
        return Ok(None);
    }
    let part = board.partition(args.partition)?;
    let erase_block = u32::try_from(part.block_size).ok();
    let fits = part.size;
    if previous.is_empty() {
        return Ok(Some((None, erase_block, fits)));
    }
    let kind = board.hash_kind();
    let held = board.block_hashes(&part, 0, 1)?;
    let base = previous
        .iter()
        .find(|p| {
            held.first() == Some(&kind.hash(&romfs_device::plan::block_contents(p, &part, 0)))
        })
        .map(Vec::as_slice);
    Ok(Some((base, erase_block, fits)))
}

/// How `deploy` lays a directory out: `None`, as asked (a layout flag);
/// else the stable layout, on the base the board holds (if known), for the
/// partition's erase-block size, within the partition's size.
type Stable<'p> = Option<(Option<&'p [u8]>, Option<u32>, u64)>;

/// Below this many erase blocks (in a fresh layout), an app is laid out
/// afresh: an edit in the stable layout rewrites about three blocks (the
/// file's, the tree's, the checksum's) and the layout adds two or three,
/// while a fresh layout rewrites about half of a small image.
const STABLE_MIN_BLOCKS: u64 = 4;

/// The directory built for `board` (its .mpy target; header-safe; laid out
/// on `base`, the image the board holds, unless a layout was asked for).
fn build_for_board(
    args: &DeployArgs,
    board: &romfs_device::Board<romfs_device::SerialTransport>,
    build_options: &mut BuildOptions,
    stable: Stable<'_>,
    ui: &Ui,
    err: &mut impl Write,
) -> Result<Vec<u8>> {
    let target = board.mpy_target();
    if build_options.mpy != MpyMode::Never {
        if let Some(t) = target {
            if t.version != MPY_VERSION {
                bail!(
                    "{}: the board loads .mpy version {}, romfs compiles version {MPY_VERSION}: build with --no-mpy, or update the firmware",
                    board.port(),
                    t.version
                );
            }
            if build_options.march.is_none() && t.arch != Arch::None {
                build_options.march = Some(t.arch);
            }
            build_options.small_int_bits = build_options.small_int_bits.or(Some(t.small_int_bits));
        }
    }
    if build_options.layout == romfs_build::Layout::Default {
        // Header-safe for any flash write unit up to the largest known:
        // the header is written last and a cut write leaves no image.
        build_options.flash_write_size = build_options
            .flash_write_size
            .or(Some(romfs_format::write::MAX_HEADER_WRITE_SIZE));
    }
    build_image(&args.src, build_options, stable, args.quiet, ui, err)
}

/// A deploy a stop signal ended: the board's message, and the command
/// that finishes the job.
fn with_rerun_hint(e: romfs_device::Error, no_reset: bool) -> anyhow::Error {
    let status = match &e.kind {
        ErrorKind::Interrupted { signal, .. } => signal.exit_status(),
        _ => return e.into(),
    };
    let hint = match &e.kind {
        ErrorKind::Interrupted {
            holds: Some((_, Holds::NewImage)),
            ..
        } if no_reset => return e.into(),
        ErrorKind::Interrupted {
            holds: Some((_, Holds::NewImage)),
            ..
        } => "; to run it, reset the board or run",
        ErrorKind::Interrupted {
            holds: Some((_, Holds::NoImage)),
            ..
        } => "; to finish, run",
        ErrorKind::Interrupted { .. } => "; to deploy, run",
        _ => return e.into(),
    };
    crate::exit::Stopped {
        message: format!("{e}{hint}: {}", this_command()),
        status,
    }
    .into()
}

/// This process's command line, quoted for a POSIX shell.
fn this_command() -> String {
    let quote = |arg: String| {
        let plain = !arg.is_empty()
            && arg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./:=@%+,-".contains(&b));
        if plain {
            arg
        } else {
            format!("'{}'", arg.replace('\'', r"'\''"))
        }
    };
    let mut args = std::env::args_os().map(|a| quote(a.to_string_lossy().into_owned()));
    let program = args.next().map_or_else(
        || "romfs".to_string(),
        |p| {
            Path::new(&p)
                .file_name()
                .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
        },
    );
    std::iter::once(program)
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many images deployed from this host are remembered: when a board
/// holds one of them, its bytes are the source of moved data and the board
/// need not describe its blocks.
const REMEMBERED: usize = 8;

/// The remembered image files, newest first.
fn remembered(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "img"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().map(|(_, p)| p).collect()
}

/// The images deployed from this host, newest first.
fn recent_images(dir: &Path) -> Vec<Vec<u8>> {
    remembered(dir)
        .iter()
        .take(REMEMBERED)
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

/// Remember `image` as deployed (atomically; failures only cost speed
/// later), keeping the newest [`REMEMBERED`].
fn remember(dir: &Path, image: &[u8]) {
    use sha2::Digest;
    let _ = (|| -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let name: String = sha2::Sha256::digest(image)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(image)?;
        tmp.persist(dir.join(format!("{name}.img")))
            .map_err(|e| e.error)?;
        for old in remembered(dir).iter().skip(REMEMBERED) {
            let _ = std::fs::remove_file(old);
        }
        Ok(())
    })();
}

/// Build `src`; with `stable`, in the stable layout on its base (when the
/// board holds a known image) so that unchanged files keep their place.
fn build_image(
    src: &Path,
    opts: &BuildOptions,
    stable: Stable<'_>,
    quiet: bool,
    ui: &Ui,
    err: &mut impl Write,
) -> Result<Vec<u8>> {
    let dir = tempfile::Builder::new().prefix("romfs-deploy-").tempdir()?;
    let out = dir.path().join("image.img");
    let report = match stable {
        None => build(src, &out, opts, &romfs_build::NoProgress)?,
        Some((base, erase_block, partition)) => {
            let (report, layout) = romfs_build::build_with_base(
                src,
                &out,
                opts,
                &romfs_format::write::StableOptions { erase_block },
                base,
                &romfs_build::NoProgress,
            )?;
            let block = u64::from(layout.erase_block);
            let small = layout.fresh_len < STABLE_MIN_BLOCKS * block;
            if small || layout.image_len > partition {
                if !quiet && base.is_some() {
                    ui.note(if small {
                        format!(
                            "laid out afresh: the app spans fewer than {STABLE_MIN_BLOCKS} erase blocks of {}",
                            romfs_build::human(block)
                        )
                    } else {
                        "laid out afresh: the stable layout would not fit the partition".to_string()
                    });
                }
                build(src, &out, opts, &romfs_build::NoProgress)?
            } else {
                if !quiet && base.is_some() {
                    match &layout.fresh {
                        None => ui.note(format!(
                            "laid out on the image the board holds: {} file contents kept their place, {} placed anew",
                            layout.kept, layout.placed
                        )),
                        Some(reason) => ui.note(format!("laid out afresh: {reason}")),
                    }
                }
                report
            }
        }
    };
    for w in &report.warnings {
        ui.warn(w);
    }
    if !quiet {
        for n in &report.notes {
            ui.note(n);
        }
        let arch = opts
            .march
            .map_or("bytecode".to_string(), |a| a.name().to_string());
        writeln!(
            err,
            "built {}: {}, {} ({} compiled for {arch})",
            src.display(),
            count(report.stats.image_len as usize, "byte"),
            count(report.stats.files, "file"),
            report.compiled
        )?;
    }
    Ok(std::fs::read(&out)?)
}

fn print_deploy(
    err: &mut impl Write,
    port: &str,
    src: &Path,
    r: &DeployReport,
    reset: Option<Duration>,
) -> io::Result<()> {
    if r.up_to_date() {
        writeln!(
            err,
            "{port}: partition {} already holds {} ({}): nothing written; {} sent in {:.2} s",
            r.partition.id,
            src.display(),
            count(r.image_len as usize, "byte"),
            count(r.bytes_sent as usize, "byte"),
            r.elapsed.as_secs_f64()
        )?;
    } else {
        let assembled = if r.assembled > 0 {
            format!(
                " ({} assembled on the board from data it held)",
                r.assembled
            )
        } else {
            String::new()
        };
        writeln!(
            err,
            "{port}: deployed {} ({}) to partition {}: {} of {} written{assembled}, {} erased, {} unchanged; {} sent in {:.2} s",
            src.display(),
            count(r.image_len as usize, "byte"),
            r.partition.id,
            r.written.len(),
            count(r.blocks as usize, "block"),
            r.erased.len(),
            r.skipped,
            count(r.bytes_sent as usize, "byte"),
            r.elapsed.as_secs_f64()
        )?;
    }
    if reset.is_some() {
        writeln!(err, "{port}: soft reset: the board runs the new image")?;
    }
    Ok(())
}

/// A progress bar of blocks written, on a terminal.
struct Blocks(Option<indicatif::ProgressBar>);

impl Blocks {
    fn new(enabled: bool) -> Self {
        Blocks(enabled.then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "  deploying [{bar:30}] {pos}/{len} blocks {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        }))
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl DeployProgress for Blocks {
    fn start(&self, blocks: u64) {
        if let Some(b) = &self.0 {
            b.set_length(blocks);
        }
    }
    fn block_done(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }
}
