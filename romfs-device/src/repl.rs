//! MicroPython's raw REPL, as `pyboard.py` and mpremote speak it: Ctrl-C to
//! interrupt, Ctrl-A to enter raw mode, then each program sent in raw-paste
//! mode (the board grants windows of bytes with `\x01`, so a slow board is
//! never overrun) or, on firmware without raw-paste, the plain raw mode.
//! Every wait has a deadline: a silent board is an error, never a hang.
//!
//! Whatever state an earlier program left the board in (raw REPL, raw-paste
//! half sent, friendly paste mode, bytes still queued for it), entering
//! recovers it on the first try; and however a connection ends (closed,
//! dropped on an error or a stop signal), it leaves raw mode.

use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::transport::Transport;

const CTRL_A: u8 = 0x01;
const CTRL_B: u8 = 0x02;
const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const RAW_BANNER: &[u8] = b"raw REPL; CTRL-B to exit\r\n";
/// The most output one program may print before the board is deemed to be
/// answering garbage.
const MAX_OUTPUT: usize = 16 << 20;

/// How long to wait for the board.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For protocol answers (prompts, raw-paste acknowledgements).
    pub answer: Duration,
    /// For a program's output: the longest silence while it runs (erasing
    /// and hashing flash can take a while on a real board).
    pub work: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            answer: Duration::from_secs(5),
            work: Duration::from_secs(60),
        }
    }
}

/// Bytes moved over the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes sent to the board.
    pub sent: u64,
    /// Bytes received from the board.
    pub received: u64,
}

/// What a program printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// The traceback, if it raised.
    pub stderr: Vec<u8>,
}

/// A board in raw REPL mode.
pub struct RawRepl<T: Transport> {
    transport: T,
    /// Received and not yet consumed.
    pending: Vec<u8>,
    traffic: Traffic,
    timeouts: Timeouts,
    raw_paste: bool,
    /// The board is in raw mode because of us: leave it when dropped.
    in_raw: bool,
    /// A raw-paste program is half sent: Ctrl-C ends it unrun.
    pasting: bool,
}

impl<T: Transport> std::fmt::Debug for RawRepl<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawRepl")
            .field("port", &self.transport.name())
            .field("traffic", &self.traffic)
            .finish()
    }
}

impl<T: Transport> RawRepl<T> {
    /// Interrupt whatever the board runs and enter its raw REPL.
    pub fn enter(transport: T, timeouts: Timeouts) -> Result<Self> {
        let mut repl = RawRepl {
            transport,
            pending: Vec::new(),
            traffic: Traffic::default(),
            timeouts,
            raw_paste: true,
            in_raw: false,
            pasting: false,
        };
        // What the board said before we came (e.g. to an earlier program
        // that gave up on it) must not pass for answers to us.
        let deadline = Instant::now() + timeouts.answer;
        while repl.receive(Duration::ZERO)? {
            repl.pending.clear();
            if Instant::now() > deadline {
                return Err(repl.error(ErrorKind::Garbage {
                    context: "waiting for the board to stop talking before we do",
                    received: Vec::new(),
                }));
            }
        }
        // Ctrl-C twice stops a running program (the first may only end a
        // blocking call); what it prints before the raw REPL banner is of
        // no interest.
        repl.send(&[b'\r', CTRL_C, CTRL_C, b'\r', CTRL_A])?;
        repl.expect(RAW_BANNER, "the raw REPL banner")?;
        repl.expect(b">", "the raw REPL prompt")?;
        repl.in_raw = true;
        repl.synchronize()?;
        Ok(repl)
    }

    /// Skip whatever the board says in answer to bytes an earlier program
    /// queued before it went away (its own Ctrl-A, the rest of a program):
    /// they come before ours, so the answer to a program whose output
    /// cannot appear in its own text (a sum) marks where ours begin. Plain
    /// raw mode, which every firmware has.
    fn synchronize(&mut self) -> Result<()> {
        let nonce = self.transport.nonce() % 900_000 + 100_000;
        self.send(format!("print({nonce}+1)").as_bytes())?;
        self.send(&[CTRL_D])?;
        let answer = format!("OK{}\r\n\x04", nonce + 1);
        self.expect(answer.as_bytes(), "the answer to the first program")?;
        self.expect(b"\x04>", "the raw REPL prompt")?;
        Ok(())
    }

    /// The port's name.
    pub fn port(&self) -> &str {
        self.transport.name()
    }

    /// Bytes moved so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Change the timeouts.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// An error on this port.
    pub fn error(&self, kind: ErrorKind) -> Error {
        Error::new(self.port(), kind)
    }

    /// Run `code` and return what it printed. A traceback is not an error
    /// here: it is in [`Output::stderr`].
    /// A stop signal ([`crate::stop`]) ends the work here, between
    /// programs, with [`ErrorKind::Interrupted`].
    pub fn exec(&mut self, code: &[u8]) -> Result<Output> {
        if let Some(signal) = crate::stop::requested() {
            return Err(self.error(ErrorKind::Interrupted {
                signal,
                holds: None,
            }));
        }
        self.send_program(code)?;
        let work = self.timeouts.work;
        let stdout = self.read_until(&[CTRL_D], work, "the program's output")?;
        let stderr = self.read_until(&[CTRL_D], work, "the program's error output")?;
        self.expect(b">", "the raw REPL prompt")?;
        Ok(Output { stdout, stderr })
    }

    /// Run `code`; a traceback becomes [`ErrorKind::Raised`] with its last
    /// line.
    pub fn exec_ok(&mut self, code: &[u8]) -> Result<Vec<u8>> {
        let out = self.exec(code)?;
        if out.stderr.is_empty() {
            Ok(out.stdout)
        } else {
            Err(self.error(ErrorKind::Raised(last_line(&out.stderr))))
        }
    }

    fn send_program(&mut self, code: &[u8]) -> Result<()> {
        if self.raw_paste {
            self.send(&[0x05, b'A', CTRL_A])?;
            let answer = self.read_exact(2, self.timeouts.answer, "the raw-paste answer")?;
            match &answer[..] {
                b"R\x01" => {
                    self.pasting = true;
                    self.paste(code)?;
                    self.pasting = false;
                    return Ok(());
                }
                b"R\x00" => {}
                _ => {
                    // Firmware older than raw-paste echoes the bytes as
                    // input; it ends up back at the raw prompt.
                    self.pending.splice(0..0, answer);
                    self.expect(RAW_BANNER, "the raw REPL banner")?;
                    self.expect(b">", "the raw REPL prompt")?;
                }
            }
            self.raw_paste = false;
        }
        // Plain raw mode has no flow control: small pieces, paced.
        for piece in code.chunks(256) {
            self.send(piece)?;
            self.transport.pace();
        }
        self.send(&[CTRL_D])?;
        let ok = self.read_exact(2, self.timeouts.answer, "OK from the raw REPL")?;
        if ok != b"OK" {
            return Err(self.error(ErrorKind::Garbage {
                context: "sending a program in raw mode",
                received: ok,
            }));
        }
        Ok(())
    }

    /// Raw-paste: the board grants `window` bytes at the start and again
    /// with each `\x01`; `\x04` from it means it stopped reading.
    fn paste(&mut self, code: &[u8]) -> Result<()> {
        let header = self.read_exact(2, self.timeouts.answer, "the raw-paste window size")?;
        let window = u16::from_le_bytes([header[0], header[1]]) as usize;
        if window == 0 {
            return Err(self.error(ErrorKind::Garbage {
                context: "starting raw-paste mode (a window of 0 bytes)",
                received: header,
            }));
        }
        let mut allowed = window;
        let mut sent = 0;
        while sent < code.len() {
            // Take the grants already received (without asking the port,
            // which would cost a system call per window); wait for one only
            // when the window is used up.
            while allowed == 0 || !self.pending.is_empty() {
                if self.pending.is_empty() {
                    self.fill(self.timeouts.answer, "a raw-paste window grant")?;
                }
                match self.pending.remove(0) {
                    CTRL_A => allowed += window,
                    CTRL_D => {
                        // The board ended the paste early: acknowledge.
                        self.send(&[CTRL_D])?;
                        return Ok(());
                    }
                    other => {
                        return Err(self.error(ErrorKind::Garbage {
                            context: "sending a program in raw-paste mode",
                            received: vec![other],
                        }))
                    }
                }
            }
            let n = allowed.min(code.len() - sent);
            self.send(&code[sent..sent + n])?;
            sent += n;
            allowed -= n;
        }
        self.send(&[CTRL_D])?;
        // The board acknowledges the end with `\x04`; window grants may
        // still arrive before it.
        loop {
            let b = self.read_exact(1, self.timeouts.answer, "the end of raw-paste")?[0];
            match b {
                CTRL_D => return Ok(()),
                CTRL_A => {}
                other => {
                    return Err(self.error(ErrorKind::Garbage {
                        context: "ending raw-paste mode",
                        received: vec![other],
                    }))
                }
            }
        }
    }

    /// Leave raw mode and soft-reset in the friendly REPL, so the board
    /// mounts its ROM partition afresh and runs `main.py` as after power-up.
    /// Returns once the board has said it is rebooting.
    pub fn soft_reset(mut self) -> Result<()> {
        self.in_raw = false;
        self.send(&[b'\r', CTRL_B])?;
        self.expect(b">>> ", "the friendly REPL prompt")?;
        self.send(&[CTRL_D])?;
        self.expect(b"soft reboot", "the soft reboot")?;
        Ok(())
    }

    /// Leave raw mode for the friendly REPL (what a terminal expects).
    pub fn close(mut self) -> Result<()> {
        self.in_raw = false;
        self.send(&[b'\r', CTRL_B])
    }

    fn send(&mut self, data: &[u8]) -> Result<()> {
        self.transport
            .send(data)
            .map_err(|e| Error::io(self.transport.name(), e))?;
        self.traffic.sent += data.len() as u64;
        Ok(())
    }

    /// Receive whatever arrives within `timeout` into `pending`; false when
    /// nothing did.
    fn receive(&mut self, timeout: Duration) -> Result<bool> {
        let mut buf = [0u8; 4096];
        let n = self
            .transport
            .receive(&mut buf, timeout)
            .map_err(|e| Error::io(self.transport.name(), e))?;
        let n = n.min(buf.len());
        self.traffic.received += n as u64;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }

    /// Wait for at least one more byte.
    fn fill(&mut self, timeout: Duration, waiting_for: &'static str) -> Result<()> {
        if self.receive(timeout)? {
            Ok(())
        } else {
            Err(self.error(ErrorKind::NoAnswer {
                waiting_for,
                timeout,
                received: tail(&self.pending),
            }))
        }
    }

    fn read_exact(&mut self, n: usize, timeout: Duration, what: &'static str) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while self.pending.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.receive(left)? {
                return Err(self.error(ErrorKind::NoAnswer {
                    waiting_for: what,
                    timeout,
                    received: tail(&self.pending),
                }));
            }
        }
        Ok(self.pending.drain(..n).collect())
    }

    /// Everything up to a protocol marker `end`, which must arrive within
    /// the answer timeout (a board printing endless noise is an error too).
    fn expect(&mut self, end: &[u8], what: &'static str) -> Result<Vec<u8>> {
        let answer = self.timeouts.answer;
        self.read_until_by(end, answer, Some(Instant::now() + answer), what)
    }

    /// Everything up to `end` (consumed, not returned). `silence` bounds
    /// the wait for each further byte.
    fn read_until(&mut self, end: &[u8], silence: Duration, what: &'static str) -> Result<Vec<u8>> {
        self.read_until_by(end, silence, None, what)
    }

    fn read_until_by(
        &mut self,
        end: &[u8],
        silence: Duration,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let mut searched = 0;
        loop {
            if let Some(at) = find(&self.pending[searched..], end) {
                let at = searched + at;
                let before = self.pending[..at].to_vec();
                self.pending.drain(..at + end.len());
                return Ok(before);
            }
            searched = self.pending.len().saturating_sub(end.len() - 1);
            if self.pending.len() > MAX_OUTPUT {
                return Err(self.error(ErrorKind::Garbage {
                    context: what,
                    received: tail(&self.pending),
                }));
            }
            let wait = match deadline {
                Some(d) => silence.min(d.saturating_duration_since(Instant::now())),
                None => silence,
            };
            if wait.is_zero() {
                // It kept talking past the deadline without ever saying
                // what the protocol expects: noise.
                return Err(self.error(ErrorKind::Garbage {
                    context: what,
                    received: tail(&self.pending),
                }));
            }
            if !self.receive(wait)? {
                let timeout = match deadline {
                    Some(_) => self.timeouts.answer,
                    None => silence,
                };
                return Err(self.error(ErrorKind::NoAnswer {
                    waiting_for: what,
                    timeout,
                    received: tail(&self.pending),
                }));
            }
        }
    }
}

impl<T: Transport> Drop for RawRepl<T> {
    /// A connection given up (an error, a stop) leaves raw mode, so the
    /// board is at its friendly prompt for whatever comes next: a program
    /// half sent is ended unrun first; one running finishes, then the
    /// board reads these bytes at its prompt.
    fn drop(&mut self) {
        if self.in_raw {
            if self.pasting {
                let _ = self.transport.send(&[CTRL_C]);
            }
            let _ = self.transport.send(&[b'\r', CTRL_B]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn tail(bytes: &[u8]) -> Vec<u8> {
    bytes[bytes.len().saturating_sub(64)..].to_vec()
}

/// The last non-empty line of a traceback (`OSError: [Errno 19] ENODEV`).
pub fn last_line(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no message)")
        .to_string()
}
