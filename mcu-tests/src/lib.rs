//! Firmware that runs romfs-embedded on emulated microcontrollers (QEMU:
//! `lm3s6965evb`, a Cortex-M3, for `thumbv7m-none-eabi`; `microbit`, a
//! Cortex-M0 without unaligned access, for `thumbv6m-none-eabi`), and
//! measures what it costs.
//!
//! - `mcu-tests` (binary): mapped and non-mapped mounting, typed views, A/B
//!   and single-slot updates into RAM-backed NOR flash with their error
//!   paths; reports over semihosting, with the peak stack of each
//!   operation, and exits non-zero on any failure.
//! - `size-*` (binaries): one part of romfs-embedded linked as a firmware
//!   would link it, and `size-baseline` with everything but it; the code
//!   size of a part is its binary minus the baseline.
//!
//! - `size-user`, `size-user-halt` (binaries): an A/B update and mount as
//!   a user writes it ([`user`]), the driver inlined into romfs code, with
//!   panic-semihosting and with a looping panic handler.
//!
//! `scripts/mcu.sh` builds and runs all of it and checks the budgets.

#![no_std]

pub mod content;
pub mod images;
pub mod nor;
pub mod ops;
pub mod probe;
pub mod semihosting;
pub mod stack;
pub mod user;
