//! Ed25519 candidates side by side (bench/signing-candidates.sh): `verify`
//! checks RFC 8032 7.1 TEST 2 with the crate the feature selects; `sha`
//! is the SHA-256 romfs-embedded uses. Bins: `base` (nothing), `verify`
//! (size probe: both linked), `cost` (QEMU: peak stack of each).
#![no_std]
// RFC 8032 7.1 TEST 2
pub const PK: [u8; 32] = [
    0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a, 0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b, 0x7e, 0xbc,
    0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c, 0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c,
];
pub const MSG: [u8; 1] = [0x72];
pub const SIG: [u8; 64] = [
    0x92, 0xa0, 0x09, 0xa9, 0xf0, 0xd4, 0xca, 0xb8, 0x72, 0x0e, 0x82, 0x0b, 0x5f, 0x64, 0x25, 0x40,
    0xa2, 0xb2, 0x7b, 0x54, 0x16, 0x50, 0x3f, 0x8f, 0xb3, 0x76, 0x22, 0x23, 0xeb, 0xdb, 0x69, 0xda,
    0x08, 0x5a, 0xc1, 0xe4, 0x3e, 0x15, 0x99, 0x6e, 0x45, 0x8f, 0x36, 0x13, 0xd0, 0xf1, 0x1d, 0x8c,
    0x38, 0x7b, 0x2e, 0xae, 0xb4, 0x30, 0x2a, 0xee, 0xb0, 0x0d, 0x29, 0x16, 0x12, 0xbb, 0x0c, 0x00,
];

#[inline(never)]
pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    #[cfg(feature = "compact")]
    {
        return compact_split::verify(pk, msg, sig);
    }
    #[cfg(feature = "salty")]
    {
        let Ok(pk) = salty::PublicKey::try_from(pk) else {
            return false;
        };
        let sig = salty::Signature::from(sig);
        return pk.verify(msg, &sig).is_ok();
    }
    #[cfg(feature = "dalek")]
    {
        let Ok(pk) = ed25519_dalek::VerifyingKey::from_bytes(pk) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        return pk.verify_strict(msg, &sig).is_ok();
    }
    #[allow(unreachable_code)]
    {
        let _ = (pk, msg, sig);
        false
    }
}

#[inline(never)]
pub fn sha(data: &[u8]) -> [u8; 32] {
    hmac_sha256::Hash::hash(data)
}

/// ed25519-compact's `verify` in its three steps, each in a frame of its
/// own, as romfs-embedded calls it.
#[cfg(feature = "compact")]
pub mod compact_split {
    use ed25519_compact::{PublicKey, Signature, VerifyingState};
    #[inline(never)]
    pub fn start(pk: &[u8; 32], sig: &[u8; 64]) -> Option<VerifyingState> {
        PublicKey::new(*pk)
            .verify_incremental(&Signature::new(*sig))
            .ok()
    }
    #[inline(never)]
    pub fn absorb(st: &mut VerifyingState, msg: &[u8]) {
        st.absorb(msg)
    }
    #[inline(never)]
    pub fn end(st: &VerifyingState) -> bool {
        st.verify().is_ok()
    }
    pub fn verify(pk: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        let mut st = start(pk, sig);
        match st.as_mut() {
            Some(st) => {
                absorb(st, msg);
                end(st)
            }
            None => false,
        }
    }
}
