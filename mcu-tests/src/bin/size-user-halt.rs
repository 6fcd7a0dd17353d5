//! Size probe: an A/B update and a mapped mount as a user writes them
//! (`romfs_mcu_tests::user`), the flash driver inlined into romfs code,
//! panics in a looping handler (panic-halt style).
#![no_std]
#![no_main]

romfs_mcu_tests::user_probe!();
