//! The one way a command ends: its exit status, and on error one message
//! `PROGRAM: error: ...` on stderr.
//!
//! Exit status 0: success. 1: the command failed (the message says what and
//! where) or found problems (`verify`). 2: the command line itself is wrong
//! (clap's usage errors: unknown flags, malformed values, missing arguments).
//! 128 + N: stopped by signal N (Ctrl-C: 130) at a safe point; the message
//! says what the board holds and what to run.

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
        Err(e) => match stop_status(&e) {
            // Stopped as asked: no error, and the status says by what.
            Some(status) => {
                eprintln!("{program}: {e:#}");
                ExitCode::from(status)
            }
            None => {
                // Library messages are complete and return no `source()`, so
                // the chain (only the CLI's own context adds links) says it
                // once.
                eprintln!("{program}: error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// A command a stop signal ended at a safe point (see `romfs_device::stop`):
/// what the board holds and what to run.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// The whole message.
    pub(crate) message: String,
    /// 128 + the signal's number.
    pub(crate) status: u8,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Stopped {}

/// The status of a command a stop signal ended.
fn stop_status(e: &anyhow::Error) -> Option<u8> {
    e.chain().find_map(|cause| {
        if let Some(stopped) = cause.downcast_ref::<Stopped>() {
            return Some(stopped.status);
        }
        match &cause.downcast_ref::<romfs_device::Error>()?.kind {
            romfs_device::ErrorKind::Interrupted { signal, .. } => Some(signal.exit_status()),
            _ => None,
        }
    })
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
