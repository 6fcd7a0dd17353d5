//! The byte link to a board: a [`Transport`] trait (so tests can put a
//! scripted, silent or garbage-spewing device in its place) and its serial
//! implementation on `serialport`.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::error::{Error, ErrorKind, OpenProblem, Result};

/// A bidirectional byte link to a board.
pub trait Transport: Send {
    /// Send all of `data`.
    fn send(&mut self, data: &[u8]) -> io::Result<()>;
    /// Receive into `buf`, waiting at most `timeout` for the first byte.
    /// `Ok(0)` means nothing arrived in time; an `Err` means the link is
    /// gone.
    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// The port's name, for messages.
    fn name(&self) -> &str;
    /// Pause between pieces sent without flow control (plain raw mode),
    /// so a board's input buffer is not overrun.
    fn pace(&mut self) {
        std::thread::sleep(Duration::from_millis(10));
    }
    /// A number that differs from one connection to the next: entering the
    /// raw REPL uses it to tell the board's answers to us from answers to
    /// an earlier program (see [`RawRepl`](crate::RawRepl)). Scripted links
    /// fix it, so a transcript can hold the answer.
    fn nonce(&mut self) -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ std::process::id())
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        (**self).send(data)
    }
    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        (**self).receive(buf, timeout)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn pace(&mut self) {
        (**self).pace()
    }
    fn nonce(&mut self) -> u32 {
        (**self).nonce()
    }
}

/// How long [`SerialTransport::open`] waits for a port another program
/// holds before it says the port is busy.
pub const BUSY_GRACE: Duration = Duration::from_secs(1);

/// A serial port (USB CDC, UART adapter or pseudo-terminal).
pub struct SerialTransport {
    port: Box<dyn serialport::SerialPort>,
    name: String,
    timeout: Duration,
}

impl std::fmt::Debug for SerialTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerialTransport")
            .field("name", &self.name)
            .finish()
    }
}

impl SerialTransport {
    /// Open `path` exclusively (115200 baud; USB boards ignore the rate).
    /// A port another program holds is tried again for up to
    /// [`BUSY_GRACE`]: a lock can outlive the program that let go of it for
    /// a moment (a child it forked that has not yet run its own program
    /// holds the descriptor, and the lock with it).
    pub fn open(path: &str) -> Result<Self> {
        let started = std::time::Instant::now();
        let port = loop {
            match serialport::new(path, 115_200)
                .timeout(Duration::from_millis(100))
                .open()
            {
                Ok(port) => break port,
                Err(e)
                    if e.kind == serialport::ErrorKind::NoDevice
                        && started.elapsed() < BUSY_GRACE =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(open_error(path, e)),
            }
        };
        Ok(SerialTransport {
            port,
            name: path.to_string(),
            timeout: Duration::from_millis(100),
        })
    }
}

fn open_error(path: &str, e: serialport::Error) -> Error {
    let kind = match &e.kind {
        // serialport reports a port locked by another program (TIOCEXCL or
        // flock) as `NoDevice`.
        serialport::ErrorKind::NoDevice => ErrorKind::Busy,
        serialport::ErrorKind::Io(io::ErrorKind::NotFound) => {
            ErrorKind::Open(OpenProblem::NotFound)
        }
        serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied) => {
            ErrorKind::Open(OpenProblem::PermissionDenied)
        }
        _ => ErrorKind::Open(OpenProblem::Serial(e)),
    };
    Error::new(path, kind)
}

impl Transport for SerialTransport {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        // The port's timeout also bounds writes: a board that stops reading
        // makes `write` fail instead of blocking for ever.
        if self.timeout != Duration::from_secs(5) {
            self.timeout = Duration::from_secs(5);
            self.port.set_timeout(self.timeout)?;
        }
        // No flush: on a tty it waits for the board to drain its input
        // (tcdrain), a round trip per write for nothing.
        self.port.write_all(data)
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = std::time::Instant::now() + timeout.max(Duration::from_millis(1));
        loop {
            // A signal (a stop request) cuts the wait short: wait out the
            // rest, or it would look like a silent board.
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let left = left.max(Duration::from_millis(1));
            if self.timeout != left {
                self.timeout = left;
                self.port.set_timeout(left)?;
            }
            return match self.port.read(buf) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the port was closed",
                )),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if std::time::Instant::now() < deadline {
                        continue;
                    }
                    Ok(0)
                }
                Err(e) => Err(e),
            };
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// A board that answers with fixed bytes, whatever it is sent: for tests
/// and fuzzing (a transcript recorded from a real board, cut short or
/// garbled). It hands out one byte per call, as a slow link would, so the
/// host reads exactly as far as the protocol makes it read, and nothing to
/// a look without waiting (a zero timeout). Once the bytes are used up it
/// is silent; it never waits.
#[derive(Debug, Clone)]
pub struct Scripted {
    answers: Vec<u8>,
    at: usize,
    /// Everything sent to it.
    pub sent: Vec<u8>,
    /// After the answers: `Err` (the link is gone) instead of silence.
    pub disconnect_at_end: bool,
}

impl Scripted {
    /// A board whose output is `answers`.
    pub fn new(answers: Vec<u8>) -> Self {
        Scripted {
            answers,
            at: 0,
            sent: Vec::new(),
            disconnect_at_end: false,
        }
    }
}

impl Transport for Scripted {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.sent.extend_from_slice(data);
        Ok(())
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        // Its answers come when asked for: nothing is waiting beforehand.
        if timeout.is_zero() {
            return Ok(0);
        }
        let n = buf.len().min(self.answers.len() - self.at).min(1);
        if n == 0 && self.disconnect_at_end {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "scripted disconnect",
            ));
        }
        buf[..n].copy_from_slice(&self.answers[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    fn name(&self) -> &str {
        "scripted board"
    }

    fn pace(&mut self) {}

    fn nonce(&mut self) -> u32 {
        0
    }
}

/// Wraps a transport and keeps a copy of everything the board sent (to
/// record transcripts for tests and fuzzing seeds). Its nonce is that of
/// [`Scripted`], so a recording replays.
#[derive(Debug)]
pub struct Recording<T> {
    /// The wrapped transport.
    pub inner: T,
    /// Everything received so far (shared: the board owns the transport).
    pub received: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<T: Transport> Transport for Recording<T> {
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.send(data)
    }

    fn receive(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let n = self.inner.receive(buf, timeout)?;
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn pace(&mut self) {
        self.inner.pace()
    }

    fn nonce(&mut self) -> u32 {
        0
    }
}
