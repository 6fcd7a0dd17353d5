//! The one way a command ends: its exit status, and on error one message
//! `PROGRAM: error: ...` on stderr.
//!
//! Exit status 0: success. 1: the command failed (the message says what and
//! where) or found problems (`verify`). 2: the command line itself is wrong
//! (clap's usage errors: unknown flags, malformed values, missing arguments).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::ui::{Status, Ui};

/// A command line whose flags can be wrong together (or out of range)
/// in ways clap's attributes cannot say: checked after parsing, before
/// anything runs, and reported as a usage error (status 2).
pub(crate) trait CheckUsage {
    /// The usage error, if any.
    fn check_usage(&self) -> Result<(), clap::Error> {
        Ok(())
    }
}

/// Parse this process's arguments as `P`, run `command`, and turn the
/// outcome into an exit status.
pub(crate) fn run<P: Parser + CheckUsage>(
    program: &'static str,
    command: impl FnOnce(P, &mut Ui) -> anyhow::Result<Status>,
) -> ExitCode {
    let parsed = match P::try_parse().and_then(|p| p.check_usage().map(|()| p)) {
        Ok(p) => p,
        Err(e) => return usage_error(program, &e),
    };
    let mut out = BufWriter::new(io::stdout());
    let mut ui = Ui {
        program,
        out: &mut out,
    };
    let result = command(parsed, &mut ui).and_then(|status| {
        out.flush()?;
        Ok(status)
    });
    match result {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Failure) => ExitCode::FAILURE,
        // Whoever read the output stopped reading (`romfs cat ... | head`).
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Library messages are complete and return no `source()`, so the
            // chain (only the CLI's own context adds links) says it once.
            eprintln!("{program}: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Help and version go to stdout with status 0; usage errors become
/// `PROGRAM: error: ...` with clap's usage hint, status 2.
fn usage_error(program: &str, e: &clap::Error) -> ExitCode {
    let text = e.render().to_string();
    match text.strip_prefix("error: ") {
        Some(message) => eprint!("{program}: error: {message}"),
        None => {
            let _ = e.print();
        }
    }
    ExitCode::from(e.exit_code().clamp(0, 255) as u8)
}
