//! Stopping at a safe point. A signal (Ctrl-C, `SIGTERM`) only raises a
//! flag; the raw REPL looks at it before it sends each program, so a stop
//! never cuts a program, an erase or a write in half and the board is left
//! at its prompt, from where the connection leaves raw mode (see
//! [`RawRepl`](crate::RawRepl)). A second signal ends the process at once.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The first stop signal received (0: none).
fn received() -> &'static Arc<AtomicUsize> {
    static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// Make `SIGINT` and `SIGTERM` request a stop instead of ending the
/// process; a second one ends it with status 128 + the signal number.
/// Call once, early, in a program that talks to boards.
/// Later calls do nothing.
pub fn install() -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let armed = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so the first signal finds it unarmed.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, armed.clone())?;
        signal_hook::flag::register(signal, armed.clone())?;
        signal_hook::flag::register_usize(signal, received().clone(), signal as usize)?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// The signal that asked for a stop, if one did.
pub fn requested() -> Option<Signal> {
    match received().load(Ordering::SeqCst) {
        0 => None,
        n => Some(Signal(n as i32)),
    }
}

/// A stop signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    /// The exit status a process stopped by it ends with (128 + its number).
    pub fn exit_status(self) -> u8 {
        (128 + self.0).clamp(0, 255) as u8
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            signal_hook::consts::SIGINT => f.write_str("Ctrl-C"),
            signal_hook::consts::SIGTERM => f.write_str("SIGTERM"),
            n => write!(f, "signal {n}"),
        }
    }
}
