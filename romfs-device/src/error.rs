//! One error type for everything that can go wrong talking to a board. Its
//! `Display` names the port and says what happened, once.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::stop::Signal;

/// What went wrong, and on which port.
#[derive(Debug)]
pub struct Error {
    /// The serial port (e.g. `/dev/ttyACM0`), or a description for
    /// injected transports.
    pub port: String,
    /// What happened.
    pub kind: ErrorKind,
}

/// The ways talking to a board can fail.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No `--port` given and no USB serial device is connected.
    NoDevice,
    /// No `--port` given and several USB serial devices are connected.
    SeveralDevices(Vec<String>),
    /// The port is open in another program.
    Busy,
    /// The port could not be opened.
    Open(OpenProblem),
    /// The board sent nothing (more) within the time allowed.
    NoAnswer {
        /// What we were waiting for.
        waiting_for: &'static str,
        /// How long we waited.
        timeout: Duration,
        /// The last bytes received before giving up (at most a few dozen).
        received: Vec<u8>,
    },
    /// Reading or writing the port failed: the board went away.
    Disconnected(io::Error),
    /// The board answered something that is not what the protocol allows.
    Garbage {
        /// What we were reading.
        context: &'static str,
        /// The offending bytes (at most a few dozen).
        received: Vec<u8>,
    },
    /// The firmware has no `vfs.rom_ioctl`: no ROM partitions.
    NoRomIoctl,
    /// The firmware has `vfs.rom_ioctl` but no ROM partition of this number.
    NoPartition {
        /// The partition asked for.
        id: u32,
        /// How many the board has.
        count: u32,
    },
    /// The firmware refuses to write its ROM partition (read-only build).
    ReadOnly {
        /// The partition.
        id: u32,
        /// The negative errno it answered.
        code: i64,
    },
    /// A `vfs.rom_ioctl` (or block device) call returned an error.
    Ioctl {
        /// What was asked of the flash.
        op: FlashOp,
        /// Offset in the partition.
        offset: u64,
        /// The negative errno value returned.
        code: i64,
    },
    /// Code we ran on the board raised an exception.
    Raised(String),
    /// After writing, the flash holds other bytes than were sent.
    Verify {
        /// The erase block that differs.
        block: u64,
        /// Its offset in the partition.
        offset: u64,
    },
    /// The image does not fit the partition.
    TooLarge {
        /// Image length.
        image: u64,
        /// Partition size.
        partition: u64,
    },
    /// The image to deploy (or the one the board holds) is not a ROMFS
    /// image, is damaged, or holds a `.mpy` this board cannot run.
    BadImage(ImageProblem),
    /// A stop signal (Ctrl-C) arrived: the work stopped before the next
    /// program was sent to the board, which is left out of raw mode.
    Interrupted {
        /// The signal.
        signal: Signal,
        /// During a deploy: the partition, and what it holds now.
        holds: Option<(u32, Holds)>,
    },
}

/// Why a port could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenProblem {
    /// No such device.
    NotFound,
    /// Not allowed to open it.
    PermissionDenied,
    /// What the serial port library said.
    Serial(serialport::Error),
}

impl fmt::Display for OpenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenProblem::NotFound => f.write_str("no such device (is the board plugged in?)"),
            OpenProblem::PermissionDenied => f.write_str(
                "permission denied (on Linux, join the group that owns the port, often `dialout`)",
            ),
            OpenProblem::Serial(e) => write!(f, "{e}"),
        }
    }
}

/// What the board's write layer was asked to do when the flash refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashOp {
    /// Read the partition.
    Read,
    /// Erase part of it.
    Erase,
    /// Program part of it.
    Write,
    /// The firmware asked for a larger write unit than the layer plans.
    ProgramUnit,
}

impl FlashOp {
    /// The name the board's write layer reports (`FlashError('erase', ...)`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "read" => FlashOp::Read,
            "erase" => FlashOp::Erase,
            "write" => FlashOp::Write,
            "unit" => FlashOp::ProgramUnit,
            _ => return None,
        })
    }
}

impl fmt::Display for FlashOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlashOp::Read => "read",
            FlashOp::Erase => "erase",
            FlashOp::Write => "write",
            FlashOp::ProgramUnit => "agree on the write unit",
        })
    }
}

/// What is wrong with an image.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImageProblem {
    /// It is no ROMFS image, or a record in it is malformed.
    Format(romfs_format::Error),
    /// Its CRC-32 does not match its contents.
    ChecksumMismatch {
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the contents.
        computed: u32,
    },
    /// A `.mpy` file in it that this board cannot load.
    Mpy {
        /// Its path in the image.
        path: String,
        /// Why.
        error: romfs_format::mpy::MpyError,
    },
    /// More top-level records than are worth reading over the link.
    TooManyRecords {
        /// The reads allowed.
        reads: usize,
    },
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageProblem::Format(e) => write!(f, "{e}"),
            ImageProblem::ChecksumMismatch { stored, computed } => write!(
                f,
                "the image is corrupt: its CRC-32 is {stored:#010x} but its contents give {computed:#010x}"
            ),
            ImageProblem::Mpy { path, error } => {
                write!(f, "{path} in the image cannot run on this board: {error}")
            }
            ImageProblem::TooManyRecords { reads } => write!(
                f,
                "the image has too many top-level records to inspect (more than {reads} reads)"
            ),
        }
    }
}

/// What a partition holds after a deploy stopped part way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// Nothing was written yet: the image it held before.
    OldImage,
    /// The old image was invalidated and the new one is not complete: the
    /// board mounts nothing until the deploy runs again.
    NoImage,
    /// The complete new image.
    NewImage,
}

impl Error {
    /// An error on `port`.
    pub fn new(port: impl Into<String>, kind: ErrorKind) -> Self {
        Error {
            port: port.into(),
            kind,
        }
    }

    /// A read or write error of the port itself.
    pub(crate) fn io(port: &str, e: io::Error) -> Self {
        Error::new(port, ErrorKind::Disconnected(e))
    }
}

/// Printable bytes for messages: ASCII as is, the rest escaped, at most the
/// last `max` bytes.
pub(crate) fn show(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    let mut s = String::new();
    if start > 0 {
        s.push_str("...");
    }
    s.extend(
        bytes[start..]
            .iter()
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from),
    );
    s
}

/// The name of a (negative) errno value as MicroPython uses it.
pub fn errno_name(code: i64) -> &'static str {
    match -code {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        30 => "EROFS",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        _ => "error",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = &self.port;
        match &self.kind {
            ErrorKind::NoDevice => write!(
                f,
                "no MicroPython board found: no USB serial device is connected (plug one in, or name it with --port)"
            ),
            ErrorKind::SeveralDevices(ports) => write!(
                f,
                "several USB serial devices are connected ({}): choose one with --port",
                ports.join(", ")
            ),
            ErrorKind::Busy => write!(
                f,
                "{port}: the port is busy: another program (a terminal, mpremote, an IDE) has it open"
            ),
            ErrorKind::Open(why) => write!(f, "{port}: cannot open the port: {why}"),
            ErrorKind::NoAnswer {
                waiting_for,
                timeout,
                received,
            } => {
                write!(
                    f,
                    "{port}: the board did not answer within {:.1} s (waiting for {waiting_for})",
                    timeout.as_secs_f64()
                )?;
                if received.is_empty() {
                    write!(f, "; nothing was received: is it a MicroPython board, powered and not busy running a program that ignores Ctrl-C?")
                } else {
                    write!(f, "; last received: \"{}\"", show(received, 64))
                }
            }
            ErrorKind::Disconnected(why) => {
                write!(f, "{port}: the connection to the board was lost: {why}")
            }
            ErrorKind::Garbage { context, received } => write!(
                f,
                "{port}: unexpected answer from the board while {context}: \"{}\"",
                show(received, 64)
            ),
            ErrorKind::NoRomIoctl => write!(
                f,
                "{port}: this firmware has no ROM partitions (no vfs.rom_ioctl): it cannot hold a ROMFS image; use a firmware built with MICROPY_VFS_ROM_IOCTL"
            ),
            ErrorKind::NoPartition { id, count } => write!(
                f,
                "{port}: no ROM partition {id}: the board has {count} (numbered from 0)"
            ),
            ErrorKind::ReadOnly { id, code } => write!(
                f,
                "{port}: ROM partition {id} is read-only: the firmware refused to erase it ({code}, {}); flash a firmware whose vfs.rom_ioctl can write it",
                errno_name(*code)
            ),
            ErrorKind::Ioctl { op, offset, code } => write!(
                f,
                "{port}: the board failed to {op} at partition offset {offset:#x}: {code} ({})",
                errno_name(*code)
            ),
            ErrorKind::Raised(what) => write!(f, "{port}: the board raised an exception: {what}"),
            ErrorKind::Verify { block, offset } => write!(
                f,
                "{port}: verification failed: erase block {block} (offset {offset:#x}) does not hold the bytes that were written; the image header was not written, so the board mounts no image (run deploy again)"
            ),
            ErrorKind::TooLarge { image, partition } => write!(
                f,
                "{port}: the image ({image} bytes) is larger than the ROM partition ({partition} bytes) by {} bytes",
                image - partition
            ),
            ErrorKind::BadImage(why) => write!(f, "{port}: {why}"),
            ErrorKind::Interrupted { signal, holds } => match holds {
                None => write!(f, "{port}: stopped by {signal}; nothing on the board was changed"),
                Some((id, Holds::OldImage)) => write!(
                    f,
                    "{port}: stopped by {signal} before anything was written: partition {id} holds its old image"
                ),
                Some((id, Holds::NoImage)) => write!(
                    f,
                    "{port}: stopped by {signal}: partition {id} holds no image (the board mounts nothing) until the deploy runs again, which sends only what is missing"
                ),
                Some((id, Holds::NewImage)) => write!(
                    f,
                    "{port}: stopped by {signal}: partition {id} holds the complete new image, which the board runs after a reset"
                ),
            },
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
