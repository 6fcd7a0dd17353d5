#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod board;
pub mod delta;
pub mod deploy;
pub mod discover;
pub mod error;
pub mod plan;
pub mod query;
pub mod repl;
pub mod reply;
pub mod stop;
pub mod transport;

pub use board::{Board, EraseMode, Partition};
pub use deploy::{deploy, deploy_with, DeployProgress, DeployReport};
pub use error::{Error, ErrorKind, FlashOp, Holds, ImageProblem, OpenProblem, Result};
pub use query::{query, PartitionReport};
pub use repl::{RawRepl, Timeouts, Traffic};
pub use reply::MpyTarget;
pub use transport::{SerialTransport, Transport, BUSY_GRACE};
