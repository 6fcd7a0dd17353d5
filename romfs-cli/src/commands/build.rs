//! `romfs build`: pack a directory into an image.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use romfs_build::{
    build, build_with_base, human, BuildOptions, BuildReport, BuildTime, Layout, MpyMode, Progress,
    StableOptions, StableReport,
};
use romfs_format::mpy::Arch;
use romfs_format::write::MAX_HEADER_WRITE_SIZE;
use romfs_sign::SigningKey;

use crate::cli::Run;
use crate::progress::Bar;
use crate::ui::{count, Status, Ui};
use crate::values::{parse_align, parse_arch, parse_glob, parse_rule, parse_size};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// Aligned, deduplicated, with metadata and a CRC32 (see FORMAT.md).
    Default,
    /// Byte for byte what `mpremote romfs build` writes.
    Mpremote,
}

/// Arguments of `romfs build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The directory to pack.
    dir: PathBuf,
    /// The image to write (replaced atomically).
    #[arg(short, long, value_name = "IMG")]
    output: PathBuf,
    /// How to build.
    #[command(flatten)]
    flags: BuildFlags,
    /// Print only errors.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print the tree as it is packed.
    #[arg(short, long)]
    verbose: bool,
    /// Lay the image out stably against OLD (the image it replaces):
    /// unchanged files keep their place, so an update rewrites few flash
    /// erase blocks (FORMAT.md, section 2.3). Implies --stable.
    #[arg(long, value_name = "OLD")]
    base: Option<PathBuf>,
    /// Use the stable layout (without --base: a first stable image).
    #[arg(long)]
    stable: bool,
    /// Flash erase-block size for the stable layout (e.g. 4K, 64K;
    /// default: the base's, else 4096).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    erase_block: Option<u64>,
}

/// The options of `romfs build` that decide the image (shared with
/// `romfs deploy`, which builds directories).
#[derive(Debug, clap::Args)]
pub struct BuildFlags {
    /// Byte layout.
    #[arg(long, value_enum, default_value_t = LayoutArg::Default)]
    layout: LayoutArg,
    /// Alignment of file data from the image start (power of two).
    #[arg(long, value_name = "N", value_parser = parse_align)]
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
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_HEADER_WRITE_SIZE as i64))]
    flash_write_size: Option<u32>,
    /// A label recorded in the image's metadata.
    #[arg(long)]
    label: Option<String>,
    /// A generation number recorded in the metadata (higher is newer); in
    /// a signed image also the anti-rollback generation devices check.
    #[arg(long)]
    generation: Option<u64>,
    /// The product (board) the image is for, recorded in the metadata; a
    /// signed image's manifest carries it too (at most 32 bytes).
    #[arg(long, value_name = "NAME")]
    product: Option<String>,
    /// Sign the image with this Ed25519 private key (PKCS#8 PEM, as `romfs
    /// keygen` or `openssl genpkey -algorithm ed25519` writes it). Needs
    /// --product and --generation: devices refuse an image for another
    /// product or not newer than theirs.
    #[arg(long, value_name = "KEY", requires_all = ["product", "generation"], conflicts_with = "no_checksum")]
    sign: Option<PathBuf>,
    /// Record a build time: Unix seconds, or `now` (SOURCE_DATE_EPOCH if set,
    /// else the clock). By default none is recorded, so builds are reproducible.
    #[arg(long, value_name = "SECS|now")]
    build_time: Option<BuildTime>,
    /// Leave out entries whose path or name matches GLOB (repeatable).
    #[arg(long, value_name = "GLOB", value_parser = parse_glob)]
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
    /// Target architecture: passed to mpy-cross (which must then be found,
    /// unless --no-mpy), and every .mpy is checked to run on it.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    march: Option<Arch>,
    /// Target small-int bits: passed to mpy-cross (which must then be
    /// found, unless --no-mpy) and checked.
    #[arg(long, value_name = "BITS")]
    msmall_int_bits: Option<u8>,
    /// Extra argument for mpy-cross, e.g. --mpy-cross-arg=-O2 (repeatable).
    #[arg(long = "mpy-cross-arg", value_name = "ARG", allow_hyphen_values = true)]
    mpy_cross_args: Vec<OsString>,
    /// Compiler processes at once (default: one per core).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Compile every .py, reusing no .mpy from the cache of compiled files
    /// (under $ROMFS_CACHE_DIR, else $XDG_CACHE_HOME/romfs or ~/.cache/romfs).
    #[arg(long)]
    pub no_cache: bool,
}

impl BuildFlags {
    /// The library's options for these flags, with the signing key loaded:
    /// a key that cannot be used fails here, before any work.
    pub fn options(&self) -> anyhow::Result<BuildOptions> {
        let key = self.sign.as_deref().map(SigningKey::load).transpose()?;
        Ok(BuildOptions {
            sign: key.map(Arc::new),
            ..self.settings()
        })
    }

    /// A usage error (exit status 2) when the flags do not go together or
    /// a value is out of range: the library's own checks
    /// ([`BuildOptions::check`]), before any key is read.
    pub fn check_usage(&self) -> Result<(), String> {
        self.settings()
            .check(self.sign.is_some())
            .map_err(|e| e.to_string())
    }

    /// Was a layout asked for (`--layout`, `--align`, `--align-rule`)?
    /// Then `deploy` builds it so, not in the stable layout.
    pub fn layout_given(&self) -> bool {
        self.layout != LayoutArg::Default || self.align.is_some() || !self.align_rules.is_empty()
    }

    /// The flags given that decide how a directory is built (all but
    /// `--no-cache`, which also decides what `deploy` remembers).
    pub fn given(&self) -> Vec<&'static str> {
        let given = [
            (self.layout != LayoutArg::Default, "--layout"),
            (self.align.is_some(), "--align"),
            (!self.align_rules.is_empty(), "--align-rule"),
            (self.no_dedup, "--no-dedup"),
            (self.no_checksum, "--no-checksum"),
            (self.flash_write_size.is_some(), "--flash-write-size"),
            (self.label.is_some(), "--label"),
            (self.generation.is_some(), "--generation"),
            (self.product.is_some(), "--product"),
            (self.sign.is_some(), "--sign"),
            (self.build_time.is_some(), "--build-time"),
            (!self.exclude.is_empty(), "--exclude"),
            (self.max_size.is_some(), "--max-size"),
            (self.mpy, "--mpy"),
            (self.no_mpy, "--no-mpy"),
            (self.mpy_cross.is_some(), "--mpy-cross"),
            (self.march.is_some(), "--march"),
            (self.msmall_int_bits.is_some(), "--msmall-int-bits"),
            (!self.mpy_cross_args.is_empty(), "--mpy-cross-arg"),
            (self.jobs.is_some(), "--jobs"),
        ];
        given
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect()
    }

    /// The library's options for these flags, without the signing key.
    fn settings(&self) -> BuildOptions {
        BuildOptions {
            layout: match self.layout {
                LayoutArg::Default => Layout::Default,
                LayoutArg::Mpremote => Layout::Mpremote,
            },
            align: self.align,
            align_rules: self.align_rules.clone(),
            dedup: self.no_dedup.then_some(false),
            checksum: self.no_checksum.then_some(false),
            label: self.label.clone(),
            generation: self.generation,
            product: self.product.clone(),
            sign: None,
            build_time: self.build_time,
            flash_write_size: self.flash_write_size,
            exclude: self.exclude.clone(),
            max_size: self.max_size,
            // An explicit target is for compiled code: no silent fallback
            // to storing source when mpy-cross is missing.
            mpy: if self.no_mpy {
                MpyMode::Never
            } else if self.mpy || self.march.is_some() || self.msmall_int_bits.is_some() {
                MpyMode::Always
            } else {
                MpyMode::Auto
            },
            mpy_cross: self.mpy_cross.clone(),
            march: self.march,
            small_int_bits: self.msmall_int_bits,
            mpy_cross_args: self.mpy_cross_args.clone(),
            jobs: self.jobs.unwrap_or(0),
            compile_cache: if self.no_cache {
                None
            } else {
                romfs_build::cache::default_dir()
            },
        }
    }
}

impl BuildArgs {
    /// See [`BuildFlags::check_usage`].
    pub fn check_usage(&self) -> Result<(), String> {
        self.flags.check_usage()
    }
}

impl Run for BuildArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let options = self.flags.options()?;
        let bar = Bar::new(!self.quiet && io::stderr().is_terminal());
        let mut stable_report = None;
        let result = if self.base.is_some() || self.stable || self.erase_block.is_some() {
            let base = match &self.base {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| anyhow::anyhow!("base image {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let erase_block = match self.erase_block {
                Some(n) => Some(
                    u32::try_from(n)
                        .map_err(|_| anyhow::anyhow!("--erase-block {n}: at most 16 MiB"))?,
                ),
                None => None,
            };
            let stable = StableOptions { erase_block };
            build_with_base(
                &self.dir,
                &self.output,
                &options,
                &stable,
                base.as_deref(),
                &bar,
            )
            .map(|(report, stable)| {
                stable_report = Some(stable);
                report
            })
        } else {
            build(&self.dir, &self.output, &options, &bar)
        };
        bar.finish();
        let report = result?;
        if let Some(s) = &stable_report {
            if let (Some(reason), Some(base)) = (&s.fresh, &self.base) {
                ui.note(format!(
                    "laid out afresh, not against {}: {reason}",
                    base.display()
                ));
            }
        }
        for w in &report.warnings {
            ui.warn(w);
        }
        if !self.quiet {
            for n in &report.notes {
                ui.note(n);
            }
        }
        if self.verbose {
            write_packed(ui.out, &report)?;
            ui.out.flush()?;
        }
        if !self.quiet {
            write_summary(&mut io::stderr().lock(), &self.output, &report)?;
            if let Some(s) = &stable_report {
                write_stable_summary(&mut io::stderr().lock(), s)?;
            }
        }
        Ok(Status::Success)
    }
}

/// The tree as packed (`--verbose`), on stdout.
fn write_packed(out: &mut dyn Write, r: &BuildReport) -> io::Result<()> {
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
                "{indent}{name}  ({} at {:#x}{notes})",
                count(e.len as usize, "byte"),
                e.data_offset
            )?;
        }
    }
    Ok(())
}

/// What the stable layout did, on stderr.
fn write_stable_summary(out: &mut dyn Write, s: &StableReport) -> io::Result<()> {
    writeln!(
        out,
        "  stable layout ({} byte erase blocks): {} contents kept in place, {} placed anew",
        s.erase_block, s.kept, s.placed
    )?;
    writeln!(
        out,
        "  stable layout costs {} bytes over a fresh build ({} bytes): tree slack {}, room at the end {}, holes {}",
        s.cost(),
        s.fresh_len,
        s.tree_slack,
        s.tail_slack,
        s.holes
    )
}

/// What was written, on stderr.
fn write_summary(out: &mut dyn Write, path: &Path, r: &BuildReport) -> io::Result<()> {
    let s = &r.stats;
    writeln!(
        out,
        "wrote {}: {} ({})",
        path.display(),
        count(s.image_len as usize, "byte"),
        human(s.image_len)
    )?;
    let mut line = format!(
        "  {}, {}, {} in",
        count(s.files, "file"),
        count(s.dirs, "directory"),
        count(s.bytes_in as usize, "byte")
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
        "  dedup saved {} ({}), alignment overhead {}",
        count(s.dedup_saved as usize, "byte"),
        count(s.dedup_files, "file"),
        count(s.align_overhead as usize, "byte")
    )?;
    match r.checksum {
        Some(c) => writeln!(out, "  checksum crc32 {c:#010x}")?,
        None => writeln!(out, "  checksum none")?,
    }
    if let Some(s) = &r.signature {
        writeln!(
            out,
            "  signed by key {} for product {:?}, generation {}",
            s.key_id, s.product, s.generation
        )?;
    }
    Ok(())
}
