//! Shared by the update fuzz targets: a stream as a sender's packets cut
//! it.

/// `stream` cut into chunks of 0 to 299 bytes, each its own size, drawn
/// from `seed` (a sender's packets are rarely all alike).
pub fn chunks(stream: &[u8], seed: u8) -> impl Iterator<Item = &[u8]> {
    let mut x = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut rest = stream;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let (chunk, tail) = rest.split_at((x % 300) as usize % (rest.len() + 1));
        rest = tail;
        Some(chunk)
    })
}
