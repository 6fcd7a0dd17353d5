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

/// `n` and the noun, plural unless `n` is 1: "1 file", "2 files", "0
/// directories".
pub fn count(n: usize, noun: &str) -> String {
    match (n, noun.strip_suffix('y')) {
        (1, _) => format!("1 {noun}"),
        (_, Some(stem)) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{n} {stem}ies"),
        (_, _) if noun.ends_with('s') || noun.ends_with("sh") || noun.ends_with("ch") => {
            format!("{n} {noun}es")
        }
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts() {
        assert_eq!(count(1, "byte"), "1 byte");
        assert_eq!(count(0, "byte"), "0 bytes");
        assert_eq!(count(2, "directory"), "2 directories");
        assert_eq!(count(1, "directory"), "1 directory");
        assert_eq!(count(3, "key"), "3 keys");
        assert_eq!(count(2, "match"), "2 matches");
    }
}
