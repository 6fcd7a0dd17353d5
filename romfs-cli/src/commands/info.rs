//! `romfs info`: describe an image.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use romfs_build::human;
use romfs_build::inspect::{self, FileInfo, ImageFile, Info, LayoutKind, MpyGroup};
use romfs_format::Checksum;
use romfs_sign::{KeyId, SignatureState};
use serde::Serialize;

use crate::cli::Run;
use crate::integrity::{self, Damage};
use crate::ui::{count, Status, Ui};

/// Arguments of `romfs info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The image.
    image: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl Run for InfoArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let info = inspect::info(&ImageFile::open(&self.image)?)?;
        let damage = Damage::of(&info.checksum, &info.signature);
        integrity::warn(&self.image, &damage, ui);
        // A checksum mismatch is one of the findings: said once.
        if damage.is_empty() && info.findings > 0 {
            ui.warn(format_args!(
                "{}: {}; run `romfs verify {}`",
                self.image.display(),
                count(info.findings, "finding"),
                self.image.display()
            ));
        }
        if self.json {
            ui.json(&InfoJson::from(&info))?;
        } else {
            write_text(ui.out, &info)?;
        }
        Ok(Status::Success)
    }
}

/// `absent`, `valid` or `mismatch`.
pub(crate) fn checksum_state(c: &Checksum) -> &'static str {
    match c {
        Checksum::Absent => "absent",
        Checksum::Valid(_) => "valid",
        Checksum::Mismatch { .. } => "mismatch",
    }
}

/// The stored CRC32, when there is one.
fn checksum_value(c: &Checksum) -> Option<String> {
    match c {
        Checksum::Absent => None,
        Checksum::Valid(v) | Checksum::Mismatch { stored: v, .. } => Some(format!("{v:#010x}")),
    }
}

fn layout_name(l: LayoutKind) -> &'static str {
    match l {
        LayoutKind::Romfs => "romfs",
        LayoutKind::Mpremote => "mpremote",
        LayoutKind::Other => "other",
    }
}

fn write_text(out: &mut dyn Write, i: &Info) -> std::io::Result<()> {
    writeln!(out, "image:        {}", i.image.display())?;
    writeln!(out, "layout:       {}", layout_name(i.layout))?;
    writeln!(
        out,
        "image size:   {} ({})",
        count(i.image_size as usize, "byte"),
        human(i.image_size)
    )?;
    if i.file_size != i.image_size {
        writeln!(out, "file size:    {}", count(i.file_size as usize, "byte"))?;
    }
    writeln!(
        out,
        "payload size: {}",
        count(i.payload_size as usize, "byte")
    )?;
    writeln!(
        out,
        "files:        {} ({}, {} stored, {} shared)",
        i.files,
        count(i.file_bytes as usize, "byte"),
        i.stored_bytes,
        i.shared_files
    )?;
    writeln!(out, "directories:  {} (max depth {})", i.dirs, i.max_depth)?;
    let state = checksum_state(&i.checksum);
    match checksum_value(&i.checksum) {
        Some(v) => writeln!(out, "checksum:     {state} ({v})")?,
        None => writeln!(out, "checksum:     {state}")?,
    }
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    writeln!(out, "tool:         {}", or_dash(i.tool.clone()))?;
    writeln!(out, "label:        {}", or_dash(i.label.clone()))?;
    writeln!(
        out,
        "generation:   {}",
        or_dash(i.generation.map(|g| g.to_string()))
    )?;
    writeln!(
        out,
        "build time:   {}",
        or_dash(i.build_time.map(|t| t.to_string()))
    )?;
    writeln!(out, "product:      {}", or_dash(i.product.clone()))?;
    write_signature(out, &i.signature)?;
    writeln!(
        out,
        "header:       safe to program last for flash write units up to {}",
        count(i.header_safe_write_size, "byte")
    )?;
    if i.findings > 0 {
        writeln!(
            out,
            "verify:       {}; run `romfs verify`",
            count(i.findings, "finding")
        )?;
    }
    if !i.mpy.is_empty() {
        writeln!(out, ".mpy files:")?;
        for g in &i.mpy {
            match g.format {
                Some(f) => writeln!(
                    out,
                    "  {:>5}  v{} {} ({}-bit small ints)",
                    g.files, f.version, f.arch, f.small_int_bits
                )?,
                None => writeln!(out, "  {:>5}  {NOT_MPY}", g.files)?,
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature state; for a signed image also the signed manifest, the
/// 160 bytes a sender hands a device ahead of the image.
fn write_signature(out: &mut dyn Write, state: &SignatureState) -> std::io::Result<()> {
    match state {
        SignatureState::Unsigned => writeln!(out, "signature:    none"),
        SignatureState::Malformed { offset, error } => {
            writeln!(out, "signature:    malformed record at byte {offset}: {error}")
        }
        SignatureState::NotSealed { manifest, .. } => writeln!(
            out,
            "signature:    laid out for product {:?}, generation {}, but not signed (run `romfs sign`)",
            String::from_utf8_lossy(manifest.product()),
            manifest.generation
        ),
        SignatureState::Signed {
            signed,
            digest_matches,
            ..
        } => {
            let m = &signed.manifest;
            let digest = if *digest_matches {
                "digest matches (check the signature with `romfs verify --key PUB`)"
            } else {
                "digest DOES NOT MATCH: the image was altered after signing"
            };
            writeln!(
                out,
                "signature:    key {}, product {:?}, generation {}; {digest}",
                KeyId(m.key_id),
                String::from_utf8_lossy(m.product()),
                m.generation
            )?;
            writeln!(out, "manifest:     {}", hex(&signed.to_bytes()))
        }
    }
}

/// `signature` in `info --json`.
#[derive(Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum SignatureJson {
    Unsigned,
    Malformed {
        offset: usize,
        error: String,
    },
    NotSigned {
        offset: usize,
        product: String,
        generation: u32,
    },
    Signed {
        offset: usize,
        key_id: String,
        product: String,
        generation: u32,
        digest: String,
        digest_matches: bool,
        /// The 160 bytes of manifest and signature, in hex.
        signed_manifest: String,
    },
}

impl From<&SignatureState> for SignatureJson {
    fn from(s: &SignatureState) -> Self {
        match s {
            SignatureState::Unsigned => SignatureJson::Unsigned,
            SignatureState::Malformed { offset, error } => SignatureJson::Malformed {
                offset: *offset,
                error: error.to_string(),
            },
            SignatureState::NotSealed { offset, manifest } => SignatureJson::NotSigned {
                offset: *offset,
                product: String::from_utf8_lossy(manifest.product()).into_owned(),
                generation: manifest.generation,
            },
            SignatureState::Signed {
                offset,
                signed,
                digest_matches,
            } => SignatureJson::Signed {
                offset: *offset,
                key_id: KeyId(signed.manifest.key_id).to_string(),
                product: String::from_utf8_lossy(signed.manifest.product()).into_owned(),
                generation: signed.manifest.generation,
                digest: hex(&signed.manifest.digest),
                digest_matches: *digest_matches,
                signed_manifest: hex(&signed.to_bytes()),
            },
        }
    }
}

/// How a group of `.mpy`-named files without a `.mpy` header is shown.
const NOT_MPY: &str = "not a .mpy";

#[derive(Serialize)]
struct InfoJson<'a> {
    image: String,
    layout: &'static str,
    image_size: u64,
    file_size: u64,
    payload_size: u64,
    files: usize,
    dirs: usize,
    max_depth: usize,
    file_bytes: u64,
    stored_bytes: u64,
    shared_files: usize,
    checksum: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum_value: Option<String>,
    tool: Option<&'a str>,
    label: Option<&'a str>,
    generation: Option<u64>,
    build_time: Option<u64>,
    product: Option<&'a str>,
    signature: SignatureJson,
    header_safe_write_size: usize,
    alignment_histogram: &'a BTreeMap<u64, usize>,
    mpy: Vec<MpyGroupJson>,
    file_list: Vec<FileInfoJson<'a>>,
    findings: usize,
}

#[derive(Serialize)]
struct MpyGroupJson {
    version: Option<u8>,
    arch: String,
    small_int_bits: Option<u8>,
    files: usize,
}

#[derive(Serialize)]
struct FileInfoJson<'a> {
    path: &'a str,
    size: u64,
    offset: u64,
    align: u64,
    shared: bool,
}

impl<'a> From<&'a Info> for InfoJson<'a> {
    fn from(i: &'a Info) -> Self {
        InfoJson {
            image: i.image.display().to_string(),
            layout: layout_name(i.layout),
            image_size: i.image_size,
            file_size: i.file_size,
            payload_size: i.payload_size,
            files: i.files,
            dirs: i.dirs,
            max_depth: i.max_depth,
            file_bytes: i.file_bytes,
            stored_bytes: i.stored_bytes,
            shared_files: i.shared_files,
            checksum: checksum_state(&i.checksum),
            checksum_value: checksum_value(&i.checksum),
            tool: i.tool.as_deref(),
            label: i.label.as_deref(),
            generation: i.generation,
            build_time: i.build_time,
            product: i.product.as_deref(),
            signature: SignatureJson::from(&i.signature),
            header_safe_write_size: i.header_safe_write_size,
            alignment_histogram: &i.alignment_histogram,
            mpy: i.mpy.iter().map(MpyGroupJson::from).collect(),
            file_list: i.file_list.iter().map(FileInfoJson::from).collect(),
            findings: i.findings,
        }
    }
}

impl From<&MpyGroup> for MpyGroupJson {
    fn from(g: &MpyGroup) -> Self {
        MpyGroupJson {
            version: g.format.map(|f| f.version),
            arch: g.format.map_or(NOT_MPY.to_string(), |f| f.arch.to_string()),
            small_int_bits: g.format.map(|f| f.small_int_bits),
            files: g.files,
        }
    }
}

impl<'a> From<&'a FileInfo> for FileInfoJson<'a> {
    fn from(f: &'a FileInfo) -> Self {
        FileInfoJson {
            path: &f.path,
            size: f.size,
            offset: f.offset,
            align: f.align,
            shared: f.shared,
        }
    }
}
