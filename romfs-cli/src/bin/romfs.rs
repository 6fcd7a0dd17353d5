//! `romfs`: build and inspect MicroPython ROMFS images.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use romfs_build::inspect::{self, ImageFile};
use romfs_build::{
    build, human, parse_arch, parse_rule, parse_size, BuildOptions, BuildReport, Layout, MpyMode,
    Progress,
};
use romfs_format::mpy::Arch;

/// Build and inspect MicroPython ROMFS images.
#[derive(Debug, Parser)]
#[command(name = "romfs", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, clap::Args)]
struct MountArgs {
    /// The image.
    image: PathBuf,
    /// The directory to mount it on.
    mountpoint: PathBuf,
    /// Serve in the foreground; Ctrl-C or SIGTERM unmount.
    #[arg(short, long)]
    foreground: bool,
    /// Mount options (repeatable, comma-separated): allow_other, allow_root,
    /// uid=N, gid=N, umask=OCT, fmode=OCT, dmode=OCT, fsname=NAME, threads=N,
    /// readahead=MIB (default 16, 0 = off),
    /// noauto_unmount, ignore_checksum, noexec, noatime, nodev, nosuid...
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    options: Vec<String>,
    /// Owner of every entry (default: you).
    #[arg(long)]
    uid: Option<u32>,
    /// Group of every entry (default: your group).
    #[arg(long)]
    gid: Option<u32>,
    /// Permission bits of files, octal (default 0444).
    #[arg(long, value_name = "OCT")]
    file_mode: Option<String>,
    /// Permission bits of directories, octal (default 0555).
    #[arg(long, value_name = "OCT")]
    dir_mode: Option<String>,
    /// Let other users access the mount.
    #[arg(long)]
    allow_other: bool,
    /// FUSE worker threads.
    #[arg(long)]
    threads: Option<usize>,
}

impl MountArgs {
    fn options(&self) -> Result<romfs_mount::MountOptions> {
        let mut opts = romfs_mount::MountOptions::default();
        for o in &self.options {
            opts.parse_fuse_options(o)?;
        }
        opts.foreground |= self.foreground;
        opts.allow_other |= self.allow_other;
        opts.uid = self.uid.or(opts.uid);
        opts.gid = self.gid.or(opts.gid);
        if let Some(m) = &self.file_mode {
            opts.file_mode = romfs_mount::parse_mode(m)?;
        }
        if let Some(m) = &self.dir_mode {
            opts.dir_mode = romfs_mount::parse_mode(m)?;
        }
        if let Some(t) = self.threads {
            opts.parse_fuse_options(&format!("threads={t}"))?;
        }
        Ok(opts)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// Aligned, deduplicated, with metadata and a CRC32 (see FORMAT.md).
    Default,
    /// Byte for byte what `mpremote romfs build` writes.
    Mpremote,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Pack a directory into an image.
    ///
    /// `.py` files are compiled to `.mpy` with `mpy-cross` (on PATH, or
    /// --mpy-cross) when it is available, unless a `.mpy` of the same name
    /// is beside them. Symlinks are followed. In the default layout names
    /// must be valid UTF-8 (MicroPython paths are str); in mpremote layout,
    /// ASCII.
    Build(Box<BuildArgs>),
    /// List a directory of an image (the root by default).
    Ls {
        /// The image.
        image: PathBuf,
        /// A directory or file in the image.
        #[arg(default_value = "")]
        path: String,
        /// Long listing: type, size, data offset.
        #[arg(short, long)]
        long: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show an image's tree.
    Tree {
        /// The image.
        image: PathBuf,
    },
    /// Write a file of an image to stdout (binary-safe).
    Cat {
        /// The image.
        image: PathBuf,
        /// The file's path in the image.
        path: String,
    },
    /// Recreate an image's tree in a directory.
    Extract {
        /// The image.
        image: PathBuf,
        /// Destination directory (created if missing).
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Describe an image: layout, sizes, counts, alignment of every file,
    /// checksum, metadata, `.mpy` files by version and architecture.
    Info {
        /// The image.
        image: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check an image completely; exit status 0 only when it is clean.
    Verify {
        /// The image.
        image: PathBuf,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Mount an image read-only with FUSE (returns once mounted; -f to stay
    /// in the foreground). Needs `fusermount3` (Debian package `fuse3`).
    Mount(Box<MountArgs>),
    /// Unmount an image mounted with `romfs mount`.
    Umount {
        /// The mountpoint.
        mountpoint: PathBuf,
        /// Detach even if the filesystem is busy.
        #[arg(short = 'z', long)]
        lazy: bool,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The directory to pack.
    dir: PathBuf,
    /// The image to write (replaced atomically).
    #[arg(short, long, value_name = "IMG")]
    output: PathBuf,
    /// Byte layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Default)]
    layout: LayoutArg,
    /// Alignment of file data from the image start (power of two).
    #[arg(long, value_name = "N")]
    align: Option<u32>,
    /// Alignment for files matching GLOB, e.g. '*.tflite=16' (repeatable;
    /// the largest matching alignment wins).
    #[arg(long = "align-rule", value_name = "GLOB=N", value_parser = parse_rule)]
    align_rules: Vec<(String, u32)>,
    /// Store identical files separately.
    #[arg(long)]
    no_dedup: bool,
    /// Leave out the CRC32 record.
    #[arg(long)]
    no_checksum: bool,
    /// Make the image safe to update in place on flash whose write unit is
    /// N bytes (1 to 32, e.g. 4, 8, or 32 on STM32H7): the image length is
    /// padded so the first N bytes are always `d2 cd 31 80 ...`. A power cut
    /// while a single-slot updater writes that unit last then leaves
    /// MicroPython no image or the new one, never a wrong length. The image
    /// grows by about N bytes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=romfs_format::write::MAX_HEADER_WRITE_SIZE as i64))]
    flash_write_size: Option<u32>,
    /// A label recorded in the image's metadata.
    #[arg(long)]
    label: Option<String>,
    /// A generation number recorded in the metadata (higher is newer).
    #[arg(long)]
    generation: Option<u64>,
    /// Record a build time: Unix seconds, or `now` (SOURCE_DATE_EPOCH if set,
    /// else the clock). By default none is recorded, so builds are reproducible.
    #[arg(long, value_name = "SECS|now")]
    build_time: Option<String>,
    /// Leave out entries whose path or name matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Fail if the image is larger than SIZE (e.g. 1M, 512K).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
    /// Compile .py to .mpy (an error without mpy-cross).
    #[arg(long, conflicts_with = "no_mpy")]
    mpy: bool,
    /// Store .py files as they are.
    #[arg(long)]
    no_mpy: bool,
    /// The mpy-cross to run (default: mpy-cross on PATH).
    #[arg(long, value_name = "PATH")]
    mpy_cross: Option<PathBuf>,
    /// Target architecture: passed to mpy-cross, and every .mpy is checked
    /// to run on it.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    march: Option<Arch>,
    /// Target small-int bits: passed to mpy-cross and checked.
    #[arg(long, value_name = "BITS")]
    msmall_int_bits: Option<u8>,
    /// Extra argument for mpy-cross, e.g. --mpy-cross-arg=-O2 (repeatable).
    #[arg(long = "mpy-cross-arg", value_name = "ARG", allow_hyphen_values = true)]
    mpy_cross_args: Vec<OsString>,
    /// Compiler processes at once (default: one per core).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Print only errors.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print the tree as it is packed.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("romfs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Cmd::Build(args) => cmd_build(*args),
        Cmd::Ls {
            image,
            path,
            long,
            json,
        } => {
            let file = ImageFile::open(&image)?;
            let entries = inspect::list(&file, &path)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &entries)?;
                writeln!(out)?;
            } else {
                for e in entries {
                    let name = if e.kind == "dir" {
                        format!("{}/", e.name)
                    } else {
                        e.name.clone()
                    };
                    if long {
                        let offset = e
                            .offset
                            .map(|o| format!("{o:#x}"))
                            .unwrap_or_else(|| "-".into());
                        let shared = if e.shared { " (shared)" } else { "" };
                        writeln!(
                            out,
                            "{:<4} {:>10} {:>10}  {name}{shared}",
                            e.kind, e.size, offset
                        )?;
                    } else {
                        writeln!(out, "{name}")?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Tree { image } => {
            let file = ImageFile::open(&image)?;
            inspect::walk(&file)?; // report corruption as an error first
            inspect::write_tree(&file, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cat { image, path } => {
            let file = ImageFile::open(&image)?;
            let data = inspect::cat(&file, &path)?;
            out.write_all(data)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Extract { image, dir, force } => {
            let file = ImageFile::open(&image)?;
            let (dirs, files) = inspect::extract(&file, &dir, force)?;
            eprintln!(
                "extracted {files} files and {dirs} directories into {}",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Info { image, json } => {
            let file = ImageFile::open(&image)?;
            let info = inspect::info(&file)?;
            if json {
                serde_json::to_writer_pretty(&mut out, &info)?;
                writeln!(out)?;
            } else {
                print_info(&mut out, &info)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify { image, json } => {
            let file = ImageFile::open(&image)?;
            let report = inspect::verify(&file);
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                for f in &report.findings {
                    writeln!(
                        out,
                        "{}: offset {:#x}: {}",
                        image.display(),
                        f.offset,
                        f.message
                    )?;
                }
                if report.clean {
                    writeln!(
                        out,
                        "{}: OK ({} files, {} directories, checksum {})",
                        image.display(),
                        report.files,
                        report.dirs,
                        report.checksum
                    )?;
                } else {
                    writeln!(
                        out,
                        "{}: {} finding(s)",
                        image.display(),
                        report.findings.len()
                    )?;
                }
            }
            Ok(if report.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::Mount(args) => {
            romfs_mount::mount(&args.image, &args.mountpoint, &args.options()?)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Umount { mountpoint, lazy } => {
            if lazy {
                romfs_mount::unmount_lazy(&mountpoint)?;
            } else {
                romfs_mount::unmount(&mountpoint)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "romfs", &mut out);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_info(out: &mut impl Write, i: &inspect::Info) -> io::Result<()> {
    writeln!(out, "image:        {}", i.image)?;
    writeln!(out, "layout:       {}", i.layout)?;
    writeln!(
        out,
        "image size:   {} bytes ({})",
        i.image_size,
        human(i.image_size)
    )?;
    if i.file_size != i.image_size {
        writeln!(out, "file size:    {} bytes", i.file_size)?;
    }
    writeln!(out, "payload size: {} bytes", i.payload_size)?;
    writeln!(
        out,
        "files:        {} ({} bytes, {} stored, {} shared)",
        i.files, i.file_bytes, i.stored_bytes, i.shared_files
    )?;
    writeln!(out, "directories:  {} (max depth {})", i.dirs, i.max_depth)?;
    match &i.checksum_value {
        Some(v) => writeln!(out, "checksum:     {} ({v})", i.checksum)?,
        None => writeln!(out, "checksum:     {}", i.checksum)?,
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    writeln!(out, "tool:         {}", opt(&i.tool))?;
    writeln!(out, "label:        {}", opt(&i.label))?;
    writeln!(
        out,
        "generation:   {}",
        i.generation.map_or("-".into(), |g| g.to_string())
    )?;
    writeln!(
        out,
        "build time:   {}",
        i.build_time.map_or("-".into(), |g| g.to_string())
    )?;
    writeln!(
        out,
        "header:       safe to program last for flash write units up to {} bytes",
        i.header_safe_write_size
    )?;
    if i.findings > 0 {
        writeln!(
            out,
            "verify:       {} finding(s); run `romfs verify`",
            i.findings
        )?;
    }
    if !i.mpy.is_empty() {
        writeln!(out, ".mpy files:")?;
        for g in &i.mpy {
            match g.version {
                Some(v) => writeln!(
                    out,
                    "  {:>5}  v{v} {} ({}-bit small ints)",
                    g.files,
                    g.arch,
                    g.small_int_bits.unwrap_or(0)
                )?,
                None => writeln!(out, "  {:>5}  {}", g.files, g.arch)?,
            }
        }
    }
    if !i.alignment_histogram.is_empty() {
        let parts: Vec<String> = i
            .alignment_histogram
            .iter()
            .rev()
            .map(|(a, n)| format!("{a}: {n}"))
            .collect();
        writeln!(
            out,
            "alignment:    {} (files by largest power of two dividing their data offset)",
            parts.join(", ")
        )?;
    }
    if !i.file_list.is_empty() {
        writeln!(out, "files (offset, alignment, size):")?;
        for f in &i.file_list {
            let shared = if f.shared { " (shared)" } else { "" };
            writeln!(
                out,
                "  {:>#10x} {:>6} {:>10}  {}{shared}",
                f.offset, f.align, f.size, f.path
            )?;
        }
    }
    Ok(())
}

/// A progress bar on stderr, shown only once a build has run for a while.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    start: Instant,
}

impl Bar {
    fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::hidden(),
            );
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        });
        Bar {
            bar,
            start: Instant::now(),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64, bytes: bool) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(0);
            b.set_message(name.to_string());
            let template = if bytes {
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{msg:>10} [{bar:30}] {pos}/{len} files"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                b.set_style(style.progress_chars("=> "));
            }
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            if b.is_hidden() && self.start.elapsed() > Duration::from_millis(300) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn cmd_build(a: BuildArgs) -> Result<ExitCode> {
    let layout = match a.layout {
        LayoutArg::Default => Layout::Default,
        LayoutArg::Mpremote => Layout::Mpremote,
    };
    if layout == Layout::Mpremote {
        let mut bad = Vec::new();
        if a.align.is_some() {
            bad.push("--align");
        }
        if !a.align_rules.is_empty() {
            bad.push("--align-rule");
        }
        if a.no_dedup {
            bad.push("--no-dedup");
        }
        if a.no_checksum {
            bad.push("--no-checksum");
        }
        if a.label.is_some() {
            bad.push("--label");
        }
        if a.generation.is_some() {
            bad.push("--generation");
        }
        if a.build_time.is_some() {
            bad.push("--build-time");
        }
        if a.flash_write_size.is_some() {
            bad.push("--flash-write-size");
        }
        if !bad.is_empty() {
            bail!("{} only apply to the default layout (mpremote layout has no alignment, dedup, checksum or metadata)", bad.join(", "));
        }
    }
    let build_time = match a.build_time.as_deref() {
        None => None,
        Some("now") => Some(match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .trim()
                .parse()
                .context("SOURCE_DATE_EPOCH is not a number of seconds")?,
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }),
        Some(s) => Some(
            s.parse()
                .with_context(|| format!("--build-time {s:?}: expected Unix seconds or `now`"))?,
        ),
    };
    let defaults = BuildOptions::default();
    let opts = BuildOptions {
        layout,
        align: a.align.unwrap_or(defaults.align),
        align_rules: a.align_rules,
        dedup: !a.no_dedup,
        checksum: !a.no_checksum,
        label: a.label,
        generation: a.generation,
        build_time,
        exclude: a.exclude,
        max_size: a.max_size,
        mpy: if a.no_mpy {
            MpyMode::Never
        } else if a.mpy {
            MpyMode::Always
        } else {
            MpyMode::Auto
        },
        mpy_cross: a.mpy_cross,
        march: a.march,
        small_int_bits: a.msmall_int_bits,
        mpy_cross_args: a.mpy_cross_args,
        jobs: a.jobs.unwrap_or(0),
        flash_write_size: a.flash_write_size,
    };
    let bar = Bar::new(!a.quiet && io::stderr().is_terminal());
    let report = match build(&a.dir, &a.output, &opts, &bar) {
        Ok(r) => r,
        Err(e) => {
            bar.finish();
            return Err(e.into());
        }
    };
    let mut err = io::stderr().lock();
    for w in &report.warnings {
        writeln!(err, "romfs: warning: {w}")?;
    }
    if !a.quiet {
        for n in &report.notes {
            writeln!(err, "romfs: note: {n}")?;
        }
    }
    if a.verbose {
        print_packed(&mut io::stdout().lock(), &report)?;
    }
    if !a.quiet {
        print_summary(&mut err, &a.output, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_packed(out: &mut impl Write, r: &BuildReport) -> io::Result<()> {
    writeln!(out, "/")?;
    for e in &r.packed {
        let indent = "  ".repeat(e.depth);
        let name = e.path.rsplit('/').next().unwrap_or(&e.path);
        if e.is_dir {
            writeln!(out, "{indent}{name}/")?;
        } else {
            let mut notes = String::new();
            if e.compiled {
                notes.push_str(", compiled");
            }
            if e.shared {
                notes.push_str(", shared");
            }
            writeln!(
                out,
                "{indent}{name}  ({} bytes at {:#x}{notes})",
                e.len, e.data_offset
            )?;
        }
    }
    Ok(())
}

fn print_summary(out: &mut impl Write, path: &std::path::Path, r: &BuildReport) -> io::Result<()> {
    let s = &r.stats;
    writeln!(
        out,
        "wrote {}: {} bytes ({})",
        path.display(),
        s.image_len,
        human(s.image_len)
    )?;
    let mut line = format!(
        "  {} files, {} directories, {} bytes in",
        s.files, s.dirs, s.bytes_in
    );
    if r.compiled > 0 {
        line.push_str(&format!(", {} .py compiled to .mpy", r.compiled));
    }
    if r.excluded > 0 {
        line.push_str(&format!(", {} excluded", r.excluded));
    }
    writeln!(out, "{line}")?;
    writeln!(
        out,
        "  dedup saved {} bytes ({} files), alignment overhead {} bytes",
        s.dedup_saved, s.dedup_files, s.align_overhead
    )?;
    match r.checksum {
        Some(c) => writeln!(out, "  checksum crc32 {c:#010x}")?,
        None => writeln!(out, "  checksum none")?,
    }
    Ok(())
}
