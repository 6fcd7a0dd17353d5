//! `romfs`: build, inspect and mount MicroPython ROMFS images.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    romfs_cli::romfs_main()
}
