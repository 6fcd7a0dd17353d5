//! `romfs tree`: an image's tree.

use std::io::Write;
use std::path::PathBuf;

use romfs_build::inspect::{self, ImageFile, WalkEntry};
use serde::Serialize;

use super::ls::{display_name, EntryJson};
use crate::cli::Run;
use crate::ui::{count, Status, Ui};

/// Arguments of `romfs tree`.
#[derive(Debug, clap::Args)]
pub struct TreeArgs {
    /// The image.
    image: PathBuf,
    /// JSON output: the root's entries, each directory with its `children`.
    #[arg(long)]
    json: bool,
}

impl Run for TreeArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        let file = ImageFile::open(&self.image)?;
        let nodes = inspect::walk(&file)?;
        if self.json {
            ui.json(&nest(&nodes))?;
        } else {
            write_tree(ui.out, &nodes)?;
        }
        Ok(Status::Success)
    }
}

/// `tree(1)`'s drawing, then the counts.
fn write_tree(out: &mut dyn Write, nodes: &[WalkEntry]) -> std::io::Result<()> {
    writeln!(out, "/")?;
    let mut open_levels: Vec<bool> = Vec::new(); // per depth: more siblings follow
    let (mut dirs, mut files) = (0, 0);
    for node in nodes {
        open_levels.truncate(node.depth - 1);
        let mut line = String::new();
        for &more in &open_levels {
            line.push_str(if more { "│   " } else { "    " });
        }
        line.push_str(if node.last {
            "└── "
        } else {
            "├── "
        });
        line.push_str(&display_name(&node.entry));
        if node.entry.is_dir() {
            dirs += 1;
        } else {
            files += 1;
        }
        writeln!(out, "{line}")?;
        open_levels.push(!node.last);
    }
    writeln!(
        out,
        "\n{}, {}",
        count(dirs, "directory"),
        count(files, "file")
    )
}

/// One node of `tree --json`.
#[derive(Serialize)]
struct TreeJson<'a> {
    #[serde(flatten)]
    entry: EntryJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<Vec<TreeJson<'a>>>,
}

/// The walk (depth-first, with depths) as nested nodes.
fn nest(nodes: &[WalkEntry]) -> Vec<TreeJson<'_>> {
    // Open directories' children, innermost last; [0] is the root's.
    let mut levels: Vec<Vec<TreeJson>> = vec![Vec::new()];
    let close = |levels: &mut Vec<Vec<TreeJson>>| {
        let children = levels.pop().unwrap_or_default();
        if let Some(dir) = levels.last_mut().and_then(|l| l.last_mut()) {
            dir.children = Some(children);
        }
    };
    for node in nodes {
        while levels.len() > node.depth {
            close(&mut levels);
        }
        let is_dir = node.entry.is_dir();
        if let Some(level) = levels.last_mut() {
            level.push(TreeJson {
                entry: EntryJson::from(&node.entry),
                children: is_dir.then(Vec::new),
            });
        }
        if is_dir {
            levels.push(Vec::new());
        }
    }
    while levels.len() > 1 {
        close(&mut levels);
    }
    levels.pop().unwrap_or_default()
}
