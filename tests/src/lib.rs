//! Integration tests only: see `tests/`.
#![forbid(unsafe_code)]
