//! MicroPython as an oracle: one long-running `micropython` process walks
//! image after image with the real `vfs.VfsRom` and writes down everything
//! it sees, and [`our_walk`] writes the same transcript from our reader.
//! Where the two readers agree the transcripts are identical, line for line.
//!
//! The walk (the same on both sides): mount, `statvfs`; `stat` of the root
//! as `""`, `"/"` and `"//"`; then, breadth first over the directories in
//! listing order, `ilistdir` of each with a bytes path (every name, type and
//! size) and with a `str` path (what `os.listdir` does); for every entry
//! `stat` of its path with and without the leading `/`, with a trailing
//! `/`, with a byte too many, with a component too many and with its last
//! byte cut off (missing paths); and `open` of it, with the length and
//! CRC-32 of the contents.
//!
//! MicroPython also checks itself and adds a `BAD` line (which our walk
//! never has) when it misbehaves: a directory it lists that `os.listdir`
//! cannot list, a listed entry whose `stat` disagrees with the listing, a
//! listed file that cannot be opened or reads back differently, a module
//! whose import disagrees with its source, or a transcript that depends on
//! the bytes just outside the image buffer (the image is walked twice, once
//! between guard bytes of 0x00 and once of 0xff: a difference means it read
//! out of bounds). A process that dies or stops answering is restarted and
//! the image reported as [`Answer::Crashed`] or [`Answer::Hung`].

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use romfs_format::{Image, Node};

/// The most entries one walk visits; past it the transcript ends in `LIMIT`.
pub const MAX_ENTRIES: usize = 2000;

/// The most text a transcript holds (paths repeat in every line, and names
/// can make paths long); past it the walk ends in `LIMIT`.
pub const MAX_TEXT: usize = 1 << 20;

/// Bytes of guard on each side of the image in MicroPython's buffer.
const GUARD: usize = 4096;

/// The walk itself, in MicroPython, shared by the unix process and the
/// board, after definitions of `MAX_ENTRIES` and `MAX_TEXT`; `out` is
/// anything with `append(line)` and `size`.
const WALK: &str = include_str!("oracle/walk.py");

/// The unix driver: images named on stdin, transcripts on stdout.
const UNIX: &str = include_str!("oracle/unix.py");

/// The board driver: walks every image packed in ROM partition 0 by
/// [`pack_for_board`], printing `IMG k`, the transcript and `END` for each.
const BOARD: &str = include_str!("oracle/board.py");

fn walk_source() -> String {
    format!("MAX_ENTRIES = {MAX_ENTRIES}\nMAX_TEXT = {MAX_TEXT}\n{WALK}")
}

/// The MicroPython script that walks, on a board, the images
/// [`pack_for_board`] put in its ROM partition 0 (read with
/// `vfs.rom_ioctl(2, 0)`), with the same walk as the unix oracle (without
/// the guard bytes or imports); [`parse_board_output`] reads what it prints.
pub fn board_script() -> String {
    walk_source() + BOARD
}

/// Pack `images` into one ROM partition of `capacity` bytes for
/// [`board_script`]: a table (count, then offset and length of each, all
/// little-endian u32) and the images, each at a 4-byte boundary. The table
/// is not an image, so the board mounts nothing at `/rom` at boot. `None`
/// when they do not fit.
pub fn pack_for_board(images: &[&[u8]], capacity: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; 4 + 8 * images.len()];
    out[..4].copy_from_slice(&(images.len() as u32).to_le_bytes());
    for (k, image) in images.iter().enumerate() {
        while !out.len().is_multiple_of(4) {
            out.push(0xff);
        }
        let at = 4 + 8 * k;
        let offset = out.len() as u32;
        out[at..at + 4].copy_from_slice(&offset.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&(image.len() as u32).to_le_bytes());
        out.extend_from_slice(image);
    }
    (out.len() <= capacity).then_some(out)
}

/// The transcripts a run of [`board_script`] printed, by image index, and
/// whether it got to the end (`DONE`). An image whose `END` is missing is
/// the one the board was walking when its output stopped.
pub fn parse_board_output(text: &str) -> (Vec<(usize, Vec<String>, bool)>, bool) {
    let mut out: Vec<(usize, Vec<String>, bool)> = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(k) = line.strip_prefix("IMG ") {
            if let Ok(k) = k.trim().parse() {
                out.push((k, Vec::new(), false));
            }
        } else if line == "END" {
            if let Some(last) = out.last_mut() {
                last.2 = true;
            }
        } else if line == "DONE" {
            done = true;
        } else if let Some(last) = out.last_mut() {
            if !last.2 {
                last.1.push(line.to_string());
            }
        }
    }
    (out, done)
}

/// What MicroPython made of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The transcript of its walk (without the closing `END`).
    Walk(Vec<String>),
    /// The process died on the image: how, and the end of its stderr.
    Crashed(String),
    /// No answer within the time limit: the process was killed.
    Hung,
}

impl Answer {
    /// True when MicroPython misbehaved on the image: it crashed, hung, or
    /// its walk has a `BAD` line.
    pub fn misbehaved(&self) -> bool {
        match self {
            Answer::Walk(lines) => lines.iter().any(|l| l.starts_with("BAD ")),
            Answer::Crashed(_) | Answer::Hung => true,
        }
    }

    /// Short names of the ways MicroPython misbehaved (`crash`, `hang`,
    /// `list-str`, `stat`, `open`, `read`, `import`, `oob`, `walk`).
    pub fn misbehaviours(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Answer::Crashed(_) => vec!["crash".into()],
            Answer::Hung => vec!["hang".into()],
            Answer::Walk(lines) => lines
                .iter()
                .filter_map(|l| l.strip_prefix("BAD "))
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect(),
        };
        out.sort();
        out.dedup();
        out
    }
}

/// The running `micropython` process.
struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// A long-running MicroPython answering for image after image.
pub struct Oracle {
    program: PathBuf,
    dir: PathBuf,
    process: Option<Process>,
    version: String,
    /// How long one image may take before the process counts as hung.
    pub timeout: Duration,
    /// How many times the process died or hung and was started again.
    pub restarts: usize,
}

impl Oracle {
    /// Start `micropython` (the unix port) running the walk script, with
    /// its scratch files in a new directory under `scratch`.
    pub fn start(micropython: &Path, scratch: &Path) -> std::io::Result<Oracle> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = scratch.join(format!(
            "oracle-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let script = walk_source() + &format!("GUARD = {GUARD}\n{UNIX}");
        std::fs::write(dir.join("walk.py"), script)?;
        let mut oracle = Oracle {
            program: micropython.to_path_buf(),
            dir,
            process: None,
            version: String::new(),
            timeout: Duration::from_secs(30),
            restarts: 0,
        };
        oracle.spawn()?;
        Ok(oracle)
    }

    /// What the process says it is (`READY` line: version and machine).
    pub fn version(&self) -> &str {
        &self.version
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let mut child = Command::new(&self.program)
            .args(["-X", "heapsize=96M"])
            .arg(self.dir.join("walk.py"))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let mut err_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                s.extend_from_slice(&buf[..n]);
                let excess = s.len().saturating_sub(8192);
                s.drain(..excess);
            }
        });
        let mut process = Process {
            child,
            stdin,
            lines,
            stderr,
        };
        match process.lines.recv_timeout(self.timeout) {
            Ok(ready) if ready.starts_with("READY") => {
                self.version = ready["READY ".len()..].to_string();
                self.process = Some(process);
                Ok(())
            }
            other => {
                let _ = process.child.kill();
                let _ = process.child.wait();
                let err = String::from_utf8_lossy(&process.stderr.lock().unwrap()).into_owned();
                Err(std::io::Error::other(format!(
                    "{} did not start the walk script ({other:?}): {err}",
                    self.program.display()
                )))
            }
        }
    }

    /// Ask MicroPython about `image` (any bytes; an image or not).
    pub fn ask(&mut self, image: &[u8]) -> Answer {
        if self.process.is_none() {
            self.restarts += 1;
            if let Err(e) = self.spawn() {
                return Answer::Crashed(format!("restart failed: {e}"));
            }
        }
        let path = self.dir.join("image.bin");
        if let Err(e) = std::fs::write(&path, image) {
            panic!("writing {}: {e}", path.display());
        }
        let process = self.process.as_mut().expect("spawned above");
        let request = format!("{} {}\n", path.display(), image.len());
        if process.stdin.write_all(request.as_bytes()).is_err() || process.stdin.flush().is_err() {
            return self.died();
        }
        let deadline = Instant::now() + self.timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match process.lines.recv_timeout(left) {
                Ok(line) if line == "END" => return Answer::Walk(lines),
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    let mut p = self.process.take().expect("running");
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    return Answer::Hung;
                }
                Err(RecvTimeoutError::Disconnected) => return self.died(),
            }
        }
    }

    fn died(&mut self) -> Answer {
        let mut p = self.process.take().expect("running");
        let status = match p.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        // The stderr thread may still be draining the pipe.
        std::thread::sleep(Duration::from_millis(20));
        let err = String::from_utf8_lossy(&p.stderr.lock().unwrap()).into_owned();
        let tail: String = err
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        Answer::Crashed(format!("{status}: {tail}"))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            drop(p.stdin);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- our side

/// MicroPython's own test of whether bytes make a `str` (what raises
/// `UnicodeError` when it lists names or decodes a path): looser than
/// UTF-8, it takes overlong forms, surrogates and code points up to 0x1fffff
/// as long as every lead byte below 0xf8 has its continuation bytes.
pub fn micropython_str_ok(bytes: &[u8]) -> bool {
    let mut need = 0;
    for &b in bytes {
        if need > 0 {
            if b & 0xc0 != 0x80 {
                return false;
            }
            need -= 1;
        } else if b >= 0xf8 {
            return false;
        } else if b >= 0xf0 {
            need = 3;
        } else if b >= 0xe0 {
            need = 2;
        } else if b >= 0xc0 {
            need = 1;
        } else if b >= 0x80 {
            return false;
        }
    }
    need == 0
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

const S_IFDIR: u32 = 0x4000;
const S_IFREG: u32 = 0x8000;
const ENOENT: u32 = 2;
const ENODEV: u32 = 19;
const EISDIR: u32 = 21;

fn stat_line(image: &Image<'_>, path: &[u8]) -> String {
    match image.lookup(path) {
        Ok(Some(node)) => {
            let mode = if node.is_dir() { S_IFDIR } else { S_IFREG };
            format!("{mode} {}", node.size())
        }
        Ok(None) => format!("! OSError{ENOENT}"),
        Err(e) => format!("ERR {e}"),
    }
}

/// The transcript of the same walk with our reader (see the module
/// documentation). It never has `BAD` lines; where our reader reports the
/// image corrupt, the line says `ERR` and why.
pub fn our_walk(buf: &[u8]) -> Vec<String> {
    let mut out = Transcript::default();
    let image = match Image::parse(buf) {
        Ok(image) => image,
        Err(_) => {
            out.push(format!("M ! OSError{ENODEV}"));
            return out.lines;
        }
    };
    out.push(format!("M {}", image.payload().len()));
    for q in [&b""[..], b"/", b"//"] {
        out.push(format!("S {} {}", hex(q), stat_line(&image, q)));
    }
    let mut queue: Vec<Vec<u8>> = vec![Vec::new()];
    let mut seen = 0;
    let mut i = 0;
    while i < queue.len() {
        if out.full() {
            return out.lines;
        }
        let d = queue[i].clone();
        i += 1;
        let dir_path = [b"/", d.as_slice()].concat();
        let dir = match image.lookup(&dir_path) {
            Ok(Some(Node::Dir(dir))) => dir,
            Ok(_) => {
                out.push(format!("D {} ! OSError{ENOENT}", hex(&d)));
                continue;
            }
            Err(e) => {
                out.push(format!("D {} ERR {e}", hex(&d)));
                continue;
            }
        };
        let mut entries = Vec::new();
        for entry in dir.entries() {
            match entry {
                Ok(node) => entries.push(node),
                Err(e) => {
                    out.push(format!("D {} ERR {e}", hex(&d)));
                    break;
                }
            }
        }
        let res = if !micropython_str_ok(&dir_path) {
            "nopath"
        } else if entries.iter().all(|e| micropython_str_ok(e.name())) {
            "ok"
        } else {
            "UnicodeError"
        };
        out.push(format!("D {} {res} {}", hex(&d), entries.len()));
        if seen + entries.len() > MAX_ENTRIES {
            out.push("LIMIT".into());
            return out.lines;
        }
        seen += entries.len();
        for e in &entries {
            let mode = if e.is_dir() { S_IFDIR } else { S_IFREG };
            out.push(format!("E {} {mode} {}", hex(e.name()), e.size()));
        }
        for e in &entries {
            if out.full() {
                return out.lines;
            }
            let n = e.name();
            let p = if d.is_empty() {
                n.to_vec()
            } else {
                [d.as_slice(), b"/", n].concat()
            };
            let mut qs = vec![
                [b"/", p.as_slice()].concat(),
                p.clone(),
                [b"/", p.as_slice(), b"/"].concat(),
                [b"/", p.as_slice(), b"~"].concat(),
                [b"/", p.as_slice(), b"/~"].concat(),
            ];
            if n.len() > 1 {
                qs.push([b"/", &p[..p.len() - 1]].concat());
            }
            for q in &qs {
                out.push(format!("S {} {}", hex(q), stat_line(&image, q)));
            }
            let read = match image.lookup(&qs[0]) {
                Ok(Some(Node::File(f))) => {
                    format!("{} {}", f.len(), romfs_format::crc32::checksum(f.data()))
                }
                Ok(Some(Node::Dir(_))) => format!("! OSError{EISDIR}"),
                Ok(None) => format!("! OSError{ENOENT}"),
                Err(e) => format!("ERR {e}"),
            };
            out.push(format!("R {} {read}", hex(&p)));
            if e.is_dir() {
                queue.push(p);
            }
        }
    }
    out.lines
}

/// Lines and their total size, as the script's `Out` counts them.
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
    size: usize,
}

impl Transcript {
    fn push(&mut self, line: String) {
        self.size += line.len() + 1;
        self.lines.push(line);
    }

    fn full(&mut self) -> bool {
        let full = self.size > MAX_TEXT;
        if full {
            self.push("LIMIT".into());
        }
        full
    }
}

/// The first line where two transcripts differ: (index, ours, theirs).
pub fn first_difference<'a>(
    ours: &'a [String],
    theirs: &'a [String],
) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
    let n = ours.len().max(theirs.len());
    (0..n).find(|&k| ours.get(k) != theirs.get(k)).map(|k| {
        (
            k,
            ours.get(k).map(String::as_str),
            theirs.get(k).map(String::as_str),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micropython_str_rule() {
        assert!(micropython_str_ok(b"plain"));
        assert!(micropython_str_ok("é日本😀".as_bytes()));
        // Looser than UTF-8:
        assert!(micropython_str_ok(b"\xc0\xaf"));
        assert!(micropython_str_ok(b"\xed\xa0\x80"));
        assert!(micropython_str_ok(b"\xf5\x80\x80\x80"));
        // But not this loose:
        assert!(!micropython_str_ok(b"\x80"));
        assert!(!micropython_str_ok(b"\xff"));
        assert!(!micropython_str_ok(b"\xc3"));
        assert!(!micropython_str_ok(b"\xf8\x88\x80\x80\x80"));
        assert!(!micropython_str_ok(b"\xe0\x80"));
    }

    #[test]
    fn our_walk_of_a_small_image() {
        // d2 cd 31 | dir "d" { file "f" data "ab" }
        let img = [
            0xd2, 0xcd, 0x31, 0x0c, 4, 0x0a, 1, b'd', 5, 6, 1, b'f', 2, 2, b'a', b'b',
        ];
        let walk = our_walk(&img);
        assert_eq!(walk[0], "M 12");
        assert!(walk.contains(&"D - ok 1".to_string()), "{walk:#?}");
        assert!(walk.contains(&"E 64 16384 8".to_string()), "{walk:#?}");
        assert!(
            walk.contains(&format!(
                "R 642f66 2 {}",
                romfs_format::crc32::checksum(b"ab")
            )),
            "{walk:#?}"
        );
        assert!(
            walk.contains(&"S 2f642f66 32768 2".to_string()),
            "{walk:#?}"
        );
        assert!(
            walk.contains(&"S 2f642f662f ! OSError2".to_string()),
            "{walk:#?}"
        );
        assert_eq!(our_walk(b"nope"), vec!["M ! OSError19".to_string()]);
    }
}
