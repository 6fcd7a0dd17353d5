//! `romfs completions`.

use predicates::prelude::*;

use crate::{fails, romfs};

#[test]
fn completions() {
    for shell in ["bash", "zsh", "fish"] {
        romfs()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("romfs"))
            .stdout(predicate::str::contains("extract"));
    }
    fails(romfs().args(["completions", "cmd.exe"]), 2, "cmd.exe");
}
