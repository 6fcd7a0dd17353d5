//! The Ed25519 check of signed updates (`update::verify_signature`) against
//! RFC 8032's vectors, OpenSSL and ed25519-dalek's `verify_strict`, and the
//! signatures a strict verifier must refuse.

use std::path::Path;
use std::process::Command;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use romfs_embedded::update::verify_signature;
use sha2::{Digest, Sha512};

use super::common::Rng;

fn hex<const N: usize>(s: &str) -> [u8; N] {
    hex_vec(s).try_into().expect("length")
}

fn hex_vec(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// RFC 8032, section 7.1: secret key, public key, message, signature.
const RFC8032: [(&str, &str, &str, &str); 5] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        concat!(
            "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1",
            "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d",
            "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a",
            "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e",
            "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10",
            "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1",
            "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d",
            "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270",
            "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b",
            "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba",
            "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b",
            "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7",
            "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d",
            "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df",
            "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7",
            "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4",
            "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09",
            "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f",
            "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161",
            "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d",
            "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca",
            "c60c905c15fc910840b94c00a0b9d0",
        ),
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        // SHA-512("abc")
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
];

/// ed25519-dalek's `verify_strict`, the reference for what must be refused.
fn dalek_strict(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key).is_ok_and(|k| {
        k.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    })
}

/// ed25519-dalek's lax `verify` (no small-order checks): shows that a
/// crafted signature satisfies the verification equation.
fn dalek_lax(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    use ed25519_dalek::Verifier;
    VerifyingKey::from_bytes(public_key)
        .is_ok_and(|k| k.verify(message, &Signature::from_bytes(signature)).is_ok())
}

/// k = SHA-512(R || A || M) mod L.
fn challenge(r: &[u8; 32], public_key: &[u8; 32], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(public_key);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// A signature with nonce point `r_point` and S = nonce + k·a, as a signer
/// holding `key` would make it with any R it likes.
fn sign_with_r(key: &SigningKey, r_bytes: [u8; 32], nonce: Scalar, message: &[u8]) -> [u8; 64] {
    let a = key.verifying_key().to_bytes();
    let s = nonce + challenge(&r_bytes, &a, message) * key.to_scalar();
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// Every single-bit change of `public_key`, `message` or `signature` is
/// refused.
fn every_bit_flip_refused(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) {
    for bit in 0..512 {
        let mut s = *signature;
        s[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_signature(public_key, message, &s),
            "signature bit {bit}"
        );
    }
    for bit in 0..256 {
        let mut k = *public_key;
        k[bit / 8] ^= 1 << (bit % 8);
        assert!(!verify_signature(&k, message, signature), "key bit {bit}");
    }
    for bit in 0..(message.len() * 8).min(512) {
        let mut m = message.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !verify_signature(public_key, &m, signature),
            "message bit {bit}"
        );
    }
}

#[test]
fn rfc8032_section_7_1_vectors_verify_and_any_bit_flip_is_refused() {
    for (secret, public, message, signature) in RFC8032 {
        let (public, message, signature): ([u8; 32], _, [u8; 64]) =
            (hex(public), hex_vec(message), hex(signature));
        // The transcription is checked by signing with ed25519-dalek.
        let key = SigningKey::from_bytes(&hex(secret));
        assert_eq!(key.verifying_key().to_bytes(), public);
        assert_eq!(key.sign(&message).to_bytes(), signature);
        assert!(verify_signature(&public, &message, &signature));
        every_bit_flip_refused(&public, &message, &signature);
    }
    let abc: [u8; 64] = Sha512::digest(b"abc").into();
    assert_eq!(hex_vec(RFC8032[4].2), abc);
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed for this test (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn agrees_with_openssl_on_random_keys_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = Rng(0x0e55_1ed2_5519);
    for round in 0..64 {
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", "key.pem"], d);
        // The raw public key ends the DER SubjectPublicKeyInfo.
        let der = openssl(&["pkey", "-in", "key.pem", "-pubout", "-outform", "DER"], d);
        let public: [u8; 32] = der[der.len() - 32..].try_into().unwrap();
        let len = match round % 4 {
            0 => 1, // OpenSSL 3.0 cannot sign an empty message with -rawin
            1 => rng.below(64) as usize,
            2 => 96 + rng.below(200) as usize,
            _ => rng.below(4096) as usize,
        };
        let message = rng.bytes(len);
        std::fs::write(d.join("msg"), &message).unwrap();
        openssl(
            &[
                "pkeyutl", "-sign", "-rawin", "-inkey", "key.pem", "-in", "msg", "-out", "sig",
            ],
            d,
        );
        let signature: [u8; 64] = std::fs::read(d.join("sig")).unwrap().try_into().unwrap();
        assert!(
            verify_signature(&public, &message, &signature),
            "OpenSSL's signature of a {len}-byte message refused (round {round})"
        );
        assert!(dalek_strict(&public, &message, &signature));
        // A changed byte anywhere is refused.
        let mut bad = signature;
        bad[rng.below(64) as usize] ^= 1 << rng.below(8);
        assert!(!verify_signature(&public, &message, &bad));
        if !message.is_empty() {
            let mut m = message.clone();
            m[rng.below(len as u64) as usize] ^= 1 << rng.below(8);
            assert!(!verify_signature(&public, &m, &signature));
        }
    }
}

#[test]
fn agrees_with_ed25519_dalek_verify_strict_on_thousands_of_cases() {
    let mut rng = Rng(0xda1e_c0de);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let key = SigningKey::from_bytes(&rng.bytes(32).try_into().unwrap());
        let public = key.verifying_key().to_bytes();
        let len = rng.below(300) as usize;
        let message = rng.bytes(len);
        let mut signature = key.sign(&message).to_bytes();
        let mut public_used = public;
        let mut message_used = message.clone();
        // Half of the cases are changed: a random bit of one of the three.
        match rng.below(6) {
            0 => signature[rng.below(64) as usize] ^= 1 << rng.below(8),
            1 => public_used[rng.below(32) as usize] ^= 1 << rng.below(8),
            2 if !message.is_empty() => {
                message_used[rng.below(message.len() as u64) as usize] ^= 1 << rng.below(8)
            }
            _ => {}
        }
        let ours = verify_signature(&public_used, &message_used, &signature);
        assert_eq!(
            ours,
            dalek_strict(&public_used, &message_used, &signature),
            "key {public_used:02x?} signature {signature:02x?}"
        );
        if ours {
            accepted += 1
        } else {
            refused += 1
        }
    }
    assert!(accepted > 1000 && refused > 1000, "{accepted} / {refused}");
}

/// `value + L`, little-endian (the group order L = 2^252 + ...).
fn plus_group_order(value: &[u8; 32]) -> [u8; 32] {
    let l: [u8; 32] = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(value[i]) + u16::from(l[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

#[test]
fn a_non_canonical_s_is_refused() {
    let mut rng = Rng(5);
    for _ in 0..50 {
        let key = SigningKey::from_bytes(&rng.bytes(32).try_into().unwrap());
        let public = key.verifying_key().to_bytes();
        let message = rng.bytes(40);
        let signature = key.sign(&message).to_bytes();
        assert!(verify_signature(&public, &message, &signature));
        // S + L satisfies the same equation (S is taken mod L by a lax
        // verifier) but is not the canonical encoding.
        let mut malleated = signature;
        malleated[32..].copy_from_slice(&plus_group_order(signature[32..].try_into().unwrap()));
        assert!(!verify_signature(&public, &message, &malleated));
        assert!(!dalek_strict(&public, &message, &malleated));
    }
    // S = L exactly, the smallest non-canonical S.
    let key = SigningKey::from_bytes(&[9; 32]);
    let mut sig = key.sign(b"m").to_bytes();
    sig[32..].copy_from_slice(&plus_group_order(&[0; 32]));
    assert!(!verify_signature(
        &key.verifying_key().to_bytes(),
        b"m",
        &sig
    ));
}

#[test]
fn small_order_public_keys_are_refused() {
    // R = identity, S = 0: [0]B = R + [k]A holds whenever [k]A is the
    // identity, which a lax verifier accepts for the identity key (and for
    // any small-order key when k is a multiple of its order).
    let identity = CompressedEdwardsY::identity().to_bytes();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let mut lax_accepted = 0;
    for point in EIGHT_TORSION {
        let public = point.compress().to_bytes();
        assert!(point.is_small_order());
        for i in 0..16u8 {
            let message = [i; 7];
            if dalek_lax(&public, &message, &forged) {
                lax_accepted += 1;
            }
            assert!(!verify_signature(&public, &message, &forged));
            assert!(!dalek_strict(&public, &message, &forged));
        }
    }
    assert!(lax_accepted >= 16, "the forgery is not one: {lax_accepted}");
}

#[test]
fn a_small_order_r_is_refused() {
    // With R the identity and S = k·a, the cofactorless equation
    // [S]B = R + [k]A holds: a lax verifier accepts; a strict one must not.
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key().to_bytes();
    for point in EIGHT_TORSION {
        let r = point.compress().to_bytes();
        let message = b"small-order R";
        let forged = sign_with_r(&key, r, Scalar::ZERO, message);
        if point == EIGHT_TORSION[0] {
            assert!(
                dalek_lax(&public, message, &forged),
                "the forgery is not one"
            );
        }
        assert!(!verify_signature(&public, message, &forged));
        assert!(!dalek_strict(&public, message, &forged));
    }
}

#[test]
fn an_r_off_by_a_small_order_point_is_accepted_only_as_documented() {
    // R = [r]B + T with T of small order, S = r + k·a: only the key holder
    // can make it. verify_signature's cofactored check accepts it (see its
    // docs); ed25519-dalek's verify_strict refuses it. An honest R passes
    // both.
    let key = SigningKey::from_bytes(&[11; 32]);
    let public = key.verifying_key().to_bytes();
    let nonce = Scalar::from_bytes_mod_order([42; 32]);
    let honest = ED25519_BASEPOINT_POINT * nonce;
    let message = b"torsion";
    let honest_sig = sign_with_r(&key, honest.compress().to_bytes(), nonce, message);
    assert!(verify_signature(&public, message, &honest_sig));
    assert!(dalek_strict(&public, message, &honest_sig));
    for t in &EIGHT_TORSION[1..] {
        let r = (honest + t).compress().to_bytes();
        let sig = sign_with_r(&key, r, nonce, message);
        assert!(verify_signature(&public, message, &sig));
        assert!(!dalek_strict(&public, message, &sig));
        // Without the secret key, moving R breaks the signature.
        let mut moved = honest_sig;
        moved[..32].copy_from_slice(&r);
        assert!(!verify_signature(&public, message, &moved));
    }
}
