//! A failed background mount's error, as the mount process writes it on
//! the readiness pipe and the caller reads it back: the same typed error
//! a foreground mount returns (OS errors keep their errno; other I/O
//! errors keep their message).
//!
//! Every field is fixed-size except the last of each record, which runs to
//! the end (the mount process writes one report, then exits).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::error::{Action, FuseProblem, ServeError};

const FUSE: u8 = b'F';
const SYSTEM: u8 = b'S';

const NOT_INSTALLED: u8 = b'n';
const REFUSED: u8 = b'r';
const EXITED: u8 = b'x';
const IO: u8 = b'i';
const HANDSHAKE: u8 = b'h';

const OS_ERROR: u8 = b'o';
const OTHER_ERROR: u8 = b'm';

/// The report of `error`.
pub(crate) fn encode(error: &ServeError) -> Vec<u8> {
    let mut out = Vec::new();
    match error {
        ServeError::Fuse(problem) => {
            out.push(FUSE);
            match problem {
                FuseProblem::NotInstalled => out.push(NOT_INSTALLED),
                FuseProblem::Refused(message) => {
                    out.push(REFUSED);
                    out.extend_from_slice(message.as_bytes());
                }
                FuseProblem::Exited(status) => {
                    out.push(EXITED);
                    out.extend_from_slice(&status.into_raw().to_le_bytes());
                }
                FuseProblem::Io(e) => {
                    out.push(IO);
                    encode_io(e, &mut out);
                }
                FuseProblem::Handshake(e) => {
                    out.push(HANDSHAKE);
                    encode_io(e, &mut out);
                }
            }
        }
        ServeError::System(action, e) => {
            out.push(SYSTEM);
            out.push(action_code(*action));
            encode_io(e, &mut out);
        }
    }
    out
}

/// The error `report` says, or `None` if it is no report (cut short).
pub(crate) fn decode(report: &[u8]) -> Option<ServeError> {
    let (&kind, rest) = report.split_first()?;
    match kind {
        FUSE => {
            let (&tag, rest) = rest.split_first()?;
            let problem = match tag {
                NOT_INSTALLED if rest.is_empty() => FuseProblem::NotInstalled,
                REFUSED => FuseProblem::Refused(String::from_utf8_lossy(rest).into_owned()),
                EXITED => FuseProblem::Exited(ExitStatus::from_raw(i32::from_le_bytes(
                    rest.try_into().ok()?,
                ))),
                IO => FuseProblem::Io(decode_io(rest)?),
                HANDSHAKE => FuseProblem::Handshake(decode_io(rest)?),
                _ => return None,
            };
            Some(ServeError::Fuse(problem))
        }
        SYSTEM => {
            let (&code, rest) = rest.split_first()?;
            Some(ServeError::System(action_of(code)?, decode_io(rest)?))
        }
        _ => None,
    }
}

fn encode_io(e: &io::Error, out: &mut Vec<u8>) {
    match e.raw_os_error() {
        Some(errno) => {
            out.push(OS_ERROR);
            out.extend_from_slice(&errno.to_le_bytes());
        }
        None => {
            out.push(OTHER_ERROR);
            out.extend_from_slice(e.to_string().as_bytes());
        }
    }
}

fn decode_io(bytes: &[u8]) -> Option<io::Error> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        OS_ERROR => Some(io::Error::from_raw_os_error(i32::from_le_bytes(
            rest.try_into().ok()?,
        ))),
        OTHER_ERROR => Some(io::Error::other(String::from_utf8_lossy(rest).into_owned())),
        _ => None,
    }
}

fn action_code(action: Action) -> u8 {
    match action {
        Action::CreateReadinessPipe => 0,
        Action::ForkMountProcess => 1,
        Action::ForkDaemon => 2,
        Action::CreateSocketPair => 3,
        Action::RunFusermount => 4,
        Action::CopySocket => 5,
        Action::ServeRequests => 6,
    }
}

fn action_of(code: u8) -> Option<Action> {
    Some(match code {
        0 => Action::CreateReadinessPipe,
        1 => Action::ForkMountProcess,
        2 => Action::ForkDaemon,
        3 => Action::CreateSocketPair,
        4 => Action::RunFusermount,
        5 => Action::CopySocket,
        6 => Action::ServeRequests,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ACTIONS: [Action; 7] = [
        Action::CreateReadinessPipe,
        Action::ForkMountProcess,
        Action::ForkDaemon,
        Action::CreateSocketPair,
        Action::RunFusermount,
        Action::CopySocket,
        Action::ServeRequests,
    ];

    /// Every error the mount process can report, with OS and other I/O
    /// errors.
    fn every_error() -> Vec<ServeError> {
        let ios = || {
            [
                io::Error::from_raw_os_error(nix::errno::Errno::EACCES as i32),
                io::Error::other("unexpected INIT reply"),
            ]
        };
        let mut errors = vec![
            ServeError::Fuse(FuseProblem::NotInstalled),
            ServeError::Fuse(FuseProblem::Refused(
                "fusermount3: failed to access mountpoint /m: Permission denied".into(),
            )),
            ServeError::Fuse(FuseProblem::Refused(String::new())),
            ServeError::Fuse(FuseProblem::Exited(ExitStatus::from_raw(1 << 8))),
            ServeError::Fuse(FuseProblem::Exited(ExitStatus::from_raw(9))),
        ];
        errors.extend(ios().map(FuseProblem::Io).map(ServeError::Fuse));
        errors.extend(ios().map(FuseProblem::Handshake).map(ServeError::Fuse));
        for action in ACTIONS {
            errors.extend(ios().map(|e| ServeError::System(action, e)));
        }
        errors
    }

    #[test]
    fn every_error_reads_back_as_it_was_written() {
        let mountpoint = Path::new("/mnt/app");
        for error in every_error() {
            let back = decode(&encode(&error)).expect("a report");
            assert_eq!(format!("{back:?}"), format!("{error:?}"));
            assert_eq!(
                back.at(mountpoint).to_string(),
                error.at(mountpoint).to_string()
            );
        }
    }

    #[test]
    fn action_codes_are_distinct_and_read_back() {
        for (i, action) in ACTIONS.into_iter().enumerate() {
            assert_eq!(action_code(action), i as u8);
            assert_eq!(action_of(i as u8), Some(action));
        }
        assert_eq!(action_of(ACTIONS.len() as u8), None);
    }

    #[test]
    fn what_is_no_report_reads_as_none() {
        for report in [
            &b""[..],
            b"?",
            b"F",
            b"F?",
            b"Fn!",
            b"Fx\x01\x00",
            b"Fi",
            b"Fi?",
            b"Fho\x0d\x00\x00",
            b"S",
            b"S\x00",
            b"S\x07o\x0d\x00\x00\x00",
            b"S\x00o\x0d\x00\x00\x00\x00",
        ] {
            assert!(decode(report).is_none(), "{report:?}");
        }
    }
}
