//! Put ROMFS images on MicroPython boards over their serial REPL.
//!
//! - [`transport`]: the byte link ([`SerialTransport`], or any
//!   [`Transport`] a test provides);
//! - [`discover`]: the one USB board connected, when no port is named;
//! - [`repl`]: MicroPython's raw REPL with raw-paste flow control;
//! - [`board`]: a board's ROM partitions through `vfs.rom_ioctl`;
//! - [`query`]: what each partition holds;
//! - [`deploy`]: writing only the blocks that changed, header last.
//!
//! Images are parsed only by [`romfs_format`].
#![warn(missing_docs)]

pub mod board;
pub mod delta;
pub mod deploy;
pub mod discover;
pub mod error;
pub mod query;
pub mod repl;
pub mod reply;
pub mod transport;

pub use board::{Board, Partition};
pub use deploy::{deploy, deploy_with, DeployProgress, DeployReport};
pub use error::{Error, ErrorKind, Result};
pub use query::{query, PartitionReport};
pub use repl::{RawRepl, Timeouts, Traffic};
pub use reply::MpyTarget;
pub use transport::{SerialTransport, Transport};
