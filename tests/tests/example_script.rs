//! The README's first command, `bash scripts/example.sh`, as a new user runs
//! it: it builds both commands (`romfs` and `romfs-mount`), and runs the app
//! on the emulated board rather than skipping it; with no board firmware it
//! fails saying where the firmware goes, never exits 0 having skipped it.
#![forbid(unsafe_code)]

use std::process::Command;

use romfs_testkit::board::device_dir;
use romfs_testkit::workspace_root;

fn example(device: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new("bash")
        .arg("scripts/example.sh")
        .arg(out)
        .current_dir(workspace_root())
        // The debug build the test suite already has, not a release build.
        .env("ROMFS_EXAMPLE_PROFILE", "dev")
        .env("ROMFS_DEVICE_DIR", device)
        .env(
            "ROMFS_CACHE_DIR",
            std::env::temp_dir().join("romfs-test-cache"),
        )
        .output()
        .unwrap()
}

#[test]
fn example_script_runs_the_app_on_the_board() {
    let t = tempfile::tempdir().unwrap();
    let out = example(&device_dir(), &t.path().join("app.img"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("romfs-mount "), "romfs-mount built: {text}");
    assert!(text.contains("on the board: "), "ran on the board: {text}");
    // Without firmware: an error saying where it goes, not a skip.
    let out = example(t.path(), &t.path().join("app2.img"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("ROMFS_DEVICE_DIR"), "{stderr}");
}
