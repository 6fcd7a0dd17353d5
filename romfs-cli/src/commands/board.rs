//! Reaching a board over its serial port: the options `romfs query` and
//! `romfs deploy` share.

use std::time::Duration;

use anyhow::{bail, Result};
use romfs_device::{Board, SerialTransport, Timeouts};

/// How to reach the board.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The board's serial port (default: the one USB serial device
    /// connected, as `mpremote connect auto`).
    #[arg(short, long, value_name = "PORT")]
    pub port: Option<String>,
    /// Seconds to wait for the board to answer.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub timeout: f64,
}

impl ConnectArgs {
    /// Open the port and enter the board's raw REPL.
    pub(crate) fn connect(&self) -> Result<Board<SerialTransport>> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout < 3600.0) {
            bail!(
                "--timeout {}: expected a number of seconds above 0",
                self.timeout
            );
        }
        let answer = Duration::from_secs_f64(self.timeout);
        let timeouts = Timeouts {
            answer,
            work: Timeouts::default().work.max(answer),
        };
        Ok(Board::open(self.port.as_deref(), timeouts)?)
    }
}
