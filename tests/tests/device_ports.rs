//! `romfs deploy` on the emulated board's model of each port's ROM
//! partition (`../shared/device/MODELS.md`: rp2, esp32, stm32 internal
//! flash, alif MRAM; esp8266 and nrf when built): query, a first deploy of
//! bytecode, viper and data files that imports and runs from `/rom` after a
//! soft reset, a one-file redeploy, an unchanged redeploy, an image too
//! large, and a power cut (QEMU `stop` + the saved partition) in the middle
//! of a redeploy after which the board mounts nothing or the whole new
//! image and one rerun completes; and `romfs deploy` stopped by Ctrl-C at
//! several points, which leaves the board out of raw mode, says what the
//! partition holds (and it does), and needs one rerun. After each, every
//! rule counter the model keeps (misaligned, overread, overprogrammed, out
//! of range, ...) is zero. Each model boots once for its cases (and once
//! more per power cut).
#![forbid(unsafe_code)]

mod device_support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use device_support::*;
use romfs_device::deploy::{deploy, deploy_with, NoProgress};
use romfs_device::query::Contents;
use romfs_device::{query, Board, EraseMode, ErrorKind, SerialTransport, Transport};
use romfs_testkit::board::{Build, Qemu};

/// The model's counters, asserting every rule counter is zero.
fn assert_clean(
    board: &mut Board<romfs_device::SerialTransport>,
    model: &str,
    when: &str,
) -> String {
    let counters = board
        .flash_counters()
        .unwrap()
        .unwrap_or_else(|| panic!("{model}: the model has no counters"));
    let body = counters.trim_matches(|c| c == '{' || c == '}');
    for pair in body.split(", ") {
        let (key, value) = pair.split_once(": ").unwrap();
        let key = key.trim_matches('\'');
        let rule = !matches!(key, "sector_erases" | "page_programs" | "program_calls");
        if rule {
            assert_eq!(value, "0", "{model} {when}: {key} = {value} ({counters})");
        }
    }
    counters
}

fn run_from_rom(qemu: &Qemu, model: &str) {
    let board = connect(qemu);
    board.soft_reset().unwrap();
    let mut board = connect(qemu);
    let out = board.exec("import main; print(main.run())").unwrap();
    assert!(
        out.stderr.is_empty(),
        "{model}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("main hello rom 4950 42"),
        "{model}: {text}"
    );
}

/// `romfs deploy IMAGE` on the board, sent SIGINT (as Ctrl-C does) after
/// `at` when given: its exit status (`None`: ended by the signal itself)
/// and what it printed on stderr.
fn deploy_cli(pty: &str, image: &Path, at: Option<Duration>) -> (Option<i32>, String) {
    let child = Command::new(romfs_testkit::romfs_bin())
        .arg("deploy")
        .arg(image)
        .args(["--port", pty])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(at) = at {
        std::thread::sleep(at);
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Is the board at its friendly prompt (it answers a return with `>>> `;
/// in raw mode it would say nothing)? Returns the port for more questions.
fn at_friendly_prompt(pty: &str) -> (bool, SerialTransport) {
    let mut port = SerialTransport::open(pty).unwrap();
    port.send(b"\r").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !got.ends_with(b">>> ") {
        let mut buf = [0u8; 256];
        let n = port.receive(&mut buf, Duration::from_millis(100)).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    (got.ends_with(b">>> "), port)
}

/// Ctrl-C at several points of `romfs deploy`, alternating between two
/// images: each stop leaves the board at its friendly prompt, says in one
/// line what the partition holds (checked against the flash), and one
/// rerun completes. Returns how many runs the signal stopped.
fn ctrl_c_points(qemu: &Qemu, model: &str, images: [(&Path, &[u8]); 2]) -> usize {
    // An uninterrupted deploy, to know how long one takes.
    let started = Instant::now();
    let (status, err) = deploy_cli(qemu.pty(), images[0].0, None);
    assert_eq!(status, Some(0), "{model}: {err}");
    let mut whole = started.elapsed();
    let mut stopped = 0;
    for (i, fraction) in [0.25, 0.5, 0.75].into_iter().enumerate() {
        let (old, new) = (images[i % 2], images[(i + 1) % 2]);
        let mut at = whole.mul_f64(fraction);
        let mut tries = 1;
        let (status, err) = loop {
            let (status, err) = deploy_cli(qemu.pty(), new.0, Some(at));
            if status != Some(0) || tries == 3 {
                break (status, err);
            }
            // It finished before the signal came (a busy host): put the
            // old image back and signal sooner.
            let (status, err) = deploy_cli(qemu.pty(), old.0, None);
            assert_eq!(status, Some(0), "{model}: {err}");
            at /= 2;
            tries += 1;
        };
        let old = old.1;
        let when = format!("{model}, Ctrl-C after {at:?} of {whole:?}");
        match status {
            Some(0) => {}
            Some(130) => {
                stopped += 1;
                let said: Vec<&str> = err.lines().filter(|l| l.contains("stopped")).collect();
                assert_eq!(said.len(), 1, "{when}: {err}");
                assert!(said[0].contains("run: romfs deploy"), "{when}: {err}");
                let (friendly, port) = at_friendly_prompt(qemu.pty());
                assert!(friendly, "{when}: left in raw mode");
                let mut board = Board::connect(port, romfs_device::Timeouts::default()).unwrap();
                let part = board.partition(0).unwrap();
                let flash = board.read(&part, 0, old.len().max(new.1.len())).unwrap();
                let holds = if said[0].contains("holds its old image") {
                    flash.starts_with(old)
                } else if said[0].contains("holds no image") {
                    flash[..3] != [0xd2, 0xcd, 0x31]
                } else if said[0].contains("holds the complete new image") {
                    flash.starts_with(new.1)
                } else {
                    panic!("{when}: {err}")
                };
                assert!(holds, "{when}: the flash is not what it says: {err}");
            }
            other => panic!("{when}: status {other:?}: {err}"),
        }
        // One rerun completes (deploy checks every block it writes); how
        // long a whole deploy takes now times the next point.
        let started = Instant::now();
        let (status, err) = deploy_cli(qemu.pty(), new.0, None);
        assert_eq!(status, Some(0), "{when}, the rerun: {err}");
        whole = started.elapsed();
    }
    let mut board = connect(qemu);
    assert_clean(
        &mut board,
        model,
        "after the Ctrl-C points and their reruns",
    );
    stopped
}

#[test]
fn every_port_model_deploys_redeploys_and_survives_power_cuts() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let target = board_target(&fw);
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    write_app(&src, 30);
    let v1 = build_for(&src, &t.path().join("v1.img"), &mpy_cross, target);
    fs::write(
        src.join("lib/mod007.py"),
        "NAME = 'edited'\n\ndef f0(x):\n    return x\n",
    )
    .unwrap();
    let v2 = build_for(&src, &t.path().join("v2.img"), &mpy_cross, target);
    assert_ne!(v1, v2);

    for model in fw.models() {
        let model_started = Instant::now();
        let qemu = Qemu::boot(&fw, Build::Model(model), None);
        let mut board = connect(&qemu);
        // The board has `deflate`: the helper went compressed, and took.
        let sent = board.traffic().sent;
        assert!(
            sent < romfs_device::board::helper_source_len() as u64,
            "{model}: {sent} bytes sent to connect"
        );
        let q = query(&mut board, 0).unwrap();
        assert!(q.writable, "{model}: {q:?}");
        assert_eq!(q.contents, Contents::Empty, "{model}");
        let p = q.partition;
        // What each port's sources say (FORMAT.md, "Writing a ROM partition").
        let (mode, unit, blockdev) = match model {
            "rp2" => (EraseMode::Block, 256, true),
            "esp32" => (EraseMode::Block, 1, true),
            "nrf" => (EraseMode::Block, 4, true),
            "stm32-internal" => (EraseMode::Block, 32, false),
            "alif-mram" => (EraseMode::None, 16, false),
            "esp8266" => (EraseMode::Prefix, 4, false),
            other => panic!("unknown model {other}"),
        };
        assert_eq!(
            (p.mode, p.program_unit, p.block_device),
            (mode, unit, blockdev),
            "{model}"
        );
        // Query wrote nothing.
        let c = assert_clean(&mut board, model, "after query");
        assert!(c.contains("'program_calls': 0"), "{model}: {c}");

        let first = deploy(&mut board, &v1, 0, &NoProgress).unwrap();
        assert!(!first.up_to_date());
        assert_clean(&mut board, model, "after the first deploy");
        drop(board);
        run_from_rom(&qemu, model);

        let mut board = connect(&qemu);
        // As `romfs deploy` does: the image this host deployed last is the
        // source of moved data, when the board holds it.
        let again = deploy_with(&mut board, &v2, 0, &NoProgress, &[&v2[..5], &v1]).unwrap();
        // The edit moves what follows it (a fresh layout): blocks before it
        // stay, except where the flash erases only from the partition's
        // start (esp8266), so a change anywhere rewrites all before it.
        assert!(
            again.blocks == 1 || again.skipped > 0 || p.mode == EraseMode::Prefix,
            "{model}: {again:?}"
        );
        assert_clean(&mut board, model, "after the one-file redeploy");
        let same = deploy(&mut board, &v2, 0, &NoProgress).unwrap();
        assert!(same.up_to_date(), "{model}: {same:?}");

        // A real image that does not fit.
        let mut tree = romfs_format::write::MemoryTree::new();
        let root = tree.root();
        tree.add_file(root, b"big.bin", vec![7u8; p.size as usize])
            .unwrap();
        let big = tree
            .build(&romfs_format::write::Options::default())
            .unwrap();
        let e = deploy(&mut board, &big, 0, &NoProgress).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{model}: {e}");
        assert_clean(&mut board, model, "after the refused image");
        drop(board);
        run_from_rom(&qemu, model);
        let ctrl_c_started = Instant::now();
        let stopped = ctrl_c_points(
            &qemu,
            model,
            [
                (&t.path().join("v1.img"), &v1),
                (&t.path().join("v2.img"), &v2),
            ],
        );
        assert!(
            stopped >= 2,
            "{model}: only {stopped} of 3 Ctrl-C points stopped a deploy"
        );
        eprintln!("{model}: Ctrl-C points: {:?}", ctrl_c_started.elapsed());
        run_from_rom(&qemu, model);
        drop(qemu);

        // Power cuts in the middle of a redeploy from v1 to v2.
        let cuts_started = Instant::now();
        for delay_ms in [150u64, 400] {
            let mut qemu = Qemu::boot(&fw, Build::Model(model), None);
            let mut board = connect(&qemu);
            deploy(&mut board, &v1, 0, &NoProgress).unwrap();
            let stopper = qemu.stopper();
            let cut = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay_ms));
                let mut stopper = stopper;
                stopper.stop();
            });
            let _ = deploy(&mut board, &v2, 0, &NoProgress);
            cut.join().unwrap();
            drop(board);
            let part = qemu.partition();
            drop(qemu);
            let part = &part[..p.size as usize];
            let mounts_new = part.starts_with(&v2);
            let mounts_old = part.starts_with(&v1);
            let mounts_nothing = part[..3] != [0xd2, 0xcd, 0x31];
            assert!(
                mounts_new || mounts_old || mounts_nothing,
                "{model}: a cut after {delay_ms} ms left a partition that mounts a mix"
            );
            // Power up with it; one rerun completes.
            let qemu = Qemu::boot(&fw, Build::Model(model), Some(part));
            let mut board = connect(&qemu);
            deploy(&mut board, &v2, 0, &NoProgress).unwrap();
            assert_clean(&mut board, model, "after the rerun");
            drop(board);
            run_from_rom(&qemu, model);
        }
        eprintln!(
            "{model}: power cuts {:?}, {:?} in all",
            cuts_started.elapsed(),
            model_started.elapsed()
        );
    }
}
