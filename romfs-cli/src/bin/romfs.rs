//! `romfs`: build, inspect and mount MicroPython ROMFS images.

fn main() -> std::process::ExitCode {
    romfs_cli::romfs_main()
}
