//! The emulated MicroPython board: MicroPython v1.29 for QEMU's
//! `mps2-an385` (Cortex-M3), from `$ROMFS_DEVICE_DIR` (default
//! `../shared/device/` beside the workspace). Two builds: the stock one
//! (ROM partition read-only) and one whose ROM partition is writable like
//! NOR flash. The board's REPL is on a pseudo-terminal, the QEMU monitor on
//! a unix socket (to freeze the board and save its flash). QEMU is killed
//! when the [`Qemu`] value is dropped.
//!
//! Under `CI=true` a missing firmware or QEMU is a test failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Where the ROM partition is mapped.
pub const PARTITION_ADDR: u64 = 0x2100_0000;
/// The ROM partition's size.
pub const PARTITION_SIZE: usize = 4 << 20;
/// Its erase block size (writable build).
pub const ERASE_SIZE: usize = 4096;

/// Which firmware to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The stock build: the ROM partition cannot be written.
    Stock,
    /// The ROM partition is writable through `vfs.rom_ioctl`, like NOR flash.
    Writable,
    /// A model of one port's ROM partition (`../shared/device/MODELS.md`):
    /// `rp2`, `esp32`, `stm32-internal`, `alif-mram` (shipped), `esp8266`,
    /// `nrf` (built by its script).
    Model(&'static str),
}

/// The port models shipped with the emulated board, which CI requires.
pub const SHIPPED_MODELS: [&str; 4] = ["rp2", "esp32", "stm32-internal", "alif-mram"];
/// Models its script builds but does not ship: tested when present.
pub const OPTIONAL_MODELS: [&str; 2] = ["esp8266", "nrf"];

/// The firmware files and QEMU.
#[derive(Debug, Clone)]
pub struct Firmware {
    /// `qemu-system-arm`.
    pub qemu: PathBuf,
    /// The stock build.
    pub stock: PathBuf,
    /// The writable build.
    pub writable: PathBuf,
}

impl Firmware {
    /// The ELF of `build`.
    pub fn elf(&self, build: Build) -> PathBuf {
        match build {
            Build::Stock => self.stock.clone(),
            Build::Writable => self.writable.clone(),
            Build::Model(m) => self
                .stock
                .with_file_name(format!("micropython-mps2-an385-{m}-model.elf")),
        }
    }

    /// The port models to test: every shipped one (a missing one fails in
    /// CI), and the optional ones that are present.
    pub fn models(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for m in SHIPPED_MODELS {
            let elf = self.elf(Build::Model(m));
            if elf.is_file() {
                out.push(m);
            } else if crate::in_ci() {
                panic!("{} is missing in CI", elf.display());
            } else {
                eprintln!("SKIPPED: model {m}: {} is missing", elf.display());
            }
        }
        out.extend(
            OPTIONAL_MODELS
                .into_iter()
                .filter(|m| self.elf(Build::Model(m)).is_file()),
        );
        out
    }
}

/// The firmware directory: `$ROMFS_DEVICE_DIR`, or `../shared/device/`
/// relative to the workspace root.
pub fn device_dir() -> PathBuf {
    match std::env::var_os("ROMFS_DEVICE_DIR") {
        Some(d) => PathBuf::from(d),
        None => crate::workspace_root().join("../shared/device"),
    }
}

/// QEMU and both firmware builds. Outside CI, `None` (the caller skips,
/// saying so) when something is missing; in CI that is a panic.
pub fn firmware() -> Option<Firmware> {
    let qemu = crate::system_tool("qemu-system-arm")?;
    let dir = device_dir();
    let stock = dir.join("micropython-mps2-an385.elf");
    let writable = dir.join("micropython-mps2-an385-romfs-rw.elf");
    for f in [&stock, &writable] {
        if !f.is_file() {
            let why = format!(
                "{} is missing (set ROMFS_DEVICE_DIR to the folder holding the emulated board's firmware)",
                f.display()
            );
            if crate::in_ci() {
                panic!("the emulated MicroPython board is unavailable in CI: {why}");
            }
            eprintln!("SKIPPED: the emulated MicroPython board is unavailable: {why}");
            return None;
        }
    }
    Some(Firmware {
        qemu,
        stock,
        writable,
    })
}

/// A running emulated board.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    pty: String,
    monitor: UnixStream,
    /// Monitor prompts owed for commands a [`Stopper`] sent.
    unanswered: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
}

impl Qemu {
    /// Boot `build` with `partition` loaded at the start of the ROM
    /// partition (without one, the partition starts zero-filled).
    pub fn boot(fw: &Firmware, build: Build, partition: Option<&[u8]>) -> Qemu {
        let dir = tempfile::Builder::new()
            .prefix("romfs-board-")
            .tempdir()
            .expect("temporary directory for QEMU");
        let monitor_path = dir.path().join("monitor.sock");
        let mut cmd = Command::new(&fw.qemu);
        cmd.args(["-machine", "mps2-an385", "-nographic", "-semihosting"])
            .arg("-monitor")
            .arg(format!("unix:{},server,nowait", monitor_path.display()))
            .args(["-serial", "pty", "-kernel"])
            .arg(fw.elf(build));
        if let Some(bytes) = partition {
            assert!(bytes.len() <= PARTITION_SIZE, "partition image too large");
            let file = dir.path().join("partition.bin");
            std::fs::write(&file, bytes).expect("write partition image");
            cmd.arg("-device").arg(format!(
                "loader,file={},addr={PARTITION_ADDR:#x},force-raw=on",
                file.display()
            ));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start qemu-system-arm");
        // QEMU names the pty on stdout or stderr depending on version.
        let (tx, rx) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("/dev/pts/") {
                        let pty: String = line[at..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        let _ = tx.send(Ok(pty));
                    } else {
                        let _ = tx.send(Err(line));
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut said = Vec::new();
        let pty = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(pty)) => break pty,
                Ok(Err(line)) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("QEMU did not name its serial pty: {}", said.join("\n"));
                }
            }
        };
        let monitor = loop {
            match UnixStream::connect(&monitor_path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("cannot connect to QEMU's monitor: {e}");
                }
            }
        };
        let mut qemu = Qemu {
            child,
            pty,
            monitor,
            unanswered: Arc::new(AtomicUsize::new(0)),
            dir,
        };
        qemu.monitor_read_prompt();
        qemu
    }

    /// The board's serial port (a pseudo-terminal).
    pub fn pty(&self) -> &str {
        &self.pty
    }

    /// A scratch directory that lives as long as the board.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run a QEMU monitor (HMP) command; returns what it printed.
    pub fn monitor(&mut self, command: &str) -> String {
        self.monitor
            .write_all(format!("{command}\n").as_bytes())
            .expect("write to the QEMU monitor");
        let owed = self.unanswered.swap(0, Ordering::SeqCst);
        self.monitor_read_prompts(1 + owed)
    }

    fn monitor_read_prompt(&mut self) -> String {
        self.monitor_read_prompts(1)
    }

    /// Read until `n` prompts have arrived (answers may come in one read).
    fn monitor_read_prompts(&mut self, n: usize) -> String {
        self.monitor
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("monitor timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let prompt = b"(qemu) ";
        while got.windows(prompt.len()).filter(|w| w == prompt).count() < n
            || !got.ends_with(prompt)
        {
            let n = match self.monitor.read(&mut buf) {
                // A signal (another test thread's child exiting) is no answer.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => r.expect("read from the QEMU monitor"),
            };
            assert!(n > 0, "the QEMU monitor closed");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Freeze the board at once (pulling the plug, as far as the flash
    /// is concerned).
    pub fn stop(&mut self) {
        self.monitor("stop");
    }

    /// A handle that can freeze the board from another thread while this
    /// one talks to it.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            monitor: self.monitor.try_clone().expect("clone the monitor socket"),
            unanswered: self.unanswered.clone(),
        }
    }

    /// The ROM partition as it is now (freeze the board first with
    /// [`Qemu::stop`] for an exact snapshot).
    pub fn partition(&mut self) -> Vec<u8> {
        let file = self.dir.path().join(format!(
            "pmemsave-{}.bin",
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_file(&file);
        self.monitor(&format!(
            "pmemsave {PARTITION_ADDR:#x} {PARTITION_SIZE:#x} \"{}\"",
            file.display()
        ));
        let bytes = std::fs::read(&file).expect("read the saved partition");
        assert_eq!(bytes.len(), PARTITION_SIZE, "pmemsave wrote a short file");
        let _ = std::fs::remove_file(&file);
        bytes
    }

    /// The ROM partition exactly as it is now: the board frozen for the
    /// copy, then let run on.
    pub fn partition_snapshot(&mut self) -> Vec<u8> {
        self.stop();
        let bytes = self.partition();
        self.monitor("cont");
        bytes
    }

    /// End QEMU.
    pub fn quit(mut self) {
        let _ = self.monitor.write_all(b"quit\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Drop kills it.
    }

    /// Run `script` in the board's raw REPL and return what it printed.
    /// Panics with the traceback if it raised.
    pub fn run(&mut self, script: &str) -> String {
        let (out, err) = self.run_raw(script);
        assert!(
            err.is_empty(),
            "the script raised on the board:\n{err}\nscript:\n{script}\noutput:\n{out}"
        );
        out
    }

    /// Run `script` in the board's raw REPL: (stdout, traceback).
    pub fn run_raw(&mut self, script: &str) -> (String, String) {
        self.raw_repl(script, &[], None)
    }

    /// Run `script` in the board's raw REPL and, once it runs, send `input`
    /// to its standard input (what `sys.stdin.buffer.read` returns; a
    /// script reading binary input disables Ctrl-C first with
    /// `micropython.kbd_intr(-1)`): (stdout, traceback).
    pub fn run_feeding(&mut self, script: &str, input: &[u8]) -> (String, String) {
        self.raw_repl(script, input, None)
    }

    /// As [`Qemu::run_feeding`], but send only the first `sent` bytes of
    /// `input`, wait until the script prints `marker`, and then freeze the
    /// board at once (QEMU `stop`, a power cut as far as the flash is
    /// concerned). The script prints the marker at the point to cut at
    /// (e.g. once it has read so many bytes).
    pub fn feed_then_stop(&mut self, script: &str, input: &[u8], sent: usize, marker: &[u8]) {
        self.raw_repl(script, &input[..sent.min(input.len())], Some(marker));
    }

    fn raw_repl(&mut self, script: &str, input: &[u8], cut_at: Option<&[u8]>) -> (String, String) {
        let mut port = serialport::new(&self.pty, 115_200)
            .timeout(Duration::from_secs(30))
            .open()
            .expect("open the board's pty");
        let mut received = Vec::new();
        // Interrupt, enter the raw REPL.
        port.write_all(b"\r\x03\x03\r\x01")
            .expect("write to the board");
        read_until(&mut *port, &mut received, b"raw REPL; CTRL-B to exit\r\n>");
        received.clear();
        // Plain raw mode: QEMU's serial port never drops bytes.
        port.write_all(script.as_bytes())
            .expect("write to the board");
        port.write_all(b"\x04").expect("write to the board");
        read_until(&mut *port, &mut received, b"OK");
        received.clear();
        port.write_all(input).expect("write to the board");
        if let Some(marker) = cut_at {
            read_until(&mut *port, &mut received, marker);
            self.stop();
            return (String::new(), String::new());
        }
        read_until(&mut *port, &mut received, b"\x04");
        let out = String::from_utf8_lossy(&received[..received.len() - 1]).into_owned();
        received.clear();
        read_until(&mut *port, &mut received, b"\x04");
        let err = String::from_utf8_lossy(&received[..received.len() - 1]).into_owned();
        received.clear();
        read_until(&mut *port, &mut received, b">");
        let _ = port.write_all(b"\x02");
        (out, err)
    }
}

fn read_until(port: &mut dyn serialport::SerialPort, got: &mut Vec<u8>, end: &[u8]) {
    let mut buf = [0u8; 1];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !got.ends_with(end) {
        assert!(
            Instant::now() < deadline,
            "the board did not print {:?}; got {:?}",
            String::from_utf8_lossy(end),
            String::from_utf8_lossy(got)
        );
        // One byte at a time: nothing past the end marker is consumed.
        match port.read(&mut buf[..1]) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("reading the board's pty: {e}"),
        }
    }
}

/// Freezes a board from another thread (see [`Qemu::stopper`]).
#[derive(Debug)]
pub struct Stopper {
    monitor: UnixStream,
    unanswered: Arc<AtomicUsize>,
}

impl Stopper {
    /// Freeze the board now. Its answer is read by the next
    /// [`Qemu::monitor`] call on the board itself.
    pub fn stop(&mut self) {
        self.monitor
            .write_all(b"stop\n")
            .expect("write to the QEMU monitor");
        self.unanswered.fetch_add(1, Ordering::SeqCst);
    }

    /// End QEMU now (the board vanishes: its serial port closes).
    pub fn quit(&mut self) {
        let _ = self.monitor.write_all(b"quit\n");
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Boot `build` with `partition` in its ROM partition, run `script` in the
/// raw REPL, return its output, and end QEMU. Panics with the traceback if
/// the script raised.
pub fn run_script(fw: &Firmware, build: Build, partition: Option<&[u8]>, script: &str) -> String {
    let mut board = Qemu::boot(fw, build, partition);
    let out = board.run(script);
    board.quit();
    out
}
