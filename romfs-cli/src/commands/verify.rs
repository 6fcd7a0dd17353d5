//! `romfs verify`: check an image completely, and its signature with a key.

use std::io::Write;
use std::path::PathBuf;

use romfs_build::inspect::{self, ImageFile, VerifyReport};
use romfs_sign::{PublicKey, SignatureState, Verified};
use serde::Serialize;

use super::info::checksum_state;
use crate::cli::Run;
use crate::ui::{count, Status, Ui};

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
        let mut digest = None;
        let signature = match key {
            Some(key) => Some(romfs_sign::verify(file.bytes(), &key)),
            None => {
                // No key is needed to see a manifest that no longer
                // describes the image.
                digest = digest_finding(file.bytes());
                None
            }
        };
        let clean =
            report.is_clean() && digest.is_none() && signature.as_ref().is_none_or(|s| s.is_ok());
        if self.json {
            let mut json = VerifyJson::from(&report);
            json.clean = clean;
            json.findings
                .extend(digest.as_ref().map(|(offset, message)| FindingJson {
                    offset: *offset,
                    message: message.clone(),
                }));
            json.signature = signature.as_ref().map(SignatureJson::from);
            ui.json(&json)?;
        } else {
            write_text(ui.out, &report, digest.as_ref(), signature.as_ref())?;
        }
        Ok(if clean {
            Status::Success
        } else {
            Status::Failure
        })
    }
}

/// Signed bytes that no longer match the manifest's SHA-256: seen without
/// a key (a malformed manifest is one of the format's own findings).
fn digest_finding(bytes: &[u8]) -> Option<(usize, String)> {
    match romfs_sign::inspect(bytes).ok()? {
        SignatureState::Signed {
            offset,
            digest_matches: false,
            ..
        } => Some((
            offset,
            romfs_sign::Error::DigestMismatch { signed_len: offset }.to_string(),
        )),
        _ => None,
    }
}

/// One line per finding (`IMAGE: offset 0x..: what`), the signature's
/// verdict when a key was given, then the image's.
fn write_text(
    out: &mut dyn Write,
    report: &VerifyReport,
    digest: Option<&(usize, String)>,
    signature: Option<&Result<Verified, romfs_sign::Error>>,
) -> std::io::Result<()> {
    let image = report.image.display();
    for f in &report.findings {
        writeln!(out, "{image}: {f}")?;
    }
    if let Some((offset, message)) = digest {
        writeln!(out, "{image}: offset {offset:#x}: {message}")?;
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
    let signature_bad = matches!(signature, Some(Err(_)));
    let findings = report.findings.len() + usize::from(digest.is_some());
    if findings == 0 && !signature_bad {
        writeln!(
            out,
            "{image}: OK ({}, {}, checksum {})",
            count(report.files, "file"),
            count(report.dirs, "directory"),
            checksum_state(&report.checksum)
        )
    } else {
        let mut why = Vec::new();
        if findings > 0 {
            why.push(count(findings, "finding"));
        }
        if signature_bad {
            why.push("signature BAD".to_string());
        }
        writeln!(out, "{image}: FAILED ({})", why.join(", "))
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
