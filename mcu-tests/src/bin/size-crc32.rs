//! Size probe: the CRC-32 that the features chose, over a whole image.
#![no_std]
#![no_main]

use romfs_mcu_tests::probe;

romfs_mcu_tests::size_probe!(|c| {
    probe::sink(romfs_format::crc32::checksum(c.image));
    probe::sink(c);
});
