//! A wrong command line exits 2 (clap's usage error), whatever makes it
//! wrong: an unknown flag, a value out of range, flags that do not go
//! together, or flags that would be ignored (README: exit status).

use std::fs;

use crate::{build_cmd, built, fails, key_pair, romfs, sample};

#[test]
fn wrong_command_lines_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let src = t.path().join("app");
    let out = t.path().join("out.img");
    key_pair(&t.path().join("k"));
    let key = t.path().join("k.pem");
    let key = key.to_str().unwrap();
    let too_long = "p".repeat(33);
    #[rustfmt::skip] // one case a line
    let build_cases: &[(&[&str], &str)] = &[
        (&["--layout", "mpremote", "--label", "foo"], "--label only applies to the default layout"),
        (&["--layout", "mpremote", "--sign", key, "--product", "p", "--generation", "1"], "--generation, --product, --sign only apply to the default layout"),
        (&["--align", "3"], "is not a power of two"),
        (&["--align", "0"], "is not a power of two"),
        (&["--align", "131072"], "is not a power of two"),
        (&["--align-rule", "*.bin=3"], "alignment must be a power of two"),
        (&["--align-rule", "[=4"], "invalid glob pattern"),
        (&["--exclude", "["], "invalid glob pattern"),
        (&["--sign", key, "--product", "p", "--generation", "4294967296"], "a signed image's generation is at most 4294967295"),
        (&["--sign", key, "--product", &too_long, "--generation", "1"], "a signed manifest holds at most 32 bytes"),
        (&["--sign", key, "--product", "p", "--generation", "1", "--no-checksum"], "cannot be used with"),
        (&["--sign", key], "required arguments were not provided"),
        (&["--flash-write-size", "0"], "0 is not in 1..=32"),
        (&["--max-size", "lots"], "invalid size"),
        (&["--build-time", "yesterday"], "expected Unix seconds"),
        (&["--march", "z80"], "unknown architecture"),
        (&["--mpy", "--no-mpy"], "cannot be used with"),
    ];
    for (args, message) in build_cases {
        let stderr = fails(build_cmd(&src, &out).args(*args), 2, message);
        assert!(stderr.contains("try '--help'"), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?}");
    }
    // Board commands: the value is checked before any port is opened.
    fails(
        romfs().args(["query", "--timeout", "0"]),
        2,
        "expected a number of seconds above 0",
    );
    fails(
        romfs().arg("deploy").arg(&img).arg("--timeout=-1"),
        2,
        "expected a number of seconds above 0",
    );
    fails(
        romfs()
            .arg("sign")
            .arg(&img)
            .args(["--key", key, "--generation", "x"]),
        2,
        "invalid value 'x'",
    );
    fails(romfs().args(["ls", "--bogus"]), 2, "unexpected argument");
}

#[test]
fn deploy_refuses_build_flags_for_an_image() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    // Refused before any board is looked for.
    let stderr = fails(
        romfs()
            .arg("deploy")
            .arg(&img)
            .args(["--label", "x", "--align", "16"]),
        2,
        "--align, --label apply only when deploying a directory",
    );
    assert!(stderr.contains("is deployed as it is"), "{stderr}");
    // A directory takes them (and then fails looking for a board: 1).
    let src = t.path().join("app2");
    sample(&src);
    let out = romfs()
        .arg("deploy")
        .arg(&src)
        .args(["--label", "x", "--port", "/nonexistent/tty"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(fs::metadata(&img).is_ok());
}
