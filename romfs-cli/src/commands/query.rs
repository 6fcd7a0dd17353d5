//! `romfs query`: a board's ROM partitions and what they hold.

use std::io::{self, Write};

use anyhow::Result;
use romfs_build::human;
use romfs_device::query::{ChecksumState, Contents, PartitionReport};
use serde_json::json;

use crate::cli::Run;
use crate::commands::board::ConnectArgs;
use crate::ui::{Status, Ui};

/// Arguments of `romfs query`.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// How to reach the board.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only this partition (default: all).
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl Run for QueryArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        query(&self, ui)?;
        Ok(Status::Success)
    }
}

fn query(args: &QueryArgs, ui: &mut Ui) -> Result<()> {
    let mut board = args.connect.connect()?;
    let out = &mut *ui.out;
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
        ui.json(&value)?;
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
        "erase_block_size": p.block_size,
        "erase_unit": p.erase_unit,
        "program_unit": p.program_unit,
        "erase_mode": p.mode.name(),
        "port": r.platform,
        "min_write_size": r.write_size,
        "writable": r.writable,
        "block_device": p.block_device,
        "contents": contents,
    })
}

fn print_partition(out: &mut dyn Write, r: &PartitionReport) -> io::Result<()> {
    let p = &r.partition;
    let write = match (r.writable, r.write_size) {
        (false, _) => "read-only (the firmware refuses to erase it)".to_string(),
        (true, Some(w)) => format!("writes in {w}-byte units, {}", p.mode.name()),
        (true, None) => "minimum write size unknown (the image fills the partition)".to_string(),
    };
    writeln!(
        out,
        "partition {}: {} bytes ({}), {} port, {} blocks of {} bytes, {write}",
        p.id,
        p.size,
        human(p.size),
        if r.platform.is_empty() {
            "unknown"
        } else {
            &r.platform
        },
        if p.block_device {
            "block device"
        } else {
            "memory-mapped"
        },
        p.block_size
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
