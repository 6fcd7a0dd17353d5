//! A board that answers garbage, stops answering, or goes away: every case
//! is a clear error within the timeouts, never a hang or a panic. Runs a
//! real session against the emulated board once, records what the board
//! sent, then replays it cut short and garbled through a scripted
//! transport; freezes and kills the real board mid-session; and leaves it
//! in every REPL state a program can leave it in, from which the next
//! connection recovers on its first try.
#![forbid(unsafe_code)]

mod device_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use device_support::*;
use romfs_device::deploy::{deploy, DeployReport, NoProgress};
use romfs_device::transport::{Recording, Scripted, SerialTransport};
use romfs_device::{query, Board, ErrorKind, Timeouts, Transport};
use romfs_testkit::board::{Build, Qemu};
use romfs_testkit::Rng;

/// One session: connect, query, deploy `image`. What it returns, or the
/// error.
fn session<T: Transport>(transport: T, image: &[u8]) -> romfs_device::Result<DeployReport> {
    let mut board = Board::connect(transport, Timeouts::default())?;
    query(&mut board, 0)?;
    deploy(&mut board, image, 0, &NoProgress)
}

/// What the emulated board sends during [`session`], and the report.
fn transcript() -> Option<(Vec<u8>, Vec<u8>, DeployReport)> {
    let (fw, mpy_cross) = setup()?;
    let target = board_target(&fw);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 8);
    let image = build_for(&src, &t.path().join("app.img"), &mpy_cross, target);
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    let received = Arc::new(Mutex::new(Vec::new()));
    let recording = Recording {
        inner: SerialTransport::open(qemu.pty()).unwrap(),
        received: received.clone(),
    };
    let report = session(recording, &image).unwrap();
    let bytes = received.lock().unwrap().clone();
    Some((bytes, image, report))
}

#[test]
fn replayed_garbled_and_cut_answers_give_errors_not_hangs() {
    let Some((answers, image, report)) = transcript() else {
        return;
    };
    // The transcript replays to the same deploy.
    let replay = session(Scripted::new(answers.clone()), &image).unwrap();
    assert_eq!(
        (&replay.written, &replay.erased, replay.bytes_sent),
        (&report.written, &report.erased, report.bytes_sent)
    );

    let started = Instant::now();
    // Cut short at many points: the board stops answering.
    let step = (answers.len() / 300).max(1);
    for cut in (0..answers.len()).step_by(step) {
        let err = session(Scripted::new(answers[..cut].to_vec()), &image).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::NoAnswer { .. } | ErrorKind::Garbage { .. }
            ),
            "cut at {cut}: {err}"
        );
        // ... or the link goes away there.
        let mut gone = Scripted::new(answers[..cut].to_vec());
        gone.disconnect_at_end = true;
        let err = session(gone, &image).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ErrorKind::Disconnected(_) | ErrorKind::Garbage { .. }
            ),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().starts_with("scripted board: "), "{err}");
    }
    // Garbled: random bytes overwritten, inserted, or the whole answer
    // replaced. Any outcome but a panic or a hang will do; most are errors.
    let mut rng = Rng(11);
    let mut errors = 0;
    for round in 0..300 {
        let mut bad = answers.clone();
        match round % 3 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bad.len() as u64) as usize;
                    bad[at] = rng.next() as u8;
                }
            }
            1 => {
                let at = rng.below(bad.len() as u64) as usize;
                let n = 1 + rng.below(40) as usize;
                let junk = rng.bytes(n);
                bad.splice(at..at, junk);
            }
            _ => {
                let n = rng.below(4000) as usize;
                bad = rng.bytes(n);
            }
        }
        errors += usize::from(session(Scripted::new(bad), &image).is_err());
    }
    assert!(errors > 150, "{errors}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // A firmware without vfs.rom_ioctl (the helper says so).
    let line = b"romfs-helper 1 ";
    let at = answers.windows(line.len()).position(|w| w == line).unwrap();
    let mut no_rom = answers.clone();
    no_rom.splice(at..at + line.len(), b"romfs-helper False ".iter().copied());
    let err = session(Scripted::new(no_rom), &image).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scripted board: this firmware has no ROM partitions (no vfs.rom_ioctl): it cannot hold a ROMFS image; use a firmware built with MICROPY_VFS_ROM_IOCTL"
    );
}

/// A board that prints noise for ever.
struct Noise(Rng);

impl Transport for Noise {
    fn send(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn receive(&mut self, buf: &mut [u8], _: Duration) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(1));
        let n = buf.len().min(64);
        buf[..n].copy_from_slice(&self.0.bytes(n));
        Ok(n)
    }
    fn name(&self) -> &str {
        "noisy board"
    }
}

#[test]
fn endless_noise_and_silence_are_errors_within_the_timeout() {
    let timeouts = Timeouts {
        answer: Duration::from_millis(500),
        work: Duration::from_secs(1),
    };
    let started = Instant::now();
    let err = Board::connect(Noise(Rng(3)), timeouts).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.to_string()
            .starts_with("noisy board: unexpected answer from the board while "),
        "{err}"
    );
    let err = Board::connect(Scripted::new(Vec::new()), timeouts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scripted board: the board did not answer within 0.5 s (waiting for the raw REPL banner); nothing was received: is it a MicroPython board, powered and not busy running a program that ignores Ctrl-C?"
    );
}

#[test]
fn frozen_then_vanished_real_board() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let timeouts = Timeouts {
        answer: Duration::from_secs(1),
        work: Duration::from_secs(2),
    };
    // Frozen before we connect: a board that does not answer.
    let mut qemu = Qemu::boot(&fw, Build::Writable, None);
    qemu.run("pass");
    qemu.stop();
    let started = Instant::now();
    let err = Board::open(Some(qemu.pty()), timeouts).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err.kind, ErrorKind::NoAnswer { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: the board did not answer within 1.0 s",
            qemu.pty()
        )),
        "{err}"
    );
    qemu.monitor("cont");

    // Busy: another program holds the port, and still holds it after the
    // grace given to a lock that outlives its program for a moment.
    let held = SerialTransport::open(qemu.pty()).unwrap();
    let started = Instant::now();
    let err = Board::open(Some(qemu.pty()), timeouts).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Busy), "{err}");
    assert!(started.elapsed() >= romfs_device::BUSY_GRACE, "{err}");
    assert!(started.elapsed() < romfs_device::BUSY_GRACE * 3, "{err}");
    // Let go of within the grace: the connection waits for it.
    let release = std::thread::spawn(move || {
        std::thread::sleep(romfs_device::BUSY_GRACE / 4);
        drop(held);
    });
    let board = Board::open(Some(qemu.pty()), Timeouts::default());
    release.join().unwrap();
    drop(board.unwrap());

    // Gone in the middle of a deploy: QEMU ends.
    let target = board_target(&fw);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 40);
    let image = build_for(&src, &t.path().join("app.img"), &mpy_cross, target);
    // Connecting may wait for QEMU to notice the port reopened (it looks
    // every second); once connected, short timeouts.
    let mut board = Board::open(Some(qemu.pty()), Timeouts::default()).unwrap();
    board.set_timeouts(timeouts);
    let mut stopper = qemu.stopper();
    let cut = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        stopper.quit();
    });
    let started = Instant::now();
    let err = deploy(&mut board, &image, 0, &NoProgress).unwrap_err();
    cut.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err.kind,
            ErrorKind::Disconnected(_) | ErrorKind::NoAnswer { .. }
        ),
        "{err}"
    );
    eprintln!("{err}");
}

/// Send `pieces` to the board (a pause after each, for its answers), then
/// go away as a killed program would, without a word more.
fn leave_board(pty: &str, pieces: &[&[u8]]) {
    let mut port = SerialTransport::open(pty).unwrap();
    for piece in pieces {
        port.send(piece).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let mut buf = [0u8; 4096];
        while port.receive(&mut buf, Duration::from_millis(50)).unwrap() > 0 {}
    }
}

/// `program` with `args`, killed (SIGKILL) after `after`.
fn killed(program: &std::path::Path, args: &[&str], after: Duration) {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_board_left_in_any_repl_state_recovers_on_the_first_try() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let mpremote = romfs_testkit::venv_tool("mpremote").expect("mpremote");
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 40);
    let image = build_for(
        &src,
        &t.path().join("app.img"),
        &mpy_cross,
        board_target(&fw),
    );
    let image_path = t.path().join("app.img");
    let image_arg = image_path.to_str().unwrap();
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    let pty = qemu.pty().to_string();
    let first_try = |state: &str| {
        let mut board = Board::open(Some(&pty), Timeouts::default())
            .unwrap_or_else(|e| panic!("after {state}: {e}"));
        query(&mut board, 0).unwrap_or_else(|e| panic!("after {state}: {e}"));
        board.close().unwrap();
    };
    let enter_raw: &[u8] = b"\r\x03\x03\r\x01";
    leave_board(&pty, &[enter_raw, b"print('half a line"]);
    first_try("a half-typed raw REPL line");
    leave_board(
        &pty,
        &[enter_raw, b"\x05A\x01", b"import os\nprint(os.listdir"],
    );
    first_try("a half-sent raw-paste program");
    leave_board(
        &pty,
        &[enter_raw, b"\x05A\x01", b"print(1)\n\x04\x01\x05A\x01"],
    );
    first_try("a raw-paste request sent and not answered");
    leave_board(&pty, &[b"\r\x02", b"\x05", b"x = 1\r"]);
    first_try("friendly paste mode");
    // Programs killed part way: `romfs deploy` connecting, surveying or
    // writing (what it sent but the board had not read yet still
    // arrives), and mpremote deploying.
    for after_ms in [30, 120, 250, 600] {
        let after = Duration::from_millis(after_ms);
        killed(
            &romfs_testkit::romfs_bin(),
            &["deploy", image_arg, "--port", &pty],
            after,
        );
        first_try(&format!("romfs deploy killed after {after_ms} ms"));
        let args = ["connect", &pty, "romfs", "deploy", image_arg];
        killed(&mpremote, &args, after);
        first_try(&format!("mpremote romfs deploy killed after {after_ms} ms"));
    }
    // And the board still takes an image.
    let mut board = Board::open(Some(&pty), Timeouts::default()).unwrap();
    deploy(&mut board, &image, 0, &NoProgress).unwrap();
}

/// Sessions with the emulated board for `romfs_device::deploy::sample_image`:
/// a deploy to an empty board, a redeploy, a deploy refused by the stock
/// firmware. Each transcript replays to the same outcome. With
/// `ROMFS_RECORD_FUZZ_SEEDS=romfs-device/fuzz/seeds` they are written there
/// (the seeds of the `board_session` fuzz target).
#[test]
fn recorded_sessions_replay_and_seed_the_fuzzer() {
    let Some((fw, _)) = setup() else { return };
    let image = romfs_device::deploy::sample_image();
    // As a deploy leaves it: the last block's tail erased.
    let mut flash = image.clone();
    flash.resize(image.len().next_multiple_of(4096), 0xff);
    let mut seeds = Vec::new();
    for (name, build, preload) in [
        ("deploy-empty", Build::Writable, None),
        ("deploy-same", Build::Writable, Some(flash.clone())),
        ("deploy-stock", Build::Stock, None),
    ] {
        let qemu = Qemu::boot(&fw, build, preload.as_deref());
        let received = Arc::new(Mutex::new(Vec::new()));
        let recording = Recording {
            inner: SerialTransport::open(qemu.pty()).unwrap(),
            received: received.clone(),
        };
        let live = session(recording, &image);
        let answers = received.lock().unwrap().clone();
        let replay = session(Scripted::new(answers.clone()), &image);
        match (&live, &replay) {
            (Ok(a), Ok(b)) => assert_eq!((&a.written, a.skipped), (&b.written, b.skipped)),
            (Err(a), Err(b)) => assert_eq!(
                a.to_string().split_once(": ").unwrap().1,
                b.to_string().split_once(": ").unwrap().1
            ),
            _ => panic!("{name}: live {live:?}, replayed {replay:?}"),
        }
        match name {
            "deploy-empty" => assert_eq!(live.unwrap().written, vec![1, 2, 0]),
            "deploy-same" => assert!(live.unwrap().up_to_date()),
            _ => assert!(matches!(live.unwrap_err().kind, ErrorKind::ReadOnly { .. })),
        }
        seeds.push((name, answers));
    }
    if let Some(dir) = std::env::var_os("ROMFS_RECORD_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir);
        for (name, answers) in seeds {
            std::fs::write(dir.join(name), answers).unwrap();
        }
    }
}
