//! Over-the-air updates on stock MicroPython: the `romfs_ota` package
//! (`micropython/romfs_ota/`) run by the real unix port, and `romfs publish`.
#![forbid(unsafe_code)]

#[path = "ota/board.rs"]
mod board;
#[path = "ota/ed25519.rs"]
mod ed25519;
#[path = "ota/support.rs"]
mod support;
#[path = "ota/update.rs"]
mod update;
