//! Key files and signed images as `romfs sign`, `romfs verify --key` and
//! `romfs info` read them, on arbitrary bytes: no panic; a key that
//! decodes reads back the same from its own PEM, a private key gives the
//! public key its file's public half gives, and every error names the file;
//! an image that verifies is one whose signature state says signed with a
//! matching digest.
//!
//! Input: a 2-byte little-endian length `n`, `n` bytes of a key file, then
//! an image (the key file's bytes are tried as an image too).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use romfs_sign::{PublicKey, SignatureState, SigningKey};

const ORIGIN: &str = "fuzz-key.pem";

fuzz_target!(|input: &[u8]| {
    let Some((len, rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let (data, image) = rest.split_at(usize::from(u16::from_le_bytes(*len)).min(rest.len()));
    let origin = Path::new(ORIGIN);
    let private = SigningKey::decode(data, origin);
    let public = PublicKey::decode(data, origin);
    match &private {
        Ok(key) => {
            let again = SigningKey::decode(key.to_pem().as_bytes(), origin).unwrap();
            assert_eq!(again.key_id(), key.key_id());
            assert_eq!(public.as_ref().ok(), Some(&key.public_key()));
        }
        Err(e) => assert!(e.to_string().contains(ORIGIN), "{e}"),
    }
    match &public {
        Ok(key) => {
            let again = PublicKey::decode(key.to_pem().as_bytes(), origin).unwrap();
            assert_eq!(&again, key);
            // The image, checked with this key.
            if romfs_sign::verify(image, key).is_ok() {
                assert!(matches!(
                    romfs_sign::inspect(image),
                    Ok(SignatureState::Signed { digest_matches: true, .. })
                ));
            }
        }
        Err(e) => assert!(e.to_string().contains(ORIGIN), "{e}"),
    }
    let _ = romfs_sign::inspect(data);
    let _ = romfs_sign::inspect(image);
});
