//! The parsers of the helper's answers on arbitrary bytes: no panic, and
//! whatever is accepted has the shape asked for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_device::reply;

fuzz_target!(|data: &[u8]| {
    let n = data.first().map_or(0, |b| usize::from(b % 8));
    let rest = data.get(1..).unwrap_or_default();
    let _ = reply::helper_info(rest);
    if let Some(v) = reply::ints(rest, n) {
        assert_eq!(v.len(), n);
    }
    if let Some(h) = reply::hashes(rest, n, 16) {
        assert!(h.len() == n && h.iter().all(|h| h.len() == 16));
    }
    if let Some(b) = reply::base64_bytes(rest, n * 3) {
        assert_eq!(b.len(), n * 3);
    }
    let lens: Vec<usize> = rest.iter().take(n).map(|&b| usize::from(b % 16)).collect();
    if let Some(lines) = reply::base64_lines(rest, &lens) {
        assert!(lines.iter().zip(&lens).all(|(l, &n)| l.len() == n));
    }
    let _ = reply::rom_error(&String::from_utf8_lossy(rest));
    let _ = romfs_device::repl::last_line(rest);
});
