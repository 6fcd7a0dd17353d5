//! The streaming delta decoder never panics and never hands out a copy
//! outside the old image, whatever the patch bytes and however they are cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_format::delta::{Decoder, Op};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, patch)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 17) + 1;
    let mut dec = Decoder::new();
    let mut old_len = 0u64;
    for piece in patch.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let Ok((n, op)) = dec.feed(rest) else { return };
            assert!(n > 0 && n <= rest.len());
            rest = &rest[n..];
            match op {
                Some(Op::Header(h)) => old_len = u64::from(h.old_len),
                Some(Op::Copy { from, len }) => {
                    assert!(u64::from(from) + u64::from(len) <= old_len)
                }
                _ => {}
            }
        }
    }
    let _ = dec.finish();
});
