//! `romfs verify`: check an image completely.

use std::io::Write;
use std::path::PathBuf;

use romfs_build::inspect::{self, ImageFile, VerifyReport};
use serde::Serialize;

use super::info::checksum_state;
use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The image.
    image: PathBuf,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl Run for VerifyArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let report = inspect::verify(&ImageFile::open(&self.image)?);
        if self.json {
            ui.json(&VerifyJson::from(&report))?;
        } else {
            write_text(ui.out, &report)?;
        }
        Ok(if report.is_clean() {
            Status::Success
        } else {
            Status::Failure
        })
    }
}

/// One line per finding (`IMAGE: offset 0x..: what`), then the verdict.
fn write_text(out: &mut dyn Write, report: &VerifyReport) -> std::io::Result<()> {
    let image = report.image.display();
    for f in &report.findings {
        writeln!(out, "{image}: {f}")?;
    }
    if report.is_clean() {
        writeln!(
            out,
            "{image}: OK ({} files, {} directories, checksum {})",
            report.files,
            report.dirs,
            checksum_state(&report.checksum)
        )
    } else {
        writeln!(out, "{image}: {} finding(s)", report.findings.len())
    }
}

#[derive(Serialize)]
struct VerifyJson {
    image: String,
    clean: bool,
    files: usize,
    dirs: usize,
    checksum: &'static str,
    findings: Vec<FindingJson>,
}

#[derive(Serialize)]
struct FindingJson {
    /// Byte offset from the image start.
    offset: usize,
    message: String,
}

impl From<&VerifyReport> for VerifyJson {
    fn from(r: &VerifyReport) -> Self {
        VerifyJson {
            image: r.image.display().to_string(),
            clean: r.is_clean(),
            files: r.files,
            dirs: r.dirs,
            checksum: checksum_state(&r.checksum),
            findings: r
                .findings
                .iter()
                .map(|f| FindingJson {
                    offset: f.offset,
                    message: f.kind.to_string(),
                })
                .collect(),
        }
    }
}
