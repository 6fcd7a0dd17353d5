//! Key files: the exact encodings OpenSSL uses, key ids, keygen's files,
//! and a clear error for every key romfs cannot use. (Keys made by the real
//! openssl are tested in romfs-interop's `signing` tests.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use romfs_sign::{write_key_pair, Error, KeyId, PublicKey, SigningKey};
use sha2::{Digest, Sha256};

/// RFC 8032, section 7.1, test 1.
const SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn rfc_key() -> SigningKey {
    SigningKey::from_bytes(&hex(SECRET).try_into().unwrap())
}

/// The PEM of `der` under `label`, as OpenSSL writes it (64-column base64).
fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    let body: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

/// PKCS#8 v1 of an Ed25519 seed, as `openssl genpkey -algorithm ed25519`
/// writes it (RFC 8410, section 7).
fn pkcs8_der(oid_last: u8, seed: &[u8]) -> Vec<u8> {
    let mut der = hex("302e020100300506032b65");
    der.push(oid_last);
    der.extend(hex("04220420"));
    der.extend_from_slice(seed);
    der
}

#[test]
fn keys_are_written_exactly_as_openssl_writes_them() {
    let key = rfc_key();
    assert_eq!(key.public_key().to_bytes().to_vec(), hex(PUBLIC));
    assert_eq!(
        key.to_pem().as_str(),
        pem("PRIVATE KEY", &pkcs8_der(0x70, &hex(SECRET)))
    );
    let mut spki = hex("302a300506032b6570032100");
    spki.extend(hex(PUBLIC));
    assert_eq!(key.public_key().to_pem(), pem("PUBLIC KEY", &spki));
}

#[test]
fn keys_read_back_from_pem_and_der() {
    let key = rfc_key();
    let origin = Path::new("k.pem");
    let again = SigningKey::decode(key.to_pem().as_bytes(), origin).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    let public = PublicKey::decode(key.public_key().to_pem().as_bytes(), origin).unwrap();
    assert_eq!(public, key.public_key());
    // A private key file also gives its public key (verify --key KEY.pem).
    assert_eq!(
        PublicKey::decode(key.to_pem().as_bytes(), origin).unwrap(),
        key.public_key()
    );
    // DER, as `openssl pkey -outform DER` writes it.
    let der = pkcs8_der(0x70, &hex(SECRET));
    assert_eq!(
        SigningKey::decode(&der, origin).unwrap().public_key(),
        key.public_key()
    );
    // Text before the PEM block, as `openssl pkey -text` puts there.
    let noisy = format!("ED25519 Private-Key:\npriv: ...\n{}", key.to_pem().as_str());
    assert!(SigningKey::decode(noisy.as_bytes(), origin).is_ok());
    // PKCS#8 v2 (with the public key), as other tools write it.
    let mut v2 = hex("3051020101300506032b657004220420");
    v2.extend(hex(SECRET));
    v2.extend(hex("812100"));
    v2.extend(hex(PUBLIC));
    assert_eq!(
        SigningKey::decode(pem("PRIVATE KEY", &v2).as_bytes(), origin)
            .unwrap()
            .public_key(),
        key.public_key()
    );
}

#[test]
fn the_key_id_is_the_first_bytes_of_the_public_keys_sha256() {
    let key = rfc_key();
    let digest = Sha256::digest(hex(PUBLIC));
    assert_eq!(key.key_id().0[..], digest[..8]);
    assert_eq!(key.key_id(), KeyId::of(&key.public_key().to_bytes()));
    let shown = key.key_id().to_string();
    assert_eq!(shown.len(), 16);
    assert_eq!(hex(&shown), digest[..8].to_vec());
}

#[test]
fn generated_keys_differ_and_sign() {
    let a = SigningKey::generate().unwrap();
    let b = SigningKey::generate().unwrap();
    assert_ne!(a.public_key(), b.public_key());
    // The secret never shows in debug output.
    let secret_pem = a.to_pem();
    assert!(!format!("{a:?}").contains(&secret_pem[30..60]));
    assert!(format!("{a:?}").contains(&a.key_id().to_string()));
}

fn message(e: Error) -> String {
    e.to_string()
}

#[test]
fn unusable_keys_are_refused_naming_the_file() {
    let origin = Path::new("/keys/ci.pem");
    let private = |file: &[u8]| message(SigningKey::decode(file, origin).unwrap_err());

    let encrypted = pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
    let m = private(encrypted.as_bytes());
    assert!(
        m.starts_with("/keys/ci.pem: ") && m.contains("encrypted"),
        "{m}"
    );

    let x25519 = pem("PRIVATE KEY", &pkcs8_der(0x6e, &hex(SECRET)));
    let m = private(x25519.as_bytes());
    assert!(m.contains("/keys/ci.pem") && m.contains("X25519"), "{m}");
    let ed448 = pem("PRIVATE KEY", &pkcs8_der(0x71, &hex(SECRET)));
    assert!(private(ed448.as_bytes()).contains("Ed448 key"));

    for (label, what) in [("RSA PRIVATE KEY", "RSA"), ("EC PRIVATE KEY", "EC")] {
        let m = private(pem(label, &[0x30, 0x00]).as_bytes());
        assert!(m.contains("/keys/ci.pem") && m.contains(what), "{m}");
        assert!(m.contains("Ed25519 only"), "{m}");
    }

    let public = rfc_key().public_key().to_pem();
    let m = private(public.as_bytes());
    assert!(
        m.contains("a public key; signing needs the private key"),
        "{m}"
    );

    let m = private(b"hello, not a key\n");
    assert!(m.starts_with("/keys/ci.pem: not an Ed25519 key"), "{m}");
    let m = private(b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n");
    assert!(m.starts_with("/keys/ci.pem: not an Ed25519 key"), "{m}");
    let m = private(pem("OPENSSH PRIVATE KEY", b"openssh-key-v1\0").as_bytes());
    assert!(m.contains("ssh-keygen"), "{m}");

    // A small-order public key verifies forged signatures: refused.
    let mut weak = hex("302a300506032b6570032100");
    weak.extend([1u8].iter().chain([0u8; 31].iter()));
    let m = message(PublicKey::decode(pem("PUBLIC KEY", &weak).as_bytes(), origin).unwrap_err());
    assert!(m.contains("weak"), "{m}");

    let missing = SigningKey::load(Path::new("/nonexistent/romfs-key.pem")).unwrap_err();
    assert!(
        message(missing).starts_with("/nonexistent/romfs-key.pem: "),
        "the missing file is named"
    );
}

#[test]
fn keygen_writes_a_private_file_for_its_owner_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let key = SigningKey::generate().unwrap();
    let files = write_key_pair(&key, &prefix).unwrap();
    assert_eq!(files.private, dir.path().join("release.pem"));
    assert_eq!(files.public, dir.path().join("release.pub.pem"));
    assert_eq!(files.key_id, key.key_id());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&files.private), 0o600);
    assert_eq!(
        SigningKey::load(&files.private).unwrap().public_key(),
        key.public_key()
    );
    assert_eq!(PublicKey::load(&files.public).unwrap(), key.public_key());

    // Again: refused, and both files are untouched.
    let before = std::fs::read(&files.private).unwrap();
    let other = SigningKey::generate().unwrap();
    let err = write_key_pair(&other, &prefix).unwrap_err();
    assert!(matches!(err, Error::KeyExists { .. }), "{err}");
    assert!(err.to_string().contains("release.pem"), "{err}");
    assert_eq!(std::fs::read(&files.private).unwrap(), before);

    // Only the public file exists: refused, and no private file is left.
    let prefix2 = dir.path().join("second");
    std::fs::write(dir.path().join("second.pub.pem"), b"x").unwrap();
    assert!(write_key_pair(&other, &prefix2).is_err());
    assert!(!dir.path().join("second.pem").exists());

    // A prefix in a directory that does not exist: the error names the file.
    let err = write_key_pair(&other, &dir.path().join("no/such/dir/k")).unwrap_err();
    assert!(err.to_string().contains("no/such/dir/k.pem"), "{err}");
}
