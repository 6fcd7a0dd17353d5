//! Size probe: an A/B delta update (a patch applied to the running slot's
//! image) streamed in chunks and committed, then the newest slot mounted
//! (mapped) and a file opened: a firmware that takes only delta updates.
#![no_std]
#![no_main]

use romfs_mcu_tests::ops;

romfs_mcu_tests::updating_probe!(|c, m, half, layout| {
    update {
        if let Ok(mut update) = ops::begin_ab(m, &mut c.flash, layout, &mut c.buf[..]) {
            if let Ok(mut up) = ops::delta(m, &mut update) {
                romfs_mcu_tests::probe_stream!(m, up, c.patch, ops::delta_write, ops::delta_finish);
            }
        }
    }
    keep (c.image, c.update, c.rom, c.buf);
});
