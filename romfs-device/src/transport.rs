//! The byte link to a board: a [`Transport`] trait (so tests can put a
//! scripted, silent or garbage-spewing device in its place) and its serial
//! implementation on `serialport`.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

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
}

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
    pub fn open(path: &str) -> Result<Self> {
        let port = serialport::new(path, 115_200)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| open_error(path, e))?;
        Ok(SerialTransport {
            port,
            name: path.to_string(),
            timeout: Duration::from_millis(100),
        })
    }
}

fn open_error(path: &str, e: serialport::Error) -> Error {
    let text = e.to_string();
    let busy = match &e.kind {
        serialport::ErrorKind::Io(k) => *k == io::ErrorKind::ResourceBusy,
        _ => false,
    } || text.contains("Device or resource busy")
        || text.contains("Resource temporarily unavailable")
        || text.contains("EBUSY")
        || text.contains("EWOULDBLOCK")
        || text.contains("EAGAIN");
    let kind = if busy {
        ErrorKind::Busy
    } else if matches!(e.kind, serialport::ErrorKind::NoDevice)
        || text.contains("No such file")
        || text.contains("ENOENT")
    {
        ErrorKind::Open("no such device (is the board plugged in?)".into())
    } else {
        ErrorKind::Open(text)
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
        let timeout = timeout.max(Duration::from_millis(1));
        if self.timeout != timeout {
            self.timeout = timeout;
            self.port.set_timeout(timeout)?;
        }
        match self.port.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the port was closed",
            )),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}
