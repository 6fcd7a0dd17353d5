//! `romfs completions`: shell completions.

use clap::CommandFactory;

use crate::cli::{Cli, Run};
use crate::ui::{Status, Ui};

/// Arguments of `romfs completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

impl Run for CompletionsArgs {
    fn run(self, ui: &mut Ui) -> anyhow::Result<Status> {
        clap_complete::generate(self.shell, &mut Cli::command(), "romfs", ui.out);
        Ok(Status::Success)
    }
}
