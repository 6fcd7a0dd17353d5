//! One module per subcommand: its arguments (a clap `Args` struct), what
//! it does, and how its results are rendered as text and JSON.

pub mod board;
pub mod build;
pub mod cat;
pub mod completions;
pub mod deploy;
pub mod diff;
pub mod extract;
pub mod info;
pub mod keygen;
pub mod ls;
pub mod mount;
pub mod publish;
pub mod query;
pub mod sign;
pub mod tree;
pub mod umount;
pub mod verify;
