//! Checking an image completely.

use std::path::PathBuf;

use romfs_format::{Checksum, Finding, Image};

use super::ImageFile;

/// What `verify` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Path of the image file.
    pub image: PathBuf,
    /// Files seen.
    pub files: usize,
    /// Directories seen.
    pub dirs: usize,
    /// The checksum record and whether it matches.
    pub checksum: Checksum,
    /// Every finding, with its offset.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Check an image completely. A file that is not an image at all is one
/// finding (what is wrong with its header, at its offset).
pub fn verify(file: &ImageFile) -> VerifyReport {
    let mut report = VerifyReport {
        image: file.path().to_path_buf(),
        files: 0,
        dirs: 0,
        checksum: Checksum::Absent,
        findings: Vec::new(),
    };
    match Image::parse(file.bytes()) {
        Ok(image) => {
            let summary = image.verify(|f| report.findings.push(f));
            report.files = summary.files;
            report.dirs = summary.dirs;
            report.checksum = summary.checksum;
        }
        Err(e) => report.findings.push(e.into()),
    }
    report
}
