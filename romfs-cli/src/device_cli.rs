//! `romfs query` and `romfs deploy`: a board's ROM partitions over its
//! serial REPL (the work is done by `romfs_device`).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use romfs_build::{build, human, BuildOptions, MpyMode};
use romfs_device::deploy::{DeployProgress, DeployReport};
use romfs_device::query::{ChecksumState, Contents, PartitionReport};
use romfs_device::{Board, SerialTransport, Timeouts};
use romfs_format::mpy::{Arch, MPY_VERSION};
use serde_json::json;

/// How to reach the board.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The board's serial port (default: the one USB serial device
    /// connected, as `mpremote connect auto`).
    #[arg(short, long, value_name = "PORT")]
    pub port: Option<String>,
    /// Seconds to wait for the board to answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
}

impl ConnectArgs {
    fn connect(&self) -> Result<Board<SerialTransport>> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout < 3600.0) {
            bail!(
                "--timeout {}: expected a number of seconds above 0",
                self.timeout
            );
        }
        let answer = Duration::from_secs_f64(self.timeout);
        let timeouts = Timeouts {
            answer,
            work: Timeouts::default().work.max(answer),
        };
        Ok(Board::open(self.port.as_deref(), timeouts)?)
    }
}

/// Arguments of `romfs query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// How to reach the board.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only this partition (default: all).
    #[arg(long, value_name = "N")]
    pub partition: Option<u32>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `romfs query`.
pub fn query(args: &QueryArgs, out: &mut impl Write) -> Result<()> {
    let mut board = args.connect.connect()?;
    let ids: Vec<u32> = match args.partition {
        Some(id) => vec![id],
        None => (0..board.partition_count()?).collect(),
    };
    let mut reports = Vec::new();
    for id in ids {
        reports.push(romfs_device::query(&mut board, id)?);
    }
    let target = board.mpy_target();
    let port = board.port().to_string();
    board.close()?;
    if args.json {
        let partitions: Vec<_> = reports.iter().map(partition_json).collect();
        let value = json!({
            "port": port,
            "mpy": target.map(|t| json!({
                "version": t.version,
                "arch": t.arch.name(),
                "sub_version": t.sub_version,
                "small_int_bits": t.small_int_bits,
            })),
            "partitions": partitions,
        });
        serde_json::to_writer_pretty(&mut *out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(t) = target {
        writeln!(
            out,
            "{port}: .mpy version {}, arch {}, {}-bit small ints",
            t.version, t.arch, t.small_int_bits
        )?;
    }
    for r in &reports {
        print_partition(out, r)?;
    }
    Ok(())
}

fn partition_json(r: &PartitionReport) -> serde_json::Value {
    let p = &r.partition;
    let contents = match &r.contents {
        Contents::Empty => json!({ "kind": "empty" }),
        Contents::Corrupt(why) => json!({ "kind": "corrupt", "reason": why }),
        Contents::Image(s) => {
            let (state, stored, on_flash) = match s.checksum {
                ChecksumState::Absent => ("absent", None, None),
                ChecksumState::Matches(c) => ("matches", Some(c), Some(c)),
                ChecksumState::Mismatch { stored, on_flash } => {
                    ("mismatch", Some(stored), Some(on_flash))
                }
                ChecksumState::Unchecked(c) => ("unchecked", Some(c), None),
            };
            json!({
                "kind": "image",
                "length": s.len,
                "tool": s.tool,
                "label": s.label,
                "generation": s.generation,
                "build_time": s.build_time,
                "checksum": state,
                "crc32": stored.map(|c| format!("{c:#010x}")),
                "crc32_on_flash": on_flash.map(|c| format!("{c:#010x}")),
            })
        }
    };
    json!({
        "id": p.id,
        "size": p.size,
        "erase_block_size": p.erase_size,
        "min_write_size": r.write_size,
        "writable": r.writable,
        "block_device": p.block_device,
        "contents": contents,
    })
}

fn print_partition(out: &mut impl Write, r: &PartitionReport) -> io::Result<()> {
    let p = &r.partition;
    let write = match (r.writable, r.write_size) {
        (false, _) => "read-only (the firmware refuses to erase it)".to_string(),
        (true, Some(w)) => format!("minimum write {w} bytes"),
        (true, None) => "minimum write size unknown (the image fills the partition)".to_string(),
    };
    writeln!(
        out,
        "partition {}: {} bytes ({}), erase blocks of {} bytes, {write}",
        p.id,
        p.size,
        human(p.size),
        p.erase_size
    )?;
    match &r.contents {
        Contents::Empty => writeln!(out, "  no image"),
        Contents::Corrupt(why) => writeln!(out, "  no valid image: {why}"),
        Contents::Image(s) => {
            writeln!(out, "  image: {} bytes ({})", s.len, human(s.len))?;
            if let Some(l) = &s.label {
                writeln!(out, "  label: {l}")?;
            }
            if let Some(g) = s.generation {
                writeln!(out, "  generation: {g}")?;
            }
            if let Some(t) = &s.tool {
                writeln!(out, "  written by: {t}")?;
            }
            match s.checksum {
                ChecksumState::Absent => writeln!(out, "  checksum: none (not a romfs-built image)"),
                ChecksumState::Matches(c) => {
                    writeln!(out, "  checksum: crc32 {c:#010x}, matches the flash")
                }
                ChecksumState::Mismatch { stored, on_flash } => writeln!(
                    out,
                    "  checksum: crc32 {stored:#010x}, but the flash gives {on_flash:#010x}: CORRUPT"
                ),
                ChecksumState::Unchecked(c) => writeln!(
                    out,
                    "  checksum: crc32 {c:#010x} (the board cannot compute CRC-32 to check it)"
                ),
            }
        }
    }
}

/// Arguments of `romfs deploy` that are not build options.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// An image, or a directory to build first (for the board's .mpy
    /// version, architecture and small-int bits, unless given).
    pub src: PathBuf,
    /// How to reach the board.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The ROM partition to write.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partition: u32,
    /// Leave the board as it is afterwards (by default it soft-resets and
    /// runs the new image).
    #[arg(long)]
    pub no_reset: bool,
    /// Print only errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `romfs deploy`; `build_options` are the `romfs build` options given.
pub fn deploy(args: &DeployArgs, mut build_options: BuildOptions) -> Result<()> {
    let mut board = args.connect.connect()?;
    let mut err = io::stderr().lock();
    let image = if args.src.is_dir() {
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
                build_options.small_int_bits =
                    build_options.small_int_bits.or(Some(t.small_int_bits));
            }
        }
        if build_options.layout == romfs_build::Layout::Default {
            // Header-safe for any flash write unit up to the largest known:
            // the header is written last and a cut write leaves no image.
            build_options.flash_write_size = build_options
                .flash_write_size
                .or(Some(romfs_format::write::MAX_HEADER_WRITE_SIZE));
        }
        build_image(&args.src, &build_options, args.quiet, &mut err)?
    } else {
        std::fs::read(&args.src)
            .with_context(|| format!("{}: cannot read the image", args.src.display()))?
    };
    let bar = Blocks::new(!args.quiet && io::stderr().is_terminal());
    let result = romfs_device::deploy(&mut board, &image, args.partition, &bar);
    bar.finish();
    let report = result?;
    for w in &report.warnings {
        writeln!(err, "romfs: warning: {w}")?;
    }
    let port = board.port().to_string();
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

fn build_image(
    src: &Path,
    opts: &BuildOptions,
    quiet: bool,
    err: &mut impl Write,
) -> Result<Vec<u8>> {
    let dir = tempfile::Builder::new().prefix("romfs-deploy-").tempdir()?;
    let out = dir.path().join("image.img");
    let report = build(src, &out, opts, &romfs_build::NoProgress)?;
    for w in &report.warnings {
        writeln!(err, "romfs: warning: {w}")?;
    }
    if !quiet {
        for n in &report.notes {
            writeln!(err, "romfs: note: {n}")?;
        }
        let arch = opts
            .march
            .map_or("bytecode".to_string(), |a| a.name().to_string());
        writeln!(
            err,
            "built {}: {} bytes, {} files ({} compiled for {arch})",
            src.display(),
            report.stats.image_len,
            report.stats.files,
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
            "{port}: partition {} already holds {} ({} bytes): nothing written; {} bytes sent in {:.2} s",
            r.partition.id,
            src.display(),
            r.image_len,
            r.bytes_sent,
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
            "{port}: deployed {} ({} bytes) to partition {}: {} of {} blocks written{assembled}, {} erased, {} unchanged; {} bytes sent in {:.2} s",
            src.display(),
            r.image_len,
            r.partition.id,
            r.written.len(),
            r.blocks,
            r.erased.len(),
            r.skipped,
            r.bytes_sent,
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
