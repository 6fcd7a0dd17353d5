//! Differential testing against MicroPython's own reader (`vfs.VfsRom` in the
//! real unix port): thousands of random images (valid, hand-shaped, mutated:
//! `romfs_testkit::gen`), each walked by MicroPython and by our reader
//! (`romfs_testkit::oracle`), and checked against `verify`:
//!
//! - on every image `verify` accepts, MicroPython's transcript is ours, line
//!   for line (so MicroPython also never misbehaves on it);
//! - every image on which MicroPython misbehaves (crashes, hangs, reads out
//!   of bounds, cannot list, stat, open or import what it lists) is one
//!   `verify` rejects, with a finding that explains it.
//!
//! Images in the stable layout (FORMAT.md 2.3) are also walked in chains of
//! generations, each built over the one before after random edits: every
//! one must verify, give back its source, and be walked by MicroPython (the
//! unix port and the emulated v1.29 board) exactly as by us
//! (`ROMFS_DIFF_STABLE_CHAINS`, default 32 chains of 8).
//!
//! `ROMFS_DIFF_IMAGES` (default 3000) and `ROMFS_DIFF_SEED` choose the run,
//! `ROMFS_DIFF_JOBS` the number of MicroPython processes (default 2).
//! `scripts/differential.sh` is the long run; DIFFERENTIAL.md records them.
//! A failing image is minimised and written under
//! `target/differential/failures/`; once understood and fixed it belongs in
//! `tests/differential/` (replayed by `regression_images`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use romfs_format::{FindingKind, Image};
use romfs_testkit::gen::{self, Family};
use romfs_testkit::oracle::{first_difference, our_walk, Answer, Oracle};
use romfs_testkit::{target_dir, venv_tool, workspace_root};

/// What `verify` says about an image: `Ok` with its findings (none: the
/// image is accepted), or `Err` when it cannot even be parsed.
type Verdict = Result<Vec<FindingKind>, romfs_format::ErrorKind>;

fn verdict(bytes: &[u8]) -> Verdict {
    let image = Image::parse(bytes).map_err(|e| e.kind)?;
    let mut findings = Vec::new();
    image.verify(|f| findings.push(f.kind));
    Ok(findings)
}

fn accepted(v: &Verdict) -> bool {
    matches!(v, Ok(f) if f.is_empty())
}

/// A short name for each kind of finding (for the tables and regression
/// files): its `Debug` form without the figures some variants carry.
fn finding_name(kind: &dyn std::fmt::Debug) -> String {
    let full = format!("{kind:?}");
    match full.find(" {") {
        Some(i) => {
            let head = &full[..i];
            head.to_string() + &")".repeat(head.matches('(').count())
        }
        None => full,
    }
}

fn verdict_names(v: &Verdict) -> Vec<String> {
    let mut names: Vec<String> = match v {
        Ok(f) => f.iter().map(|k| finding_name(k)).collect(),
        Err(e) => vec![format!("Parse({})", finding_name(e))],
    };
    names.sort();
    names.dedup();
    names
}

/// Does one of `verify`'s findings explain this way of misbehaving? Each
/// kind of misbehaviour has the findings that can cause it.
fn explains(misbehaviour: &str, v: &Verdict) -> bool {
    let Ok(findings) = v else {
        // Not even parsed: the header or declared length is wrong, which is
        // a reason for anything.
        return true;
    };
    let structural =
        |f: &FindingKind| matches!(f, FindingKind::Structure(_) | FindingKind::UnusedRecord);
    let naming = |f: &FindingKind| matches!(f, FindingKind::Name(_) | FindingKind::DuplicateName);
    findings.iter().any(|f| match misbehaviour {
        // A name with a NUL or '/' that is not UTF-8 either is reported
        // for its first problem.
        "list-str" => matches!(f, FindingKind::Name(_)) || structural(f),
        "stat" | "open" | "read" | "import" => naming(f) || structural(f),
        _ => structural(f),
    })
}

/// What is wrong with one image, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// `verify` accepts it and MicroPython answers differently from us.
    Disagrees {
        line: usize,
        ours: String,
        theirs: String,
    },
    /// MicroPython misbehaves and `verify` has no finding that says why.
    Unexplained {
        misbehaviour: String,
        findings: Vec<String>,
    },
}

impl Failure {
    /// What must stay the same while the image is minimised.
    fn class(&self) -> String {
        match self {
            Failure::Disagrees { theirs, .. } => {
                let what: String = theirs
                    .split(' ')
                    .take(if theirs.starts_with("BAD") { 2 } else { 1 })
                    .collect::<Vec<_>>()
                    .join("-");
                format!("disagrees-{what}")
            }
            Failure::Unexplained { misbehaviour, .. } => format!("unexplained-{misbehaviour}"),
        }
    }
}

/// Everything learnt about one image.
struct Outcome {
    verdict: Verdict,
    answer: Answer,
    failure: Option<Failure>,
}

fn examine(oracle: &mut Oracle, bytes: &[u8]) -> Outcome {
    let verdict = verdict(bytes);
    let answer = oracle.ask(bytes);
    let ours = our_walk(bytes);
    let failure = if accepted(&verdict) {
        let theirs = match &answer {
            Answer::Walk(lines) => lines.clone(),
            Answer::Crashed(why) => vec![format!("CRASH {why}")],
            Answer::Hung => vec!["HANG".to_string()],
        };
        first_difference(&ours, &theirs).map(|(line, o, t)| Failure::Disagrees {
            line,
            ours: o.unwrap_or("(end)").to_string(),
            theirs: t.unwrap_or("(end)").to_string(),
        })
    } else {
        answer
            .misbehaviours()
            .into_iter()
            .find(|m| !explains(m, &verdict))
            .map(|misbehaviour| Failure::Unexplained {
                misbehaviour,
                findings: verdict_names(&verdict),
            })
    };
    Outcome {
        verdict,
        answer,
        failure,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (k, chunk) in bytes.chunks(32).enumerate() {
        if k > 0 {
            s.push('\n');
        }
        for b in chunk {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).expect("hex digit"))
        .collect()
}

/// A transcript line cut short for a report: hex paths can be long.
fn shorten(line: &str) -> String {
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

/// Counts for the report of a run.
#[derive(Default)]
struct Tally {
    images: usize,
    /// Family -> [images, accepted by verify, MicroPython misbehaved].
    by_family: BTreeMap<String, [usize; 3]>,
    /// Way of misbehaving -> images.
    misbehaviour: BTreeMap<String, usize>,
    /// verify's finding -> [images with it, of which MicroPython misbehaved on].
    findings: BTreeMap<String, [usize; 2]>,
    /// verify's finding, on images where it is the only kind found ->
    /// (images, MicroPython's ways of misbehaving on them -> images): what
    /// that one shape does to MicroPython.
    alone: BTreeMap<String, (usize, BTreeMap<String, usize>)>,
    restarts: usize,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, family: Family, outcome: &Outcome) {
        self.images += 1;
        let row = self.by_family.entry(format!("{family:?}")).or_default();
        row[0] += 1;
        row[1] += accepted(&outcome.verdict) as usize;
        row[2] += outcome.answer.misbehaved() as usize;
        let ways = outcome.answer.misbehaviours();
        for m in &ways {
            *self.misbehaviour.entry(m.clone()).or_default() += 1;
        }
        let names = verdict_names(&outcome.verdict);
        for f in &names {
            let row = self.findings.entry(f.clone()).or_default();
            row[0] += 1;
            row[1] += outcome.answer.misbehaved() as usize;
        }
        if let [only] = names.as_slice() {
            let (n, seen) = self.alone.entry(only.clone()).or_default();
            *n += 1;
            for m in ways {
                *seen.entry(m).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.images += other.images;
        for (k, v) in other.by_family {
            let row = self.by_family.entry(k).or_default();
            for i in 0..3 {
                row[i] += v[i];
            }
        }
        for (k, v) in other.misbehaviour {
            *self.misbehaviour.entry(k).or_default() += v;
        }
        for (k, v) in other.findings {
            let row = self.findings.entry(k).or_default();
            row[0] += v[0];
            row[1] += v[1];
        }
        for (k, (n, seen)) in other.alone {
            let (total, all) = self.alone.entry(k).or_default();
            *total += n;
            for (m, c) in seen {
                *all.entry(m).or_default() += c;
            }
        }
        self.restarts += other.restarts;
        self.failures.extend(other.failures);
    }

    fn report(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "family      images  verify-accepted  micropython-misbehaved"
        );
        for (family, [n, ok, bad]) in &self.by_family {
            let _ = writeln!(s, "{family:<11} {n:>6}  {ok:>15}  {bad:>22}");
        }
        let _ = writeln!(
            s,
            "MicroPython misbehaved (images): {:?}",
            self.misbehaviour
        );
        let _ = writeln!(
            s,
            "verify's finding: images with it, MicroPython misbehaved on; images with only it: how MicroPython misbehaved"
        );
        for (f, [n, bad]) in &self.findings {
            let (alone, ways) = self.alone.get(f).cloned().unwrap_or_default();
            let _ = writeln!(s, "  {f:<32} {n:>6} {bad:>6}; {alone:>6}: {ways:?}");
        }
        let _ = writeln!(s, "micropython restarts: {}", self.restarts);
        s
    }
}

fn failures_dir() -> PathBuf {
    target_dir().join("differential").join("failures")
}

/// Minimise a failing image while it fails the same way; write it out.
fn minimise_and_record(oracle: &mut Oracle, seed: u64, bytes: &[u8], failure: &Failure) -> String {
    let class = failure.class();
    let small = gen::minimise(bytes, 1500, |candidate| {
        examine(oracle, candidate)
            .failure
            .is_some_and(|f| f.class() == class)
    });
    let again = examine(oracle, &small);
    let dir = failures_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{class}-{seed:016x}.hex"));
    let text = format!(
        "# seed {seed:#018x}: {failure:?}\n# minimised ({} bytes): {:?}\n# verify: {}\n{}\n",
        small.len(),
        again.failure,
        verdict_names(&again.verdict).join(", "),
        hex(&small)
    );
    std::fs::write(&path, &text).unwrap();
    format!(
        "seed {seed:#x}: {failure:?}\n  minimised to {} bytes in {}\n{text}",
        small.len(),
        path.display()
    )
}

/// Examine the images `first..first + count` that fall to worker `job` of `jobs`.
fn run_worker(micropython: &Path, base_seed: u64, count: u64, job: u64, jobs: u64) -> Tally {
    let scratch = target_dir().join("differential");
    let mut oracle = Oracle::start(micropython, &scratch).expect("start micropython");
    let mut tally = Tally::default();
    let mut i = job;
    while i < count {
        let seed = base_seed.wrapping_add(i);
        let generated = gen::generate(seed);
        let outcome = examine(&mut oracle, &generated.bytes);
        tally.add(generated.family, &outcome);
        if let Some(failure) = &outcome.failure {
            let mut note = format!("[{}] ", generated.recipe);
            note += &minimise_and_record(&mut oracle, seed, &generated.bytes, failure);
            eprintln!("FAILURE {note}");
            tally.failures.push(note);
        }
        i += jobs;
    }
    tally.restarts = oracle.restarts;
    tally
}

#[test]
fn micropython_and_our_reader_agree_on_random_images() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let count = env_u64("ROMFS_DIFF_IMAGES", 3000);
    let seed = env_u64("ROMFS_DIFF_SEED", 0x5eed_0001);
    let jobs = env_u64("ROMFS_DIFF_JOBS", 2).max(1);
    let started = Instant::now();
    let tally = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|job| {
                let micropython = &micropython;
                s.spawn(move || run_worker(micropython, seed, count, job, jobs))
            })
            .collect();
        let mut tally = Tally::default();
        for w in workers {
            tally.merge(w.join().expect("worker"));
        }
        tally
    });
    eprintln!(
        "differential: {} images from seed {seed:#x} in {:.1?} ({jobs} job(s))\n{}",
        tally.images,
        started.elapsed(),
        tally.report()
    );
    // The run must exercise what it claims to: accepted images of every
    // family, and images on which MicroPython misbehaves.
    if count >= 1000 {
        for (family, [n, ok, _]) in &tally.by_family {
            assert!(
                *ok * 10 >= *n,
                "{family}: only {ok} of {n} images verify clean"
            );
        }
        assert!(
            !tally.misbehaviour.is_empty(),
            "no image made MicroPython misbehave"
        );
    }
    assert!(
        tally.failures.is_empty(),
        "{} failing image(s):\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

/// One regression image from `tests/differential/`: its bytes and what it
/// expects (`# expect-verify:` a finding name or `accepts`,
/// `# expect-micropython:` a misbehaviour or `agrees`).
struct Regression {
    path: PathBuf,
    bytes: Vec<u8>,
    verify: Vec<String>,
    micropython: Vec<String>,
}

fn regressions() -> Vec<Regression> {
    let dir = workspace_root().join("tests").join("differential");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hex") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let field = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(key))
                .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect()
        };
        out.push(Regression {
            bytes: unhex(&text),
            verify: field("# expect-verify:"),
            micropython: field("# expect-micropython:"),
            path,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[test]
fn regression_images_are_judged_as_recorded() {
    let cases = regressions();
    assert!(
        !cases.is_empty(),
        "no regression images in tests/differential/"
    );
    // What verify says needs no MicroPython.
    for case in &cases {
        assert!(
            !case.verify.is_empty(),
            "{}: no # expect-verify line",
            case.path.display()
        );
        let v = verdict(&case.bytes);
        let names = verdict_names(&v);
        for want in &case.verify {
            if want == "accepts" {
                assert!(
                    accepted(&v),
                    "{}: verify should accept, says {names:?}",
                    case.path.display()
                );
            } else {
                assert!(
                    names.contains(want),
                    "{}: verify should find {want}, says {names:?}",
                    case.path.display()
                );
            }
        }
    }
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let mut oracle = Oracle::start(&micropython, &target_dir().join("differential")).unwrap();
    for case in &cases {
        let outcome = examine(&mut oracle, &case.bytes);
        assert_eq!(outcome.failure, None, "{}", case.path.display());
        let seen = outcome.answer.misbehaviours();
        for want in &case.micropython {
            if want == "agrees" {
                assert!(
                    seen.is_empty(),
                    "{}: MicroPython misbehaves: {seen:?}",
                    case.path.display()
                );
            } else {
                assert!(
                    seen.contains(want),
                    "{}: MicroPython should show {want}, shows {seen:?} ({:?})",
                    case.path.display(),
                    outcome.answer
                );
            }
        }
    }
}

/// The emulated MicroPython v1.29 board (Cortex-M3 under QEMU, firmware
/// from `$ROMFS_DEVICE_DIR`, default `../shared/device` beside the
/// workspace): boot it with a ROM partition, run one script at the raw
/// REPL, return what it printed. The smallest runner this test needs.
mod board {
    use std::io::{Read, Write};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::{self, Receiver};
    use std::time::{Duration, Instant};

    /// Where ROM partition 0 is mapped, and its size.
    const PARTITION_ADDR: u32 = 0x2100_0000;
    pub const PARTITION_SIZE: usize = 4 << 20;

    pub struct Board {
        qemu: PathBuf,
        firmware: PathBuf,
    }

    /// The board, or `None` (saying why) outside CI when QEMU or the
    /// firmware is missing; in CI that is a panic.
    pub fn find() -> Option<Board> {
        let dir = std::env::var_os("ROMFS_DEVICE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| romfs_testkit::workspace_root().join("../shared/device"));
        let firmware = dir.join("micropython-mps2-an385.elf");
        if !firmware.is_file() {
            let why = format!("{} is missing", firmware.display());
            assert!(
                !romfs_testkit::in_ci(),
                "the v1.29 board firmware is required in CI: {why}"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let qemu = romfs_testkit::system_tool("qemu-system-arm")?;
        Some(Board { qemu, firmware })
    }

    /// QEMU, killed when dropped.
    struct Running {
        child: Child,
        output: Receiver<Vec<u8>>,
        seen: Vec<u8>,
    }

    impl Running {
        /// Read until `token`; returns what came before it.
        fn until(&mut self, token: &[u8], deadline: Instant) -> Result<Vec<u8>, String> {
            let mut from = 0;
            loop {
                if let Some(i) = self.seen[from..]
                    .windows(token.len())
                    .position(|w| w == token)
                {
                    let i = from + i;
                    let before = self.seen[..i].to_vec();
                    self.seen.drain(..i + token.len());
                    return Ok(before);
                }
                from = self.seen.len().saturating_sub(token.len());
                let left = deadline.saturating_duration_since(Instant::now());
                match self.output.recv_timeout(left) {
                    Ok(chunk) if !left.is_zero() => self.seen.extend_from_slice(&chunk),
                    other => {
                        let tail = &self.seen[self.seen.len().saturating_sub(2000)..];
                        return Err(format!(
                            "waiting for {:?}: {:?}; the board printed (last part): {}",
                            String::from_utf8_lossy(token),
                            other.err(),
                            String::from_utf8_lossy(tail)
                        ));
                    }
                }
            }
        }

        fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
            let stdin = self.child.stdin.as_mut().expect("piped");
            stdin
                .write_all(bytes)
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("writing to QEMU: {e}"))
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Board {
        /// Boot with `partition` in ROM partition 0 and run `script` at
        /// the raw REPL. `Ok` with its output when it finished; `Err` with
        /// everything it printed when it stopped or took past `timeout`.
        pub fn run(
            &self,
            partition: &[u8],
            script: &str,
            timeout: Duration,
        ) -> Result<String, String> {
            assert!(partition.len() <= PARTITION_SIZE);
            let dir = tempfile::tempdir().unwrap();
            let image = dir.path().join("partition.bin");
            std::fs::write(&image, partition).unwrap();
            let mut child = Command::new(&self.qemu)
                .args(["-machine", "mps2-an385", "-nographic", "-monitor", "null"])
                .args(["-semihosting", "-serial", "stdio", "-kernel"])
                .arg(&self.firmware)
                .arg("-device")
                .arg(format!(
                    "loader,file={},addr={PARTITION_ADDR:#x},force-raw=on",
                    image.display()
                ))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("starting {}: {e}", self.qemu.display()))?;
            let mut stdout = child.stdout.take().expect("piped");
            let (tx, output) = mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            let mut qemu = Running {
                child,
                output,
                seen: Vec::new(),
            };
            let deadline = Instant::now() + timeout;
            // Interrupt anything running, wait for the friendly prompt, then
            // enter the raw REPL: the script and its end (Ctrl-D) go in as
            // they are, the output comes back between "OK" and Ctrl-D.
            qemu.send(b"\r\x03\x03")?;
            qemu.until(b">>> ", deadline)?;
            qemu.send(b"\x01")?;
            qemu.until(b"raw REPL; CTRL-B to exit\r\n>", deadline)?;
            qemu.send(script.as_bytes())?;
            qemu.send(b"\x04")?;
            qemu.until(b"OK", deadline)?;
            let out = qemu.until(b"\x04", deadline)?;
            let err = qemu.until(b"\x04", deadline)?;
            let out = String::from_utf8_lossy(&out).into_owned();
            if err.is_empty() {
                Ok(out)
            } else {
                Err(format!("{out}\n{}", String::from_utf8_lossy(&err)))
            }
        }
    }
}

/// What the board did with the images of one sample.
#[derive(Default)]
struct BoardTally {
    accepted: usize,
    rejected: usize,
    rejected_same_as_unix: usize,
    /// Rejected images the board walked differently from the unix port:
    /// seed, verify's findings, the first difference (unix, board).
    rejected_differences: Vec<String>,
    rejected_stopped: Vec<u64>,
    boots: usize,
    failures: Vec<String>,
}

/// One image of the board sample.
struct BoardCase {
    seed: u64,
    bytes: Vec<u8>,
    accepted: bool,
    /// For a rejected image, the unix port's transcript.
    unix: Option<Vec<String>>,
}

/// Walk `images` on the board, as many per boot as fit; an image the board
/// stops on is recorded and the rest are walked in a new boot.
fn walk_on_board(board: &board::Board, images: &[BoardCase]) -> BoardTally {
    let script = romfs_testkit::oracle::board_script();
    let mut tally = BoardTally::default();
    let mut next = 0;
    while next < images.len() {
        // As many as fit, leaving room for the table.
        let mut batch: Vec<&[u8]> = Vec::new();
        let mut end = next;
        while end < images.len() {
            batch.push(&images[end].bytes);
            if romfs_testkit::oracle::pack_for_board(&batch, board::PARTITION_SIZE).is_none() {
                batch.pop();
                break;
            }
            end += 1;
        }
        assert!(
            end > next,
            "image of seed {:#x} does not fit the partition",
            images[next].seed
        );
        let partition =
            romfs_testkit::oracle::pack_for_board(&batch, board::PARTITION_SIZE).unwrap();
        tally.boots += 1;
        let output = board
            .run(
                &partition,
                &script,
                std::time::Duration::from_secs(120 + batch.len() as u64),
            )
            .unwrap_or_else(|partial| partial);
        let (walks, done) = romfs_testkit::oracle::parse_board_output(&output);
        let mut finished = 0;
        for (k, lines, complete) in walks {
            let BoardCase {
                seed,
                bytes,
                accepted,
                unix,
            } = &images[next + k];
            if !complete {
                if *accepted {
                    tally.failures.push(format!(
                        "seed {seed:#x}: the board stopped walking an image verify accepts"
                    ));
                } else {
                    tally.rejected_stopped.push(*seed);
                }
                break;
            }
            finished = k + 1;
            if *accepted {
                tally.accepted += 1;
                let ours = our_walk(bytes);
                if let Some((line, o, t)) = first_difference(&ours, &lines) {
                    tally.failures.push(format!(
                        "seed {seed:#x}: the v1.29 board disagrees at line {line}: ours {o:?}, board {t:?}"
                    ));
                }
            } else {
                tally.rejected += 1;
                let unix = unix.as_deref().unwrap_or_default();
                match first_difference(unix, &lines) {
                    None => tally.rejected_same_as_unix += 1,
                    Some((line, u, b)) => tally.rejected_differences.push(format!(
                        "seed {seed:#x} [{}] line {line}: unix {:?}, board {:?}",
                        verdict_names(&verdict(bytes)).join(","),
                        shorten(u.unwrap_or("(end)")),
                        shorten(b.unwrap_or("(end)")),
                    )),
                }
            }
        }
        if done {
            next += batch.len();
        } else {
            // Skip the image it stopped on (or, if it printed nothing, the
            // first of the batch).
            next += finished + 1;
        }
    }
    tally
}

#[test]
fn the_v1_29_board_reads_a_sample_like_our_reader() {
    let Some(board) = board::find() else {
        return;
    };
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let want = env_u64("ROMFS_DIFF_BOARD_IMAGES", 60) as usize;
    // Another stream of seeds than the unix run's.
    let seed = env_u64("ROMFS_DIFF_SEED", 0x5eed_0001) ^ 0xb0a2_d000_0000_0000;
    let mut oracle = Oracle::start(&micropython, &target_dir().join("differential")).unwrap();
    // Two accepted images for every rejected one; small enough to pack many.
    let mut images = Vec::new();
    let (mut n_accepted, mut n_rejected) = (0, 0);
    let mut i = 0u64;
    while n_accepted + n_rejected < want {
        let s = seed.wrapping_add(i);
        i += 1;
        let g = gen::generate(s);
        // The board prints every line over its serial port: keep it short.
        if g.bytes.len() > 256 << 10 || our_walk(&g.bytes).len() > 1500 {
            continue;
        }
        let ok = accepted(&verdict(&g.bytes));
        if ok && n_accepted * 3 < want * 2 {
            n_accepted += 1;
            images.push(BoardCase {
                seed: s,
                bytes: g.bytes,
                accepted: true,
                unix: None,
            });
        } else if !ok && n_rejected * 3 < want {
            // The unix reader's answer, to compare with; images that crash
            // it are left out (on the board they may read any address).
            if let Answer::Walk(lines) = oracle.ask(&g.bytes) {
                if lines.len() > 1500 {
                    continue;
                }
                n_rejected += 1;
                images.push(BoardCase {
                    seed: s,
                    bytes: g.bytes,
                    accepted: false,
                    unix: Some(lines),
                });
            }
        }
    }
    let started = Instant::now();
    let tally = walk_on_board(&board, &images);
    eprintln!(
        "v1.29 board: {} accepted images walked like our reader ({} disagreements); {} rejected \
         images walked, {} exactly as the unix port, {} stopped the board {:?}; {} boot(s) in {:.1?}",
        tally.accepted,
        tally.failures.len(),
        tally.rejected,
        tally.rejected_same_as_unix,
        tally.rejected_stopped.len(),
        tally.rejected_stopped,
        tally.boots,
        started.elapsed()
    );
    for d in &tally.rejected_differences {
        eprintln!("  rejected, board differs from unix: {d}");
    }
    assert_eq!(
        tally.accepted, n_accepted,
        "every accepted image was walked"
    );
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
}

// ------------------------------------------------ the stable layout, in chains

/// The stable layout (FORMAT.md 2.3) in chains of generations, as deploys
/// make them: a random tree built afresh, then, generation after
/// generation, random edits (files added, removed, grown, shrunk, edited,
/// renamed, copied; directories added and removed; importable modules
/// changed) and a build with the previous image as its base.
mod stable_chain {
    use romfs_format::write::{FreshReason, MemoryTree, Options, StableOptions};
    use romfs_format::{Image, Node};
    use romfs_testkit::tree_edits::{self, TreeShape};
    use romfs_testkit::Rng;

    pub use romfs_testkit::tree_edits::Files;

    /// One generation: its source, its image, and why it was laid out
    /// afresh (`None`: over its base).
    pub struct Generation {
        pub files: Files,
        pub bytes: Vec<u8>,
        pub fresh: Option<FreshReason>,
        pub edits: Vec<String>,
    }

    /// `bin_align`: the alignment asked for files named `*.bin`.
    fn tree_of(files: &Files, bin_align: Option<u32>) -> MemoryTree {
        romfs_testkit::gen::tree_of_paths(files, |path| {
            bin_align.filter(|_| path.ends_with(".bin"))
        })
    }

    /// Every file the image holds, read with our reader: path -> contents.
    pub fn our_files(bytes: &[u8]) -> Files {
        let image = Image::parse(bytes).unwrap();
        let mut out = Files::new();
        let mut stack = vec![(image.root(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for e in dir.entries() {
                let e = e.unwrap();
                let path = format!("{prefix}{}", String::from_utf8(e.name().to_vec()).unwrap());
                match e {
                    Node::Dir(d) => stack.push((d, format!("{path}/"))),
                    Node::File(f) => {
                        out.insert(path, f.data().to_vec());
                    }
                }
            }
        }
        out
    }

    fn name(rng: &mut Rng) -> String {
        let stem = ["mod", "lib", "drv", "Cfg", "é✓", "a b", "x-y_z", "ünï"][rng.below(8) as usize];
        let ext = [".py", ".mpy", ".bin", "", ".txt"][rng.below(5) as usize];
        format!("{stem}{}{ext}", rng.below(300))
    }

    fn dir(rng: &mut Rng) -> String {
        ["", "", "lib/", "lib/sub/", "app/", "ß/"][rng.below(6) as usize].to_string()
    }

    fn contents(rng: &mut Rng) -> Vec<u8> {
        let len = match rng.below(8) {
            0 => 0,
            1 => rng.below(16),
            2 => 16 + rng.below(4),
            3 => 3000 + rng.below(2000),
            _ => 50 + rng.below(1500),
        } as usize;
        match rng.below(5) {
            0 => vec![b"ab"[rng.below(2) as usize]; len],
            _ => rng.bytes(len),
        }
    }

    /// A top-level module the oracle imports (`m_*.py` holding `V = n`).
    fn module(rng: &mut Rng) -> (String, Vec<u8>) {
        (
            format!("m_{}.py", rng.below(40)),
            format!("V = {}\n", rng.below(100_000)).into_bytes(),
        )
    }

    fn random_files(rng: &mut Rng) -> Files {
        let mut files = Files::new();
        for _ in 0..2 + rng.below(25) {
            files.insert((SHAPE.path)(rng), contents(rng));
        }
        for _ in 0..1 + rng.below(3) {
            let (p, d) = module(rng);
            files.insert(p, d);
        }
        files
    }

    /// What this test's source trees are made of (a directory removed is
    /// never the root).
    const SHAPE: TreeShape = TreeShape {
        contents,
        path: |rng| format!("{}{}", dir(rng), name(rng)),
        new_path: |rng| format!("{}new{}/{}", dir(rng), rng.below(3), name(rng)),
        dir: |rng| ["lib/", "lib/sub/", "app/", "ß/"][rng.below(4) as usize].to_string(),
    };

    /// One random edit: one of the shared kinds, or a top-level module the
    /// oracle imports added or changed. Returns what it did.
    fn edit(files: &mut Files, rng: &mut Rng) -> String {
        if rng.below(10) == 0 {
            let (p, d) = module(rng);
            files.insert(p.clone(), d);
            format!("module {p}")
        } else {
            tree_edits::edit(files, rng, &SHAPE)
        }
    }

    /// A chain of `generations` images from `seed` (the first one fresh),
    /// for an erase block of 256, 1024 or 4096 bytes, with the options of
    /// the default layout varied from chain to chain (alignment, a
    /// header-safe length, no checksum, per-file alignment) and metadata
    /// that changes with every generation.
    pub fn chain(seed: u64, generations: usize) -> Vec<Generation> {
        let mut rng = Rng(seed);
        rng.next();
        let stable = StableOptions {
            erase_block: Some([256, 1024, 4096][rng.below(3) as usize]),
        };
        let mut options = Options {
            align: [4, 4, 16, 64][rng.below(4) as usize],
            header_write_size: [None, None, Some(8), Some(16)][rng.below(4) as usize],
            checksum: rng.below(5) != 0,
            ..Options::default()
        };
        let bin_align = [None, Some(32), Some(128)][rng.below(3) as usize];
        let mut files = random_files(&mut rng);
        let mut out: Vec<Generation> = Vec::new();
        let mut edits = vec!["fresh".to_string()];
        for k in 0..generations {
            if let Some(md) = options.metadata.as_mut() {
                md.generation = Some(k as u64 * 1000);
                md.label = Some(format!("v{k}"));
            }
            let base = out.last().map(|g| g.bytes.as_slice());
            let image = tree_of(&files, bin_align)
                .build_stable(&options, &stable, base)
                .unwrap();
            out.push(Generation {
                files: files.clone(),
                bytes: image.bytes,
                fresh: image.report.fresh,
                edits,
            });
            edits = (0..1 + rng.below(4))
                .map(|_| edit(&mut files, &mut rng))
                .collect();
        }
        out
    }
}

/// What is wrong with one stable generation, if anything: `verify` must
/// accept it, our reader must give back its source, MicroPython (the unix
/// port, guard bytes and imports included) must walk it as we do without
/// misbehaving.
fn judge_stable(oracle: &mut Oracle, g: &stable_chain::Generation) -> Option<String> {
    let v = verdict(&g.bytes);
    if !accepted(&v) {
        return Some(format!("verify: {:?}", verdict_names(&v)));
    }
    if stable_chain::our_files(&g.bytes) != g.files {
        return Some("our reader does not give back the source".into());
    }
    let outcome = examine(oracle, &g.bytes);
    let seen = outcome.answer.misbehaviours();
    if !seen.is_empty() {
        return Some(format!("MicroPython misbehaves: {seen:?}"));
    }
    outcome.failure.map(|f| format!("{f:?}"))
}

#[test]
fn micropython_reads_stable_layout_chains_as_we_do() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let chains = env_u64("ROMFS_DIFF_STABLE_CHAINS", 32);
    let seed = env_u64("ROMFS_DIFF_SEED", 0x5eed_0001) ^ 0x57ab_1e00_0000_0000;
    let mut oracle = Oracle::start(&micropython, &target_dir().join("differential")).unwrap();
    let (mut images, mut over_base, mut modules) = (0, 0, 0);
    let mut failures = Vec::new();
    for c in 0..chains {
        let s = seed.wrapping_add(c);
        for (k, g) in stable_chain::chain(s, 8).iter().enumerate() {
            images += 1;
            over_base += usize::from(g.fresh.is_none());
            modules += g.files.keys().filter(|p| p.starts_with("m_")).count();
            if let Some(why) = judge_stable(&mut oracle, g) {
                failures.push(format!(
                    "chain {s:#x} generation {k} (after {:?}; fresh: {:?}): {why}",
                    g.edits, g.fresh
                ));
            }
        }
    }
    eprintln!(
        "stable chains: {images} images from seed {seed:#x}, {over_base} laid out over their base, \
         {modules} module imports checked"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The chains must mostly be what they claim: images built over a base.
    assert!(
        over_base * 3 >= images * 2,
        "only {over_base} of {images} images used their base"
    );
}

#[test]
fn the_v1_29_board_reads_stable_layout_chains_like_our_reader() {
    let Some(board) = board::find() else {
        return;
    };
    let chains = env_u64("ROMFS_DIFF_BOARD_STABLE_CHAINS", 3);
    let seed = env_u64("ROMFS_DIFF_SEED", 0x5eed_0001) ^ 0xb0a2_57ab_0000_0000;
    let mut images = Vec::new();
    for c in 0..chains {
        for g in stable_chain::chain(seed.wrapping_add(c), 6) {
            assert!(accepted(&verdict(&g.bytes)));
            images.push(BoardCase {
                seed: seed.wrapping_add(c),
                bytes: g.bytes,
                accepted: true,
                unix: None,
            });
        }
    }
    let tally = walk_on_board(&board, &images);
    eprintln!(
        "v1.29 board: {} stable-layout images walked like our reader ({} disagreements) in {} boot(s)",
        tally.accepted,
        tally.failures.len(),
        tally.boots
    );
    assert_eq!(tally.accepted, images.len(), "every image was walked");
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
}
