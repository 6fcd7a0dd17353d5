//! Size probe: an A/B update streamed in chunks and committed, then the
//! newest slot mounted (mapped) and a file opened, as a firmware that
//! updates itself and boots from the result.
#![no_std]
#![no_main]

romfs_mcu_tests::updating_probe!(|c, m, half, layout| {});
