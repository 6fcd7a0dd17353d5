//! Size probe: an A/B update and a mapped mount as a user writes them
//! (`romfs_mcu_tests::user`), the flash driver inlined into romfs code,
//! panics through panic-semihosting (as the on-target tests do).
#![no_std]
#![no_main]

romfs_mcu_tests::user_probe!(semihosting);
