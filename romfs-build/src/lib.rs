#![doc = include_str!("../README.md")]
// Only the two file mappings (emit, inspect) may be unsafe, each allowed
// where it is.
#![deny(unsafe_code)]

mod build;
pub mod cache;
pub mod compile;
mod dedup;
mod emit;
pub mod error;
pub mod inspect;
mod mpy_check;
mod options;
pub mod output;
pub mod scan;
mod stable;

pub use build::{build, BuildReport, NoProgress, PackedEntry, Progress};
pub use error::{escaped, human, BuildError, InputProblem, MpyProblem, ReadError};
pub use inspect::ImageFile;
pub use options::{BuildOptions, BuildTime, MpyMode, Setting};
pub use romfs_format::write::Layout;
pub use romfs_format::write::{FreshReason, StableOptions, StableReport};
pub use stable::build_with_base;
