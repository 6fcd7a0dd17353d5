//! Reaching a board over its serial port: the options `romfs query` and
//! `romfs deploy` share.

use std::time::Duration;

use anyhow::{anyhow, Result};
use romfs_device::{Board, SerialTransport, Timeouts};

/// How to reach the board.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The board's serial port (default: the one USB serial device
    /// connected, as `mpremote connect auto`).
    #[arg(short, long, value_name = "PORT")]
    pub port: Option<String>,
    /// Seconds to wait for the board to answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_timeout)]
    pub timeout: f64,
}

/// A `--timeout`: seconds above 0, below an hour.
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t < 3600.0 => Ok(t),
        _ => Err(format!(
            "{s:?}: expected a number of seconds above 0 and below 3600"
        )),
    }
}

/// Why `port` cannot be a serial port, when that is visible from the
/// host: it is no character device, or no terminal. Only asked after
/// opening it failed (opening a serial port can reset the board).
fn not_a_serial_port(port: &str) -> Option<String> {
    use std::io::IsTerminal;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let meta = std::fs::metadata(port).ok()?;
    if !meta.file_type().is_char_device() {
        return Some(format!(
            "{port}: not a serial port (a terminal device such as /dev/ttyACM0 or /dev/ttyUSB0)"
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(port)
        .ok()?;
    (!file.is_terminal()).then(|| {
        format!(
            "{port}: not a serial port: this device is no terminal (use one such as /dev/ttyACM0 or /dev/ttyUSB0)"
        )
    })
}

impl ConnectArgs {
    /// From here on, Ctrl-C and SIGTERM stop the command at a safe point
    /// (`romfs_device::stop`): call it first in a command that talks to a
    /// board.
    pub(crate) fn stop_on_signals(&self) -> Result<()> {
        romfs_device::stop::install().map_err(|e| anyhow!("cannot install the Ctrl-C handler: {e}"))
    }

    /// Open the port and enter the board's raw REPL.
    pub(crate) fn connect(&self) -> Result<Board<SerialTransport>> {
        self.stop_on_signals()?;
        let answer = Duration::from_secs_f64(self.timeout);
        let timeouts = Timeouts {
            answer,
            work: Timeouts::default().work.max(answer),
        };
        Board::open(self.port.as_deref(), timeouts).map_err(|e| {
            match self.port.as_deref().and_then(not_a_serial_port) {
                Some(why) => anyhow!(why),
                None => e.into(),
            }
        })
    }
}
