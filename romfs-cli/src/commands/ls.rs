//! `romfs ls`: list a directory of an image.

use std::io::Write;
use std::path::PathBuf;

use romfs_build::inspect::{self, Entry, EntryKind, ImageFile};
use serde::Serialize;

use crate::cli::Run;
use crate::ui::{Status, Ui};

/// Arguments of `romfs ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// The image.
    image: PathBuf,
    /// A directory or file in the image.
    #[arg(default_value = "")]
    path: String,
    /// Long listing: a header, then type, size, data offset and name (a
    /// directory has neither size nor offset: `-`).
    #[arg(short, long)]
    long: bool,
    /// JSON output: name, path, type, and for a file its size and data
    /// offset (a directory has neither).
    #[arg(long)]
    json: bool,
}

impl Run for LsArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let file = ImageFile::open(&self.image)?;
        let entries = inspect::list(&file, &self.path)?;
        if self.json {
            let json: Vec<EntryJson> = entries.iter().map(EntryJson::from).collect();
            ui.json(&json)?;
        } else {
            if self.long {
                writeln!(
                    ui.out,
                    "{:<4} {:>10} {:>10}  NAME",
                    "TYPE", "SIZE", "OFFSET"
                )?;
            }
            for e in &entries {
                if self.long {
                    write_long(ui.out, e)?;
                } else {
                    writeln!(ui.out, "{}", display_name(e))?;
                }
            }
        }
        Ok(Status::Success)
    }
}

/// The name as listed: directories end in `/`.
pub(crate) fn display_name(e: &Entry) -> String {
    if e.is_dir() {
        format!("{}/", e.name)
    } else {
        e.name.clone()
    }
}

/// `type size offset  name`, one line. A directory has neither size nor
/// offset (the mount shows it as 0 bytes; `--json` leaves both out).
fn write_long(out: &mut dyn Write, e: &Entry) -> std::io::Result<()> {
    let offset = e
        .offset
        .map(|o| format!("{o:#x}"))
        .unwrap_or_else(|| "-".into());
    let size = match e.is_dir() {
        true => "-".to_string(),
        false => e.size.to_string(),
    };
    let shared = if e.shared { " (shared)" } else { "" };
    writeln!(
        out,
        "{:<4} {:>10} {:>10}  {}{shared}",
        kind_name(e.kind),
        size,
        offset,
        display_name(e)
    )
}

pub(crate) fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "dir",
        EntryKind::File => "file",
    }
}

/// One entry in JSON (`ls --json`, and the nodes of `tree --json`).
#[derive(Serialize)]
pub(crate) struct EntryJson<'a> {
    name: &'a str,
    path: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// A file's length. A directory has none, as in `ls -l` (its record's
    /// payload length is no size a user can use; the mount shows 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shared: bool,
}

impl<'a> From<&'a Entry> for EntryJson<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryJson {
            name: &e.name,
            path: &e.path,
            kind: kind_name(e.kind),
            size: (!e.is_dir()).then_some(e.size),
            offset: e.offset,
            shared: e.shared,
        }
    }
}
