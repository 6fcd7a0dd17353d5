//! `romfs-mount`: mount a MicroPython ROMFS image with FUSE (like squashfuse).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    romfs_cli::romfs_mount_main()
}
