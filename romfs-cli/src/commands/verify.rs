//! `romfs verify`: check an image completely, and its signature with a key.

use std::io::Write;
use std::path::PathBuf;

use romfs_build::inspect::{self, ImageFile, VerifyReport};
use romfs_sign::{PublicKey, Verified};
use serde::Serialize;

use super::info::checksum_state;
use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The image.
    image: PathBuf,
    /// Also check the image's signature with this Ed25519 public key (SPKI
    /// PEM, as `romfs keygen` or `openssl pkey -pubout` writes it; a private
    /// key file works too), and say which key signed it.
    #[arg(long, value_name = "PUB")]
    key: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

impl Run for VerifyArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let key = self.key.as_deref().map(PublicKey::load).transpose()?;
        let file = ImageFile::open(&self.image)?;
        let report = inspect::verify(&file);
        let signature = key.map(|key| romfs_sign::verify(file.bytes(), &key));
        if self.json {
            let mut json = VerifyJson::from(&report);
            json.signature = signature.as_ref().map(SignatureJson::from);
            ui.json(&json)?;
        } else {
            write_text(ui.out, &report, signature.as_ref())?;
        }
        let signed = signature.as_ref().is_none_or(|s| s.is_ok());
        Ok(if report.is_clean() && signed {
            Status::Success
        } else {
            Status::Failure
        })
    }
}

/// One line per finding (`IMAGE: offset 0x..: what`), the signature's
/// verdict when a key was given, then the image's.
fn write_text(
    out: &mut dyn Write,
    report: &VerifyReport,
    signature: Option<&Result<Verified, romfs_sign::Error>>,
) -> std::io::Result<()> {
    let image = report.image.display();
    for f in &report.findings {
        writeln!(out, "{image}: {f}")?;
    }
    match signature {
        None => {}
        Some(Ok(v)) => writeln!(
            out,
            "{image}: signature OK: signed by key {} for product {:?}, generation {}",
            v.key_id, v.product, v.generation
        )?,
        Some(Err(e)) => writeln!(out, "{image}: signature BAD: {e}")?,
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
    /// With --key: whether the signature verifies, and who signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<SignatureJson>,
}

#[derive(Serialize)]
struct SignatureJson {
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<&Result<Verified, romfs_sign::Error>> for SignatureJson {
    fn from(r: &Result<Verified, romfs_sign::Error>) -> Self {
        match r {
            Ok(v) => SignatureJson {
                verified: true,
                key_id: Some(v.key_id.to_string()),
                product: Some(v.product.clone()),
                generation: Some(v.generation),
                error: None,
            },
            Err(e) => SignatureJson {
                verified: false,
                key_id: None,
                product: None,
                generation: None,
                error: Some(e.to_string()),
            },
        }
    }
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
            signature: None,
        }
    }
}
