//! No flag is silently ignored: an explicit target needs the compiler.
//! (`deploy IMAGE` with build flags: `usage`.)

use crate::{build_cmd, fails, sample};

#[test]
fn an_explicit_target_without_mpy_cross_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    sample(&src);
    let out = t.path().join("app.img");
    // PATH holds no mpy-cross (see `romfs()`).
    for args in [&["--march", "armv7m"][..], &["--msmall-int-bits", "31"]] {
        fails(
            build_cmd(&src, &out).args(args),
            1,
            "mpy-cross not found on PATH, and this build must compile .py files",
        );
        assert!(!out.exists());
    }
    // With --no-mpy the target only checks the .mpy files there are.
    build_cmd(&src, &out)
        .args(["--no-mpy", "--march", "armv7m", "-q"])
        .assert()
        .success();
}
