//! CRC-32 (IEEE 802.3, as zlib's `crc32`): the image checksum and the A/B
//! commit record's checksum. Every user in the workspace goes through this
//! module, so the implementation can be chosen in one place.

/// A running CRC-32.
#[derive(Debug, Clone, Default)]
pub struct Hasher(crc32fast::Hasher);

impl Hasher {
    /// A CRC over no bytes yet.
    pub fn new() -> Self {
        Hasher(crc32fast::Hasher::new())
    }

    /// Add `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The CRC of everything added (the hasher can go on).
    pub fn value(&self) -> u32 {
        self.0.clone().finalize()
    }

    /// The CRC of everything added.
    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

/// The CRC-32 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut h = Hasher::new();
    h.update(bytes);
    h.finalize()
}
