//! `romfs diff`: a delta patch that turns one image into another
//! (FORMAT.md, section 9).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use romfs_format::delta;

use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The image the device holds.
    old: PathBuf,
    /// The image it should hold.
    new: PathBuf,
    /// The patch to write.
    #[arg(short, long, value_name = "DELTA")]
    output: PathBuf,
}

impl Run for DiffArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("{}", p.display()));
        let (old, new) = (read(&self.old)?, read(&self.new)?);
        for (path, bytes) in [(&self.old, &old), (&self.new, &new)] {
            if u32::try_from(bytes.len()).is_err() {
                anyhow::bail!("{}: larger than 4 GiB", path.display());
            }
        }
        let patch = delta::diff(&old, &new);
        // Checked before it is written: the patch must make exactly NEW.
        let made = delta::apply(&old, &patch).map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(
            made == new,
            "internal error: the patch does not rebuild the new image"
        );
        let dir = match self.output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("{}", self.output.display()))?;
        tmp.write_all(&patch)?;
        tmp.persist(&self.output)
            .with_context(|| format!("{}", self.output.display()))?;
        writeln!(
            ui.out,
            "wrote {}: {} bytes ({} bytes old image, {} bytes new image)",
            self.output.display(),
            patch.len(),
            old.len(),
            new.len()
        )?;
        Ok(Status::Success)
    }
}
