//! Where commands write: results to stdout, messages to stderr under the
//! program's name.

use std::fmt::Display;
use std::io::{self, Write};

use serde::Serialize;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit status 0.
    Success,
    /// Exit status 1 without an error message: the output says why (e.g.
    /// `verify` found problems).
    Failure,
}

/// A command's output channels.
pub struct Ui<'a> {
    /// `romfs` or `romfs-mount`, for messages on stderr.
    pub program: &'static str,
    /// Results (buffered stdout).
    pub out: &'a mut dyn Write,
}

impl Ui<'_> {
    /// `PROGRAM: warning: MESSAGE` on stderr.
    pub fn warn(&self, message: impl Display) {
        eprintln!("{}: warning: {message}", self.program);
    }

    /// `PROGRAM: note: MESSAGE` on stderr.
    pub fn note(&self, message: impl Display) {
        eprintln!("{}: note: {message}", self.program);
    }

    /// `value` as pretty JSON and a newline on stdout.
    pub fn json(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *self.out, value)?;
        writeln!(self.out)
    }
}
