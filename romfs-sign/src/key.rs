//! Ed25519 keys in the files OpenSSL writes and reads: PKCS#8 `PRIVATE KEY`
//! and SPKI `PUBLIC KEY` PEM (`openssl genpkey -algorithm ed25519`,
//! `openssl pkey -pubout`), and key ids as manifests carry them.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::{self, LineEnding};
use ed25519_dalek::pkcs8::spki::{EncodePublicKey, ObjectIdentifier, SubjectPublicKeyInfoRef};
use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes, PrivateKeyInfoRef};
use ed25519_dalek::Signer as _;
use romfs_format::signature::{KEY_ID_LEN, MANIFEST_LEN, SIGNATURE_LEN};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

const ED25519_OID: ObjectIdentifier = ed25519_dalek::pkcs8::ALGORITHM_OID;

/// Which key signed an image: the first 8 bytes of the SHA-256 of its
/// 32-byte Ed25519 public key (FORMAT.md, section 3.4). Shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The id of a 32-byte Ed25519 public key.
    pub fn of(public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// An Ed25519 private key.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "SigningKey({})", self.key_id())
    }
}

impl SigningKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Result<SigningKey> {
        let mut secret = Zeroizing::new([0u8; 32]);
        getrandom::fill(secret.as_mut()).map_err(Error::Random)?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&secret)))
    }

    /// The key with these 32 secret bytes (RFC 8032's seed).
    pub fn from_bytes(secret: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// Read a PKCS#8 private key file (PEM, or DER as `openssl pkey -outform DER` writes).
    pub fn load(path: &Path) -> Result<SigningKey> {
        let bytes = read_secret(path)?;
        SigningKey::decode(&bytes, path)
    }

    /// Decode a private key file's bytes; `origin` names it in errors.
    pub fn decode(file: &[u8], origin: &Path) -> Result<SigningKey> {
        match KeyDocument::decode(file, origin)? {
            KeyDocument::Private(der) => {
                let info = PrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| not_a_key(origin, e))?;
                check_algorithm(info.algorithm.oid, origin)?;
                let pair = KeypairBytes::try_from(info).map_err(|e| not_a_key(origin, e))?;
                let key =
                    ed25519_dalek::SigningKey::try_from(&pair).map_err(|_| Error::NotAKey {
                        path: origin.to_path_buf(),
                        reason: "its public key does not belong to its private key".into(),
                    })?;
                Ok(SigningKey(key))
            }
            KeyDocument::Public(_) => Err(Error::NeedPrivateKey {
                path: origin.to_path_buf(),
            }),
        }
    }

    /// The PKCS#8 PEM of this key, exactly as `openssl genpkey -algorithm
    /// ed25519` writes it (version 1, no public key).
    pub fn to_pem(&self) -> Zeroizing<String> {
        let pair = KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        // Encoding 32 bytes into a fixed structure cannot fail.
        pair.to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding of an Ed25519 key")
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The id of the matching public key.
    pub fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// The Ed25519 signature of a manifest.
    pub(crate) fn sign(&self, message: &[u8; MANIFEST_LEN]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }

    /// The Ed25519 signature of any message (e.g. an OTA manifest's
    /// header, FORMAT.md section 7).
    pub fn sign_message(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Read a key file: an SPKI public key, or a PKCS#8 private key (whose
    /// public half is used), in PEM or DER.
    pub fn load(path: &Path) -> Result<PublicKey> {
        let bytes = read_secret(path)?;
        PublicKey::decode(&bytes, path)
    }

    /// Decode a key file's bytes; `origin` names it in errors.
    pub fn decode(file: &[u8], origin: &Path) -> Result<PublicKey> {
        match KeyDocument::decode(file, origin)? {
            KeyDocument::Public(der) => {
                let info = SubjectPublicKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| not_a_key(origin, e))?;
                check_algorithm(info.algorithm.oid, origin)?;
                let key = ed25519_dalek::VerifyingKey::try_from(info)
                    .map_err(|e| not_a_key(origin, e))?;
                if key.is_weak() {
                    return Err(Error::NotAKey {
                        path: origin.to_path_buf(),
                        reason: "a weak (small-order) Ed25519 key, which any signature matches"
                            .into(),
                    });
                }
                Ok(PublicKey(key))
            }
            KeyDocument::Private(_) => Ok(SigningKey::decode(file, origin)?.public_key()),
        }
    }

    /// The key from its 32 bytes; `None` when they are not a usable key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .filter(|k| !k.is_weak())
            .map(PublicKey)
    }

    /// The SPKI PEM of this key, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("SPKI encoding of an Ed25519 key")
    }

    /// The 32 bytes of the key (what firmware compiles in).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0.to_bytes())
    }

    /// Check an Ed25519 signature of a manifest (RFC 8032, strict: no
    /// malleable signatures, no weak keys; the same check devices make).
    pub(crate) fn verifies(
        &self,
        message: &[u8; MANIFEST_LEN],
        signature: &[u8; SIGNATURE_LEN],
    ) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

/// Where `romfs keygen` put a new key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The private key, `PREFIX.pem`, readable by its owner only.
    pub private: PathBuf,
    /// The public key, `PREFIX.pub.pem`.
    pub public: PathBuf,
    /// The public key's id.
    pub key_id: KeyId,
}

/// The file names of the key pair `prefix` names: `PREFIX.pem` and `PREFIX.pub.pem`.
pub fn key_file_names(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with(".pem"), with(".pub.pem"))
}

/// Write `key` as `PREFIX.pem` (mode 0600) and its public key as
/// `PREFIX.pub.pem`. Refuses to overwrite either; on failure nothing is left.
pub fn write_key_pair(key: &SigningKey, prefix: &Path) -> Result<KeyFiles> {
    let (private, public) = key_file_names(prefix);
    for path in [&private, &public] {
        if path.symlink_metadata().is_ok() {
            return Err(Error::KeyExists { path: path.clone() });
        }
    }
    write_new(&private, key.to_pem().as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, key.public_key().to_pem().as_bytes(), 0o644) {
        let _ = fs::remove_file(&private);
        return Err(e);
    }
    Ok(KeyFiles {
        private,
        public,
        key_id: key.key_id(),
    })
}

/// Create `path` (never replacing a file) holding `bytes`; remove it again
/// if writing fails.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io = |error| Error::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::KeyExists {
            path: path.to_path_buf(),
        },
        _ => io(e),
    })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io(e));
    }
    Ok(())
}

fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    fs::read(path)
        .map(Zeroizing::new)
        .map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })
}

fn not_a_key(path: &Path, e: impl fmt::Display) -> Error {
    Error::NotAKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A key file's DER document and which kind it is.
enum KeyDocument {
    Private(Zeroizing<Vec<u8>>),
    Public(Vec<u8>),
}

impl KeyDocument {
    fn decode(file: &[u8], origin: &Path) -> Result<KeyDocument> {
        let Some(begin) = find(file, b"-----BEGIN ") else {
            return KeyDocument::from_der(file, origin);
        };
        // OpenSSL may put explanatory text before the PEM block.
        let (label, der) = pem::decode_vec(&file[begin..]).map_err(|e| not_a_key(origin, e))?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => Ok(KeyDocument::Private(der)),
            "PUBLIC KEY" => Ok(KeyDocument::Public(der.to_vec())),
            "ENCRYPTED PRIVATE KEY" => Err(Error::EncryptedKey {
                path: origin.to_path_buf(),
            }),
            "RSA PRIVATE KEY" | "RSA PUBLIC KEY" => Err(not_ed25519(origin, "an RSA")),
            "EC PRIVATE KEY" => Err(not_ed25519(origin, "an EC (ECDSA)")),
            "DSA PRIVATE KEY" => Err(not_ed25519(origin, "a DSA")),
            "OPENSSH PRIVATE KEY" => Err(not_a_key(
                origin,
                "an OpenSSH key file (convert it to PKCS#8: `ssh-keygen -p -m PKCS8 -f KEY`)",
            )),
            other => Err(not_a_key(origin, format!("a PEM block labelled {other:?}"))),
        }
    }

    /// A DER file: PKCS#8 if it parses as one, else SPKI.
    fn from_der(file: &[u8], origin: &Path) -> Result<KeyDocument> {
        if PrivateKeyInfoRef::try_from(file).is_ok() {
            Ok(KeyDocument::Private(Zeroizing::new(file.to_vec())))
        } else if SubjectPublicKeyInfoRef::try_from(file).is_ok() {
            Ok(KeyDocument::Public(file.to_vec()))
        } else {
            Err(not_a_key(origin, "neither a PEM file nor a DER key"))
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn not_ed25519(path: &Path, algorithm: &str) -> Error {
    Error::NotEd25519 {
        path: path.to_path_buf(),
        algorithm: algorithm.into(),
    }
}

/// Refuse keys of other algorithms, naming the common ones.
fn check_algorithm(oid: ObjectIdentifier, origin: &Path) -> Result<()> {
    if oid == ED25519_OID {
        return Ok(());
    }
    let algorithm = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "an RSA".to_string(),
        "1.2.840.10045.2.1" => "an EC (ECDSA)".to_string(),
        "1.2.840.10040.4.1" => "a DSA".to_string(),
        "1.3.101.110" => "an X25519 (key agreement, not signing)".to_string(),
        "1.3.101.111" => "an X448".to_string(),
        "1.3.101.113" => "an Ed448".to_string(),
        other => format!("an algorithm {other}"),
    };
    Err(Error::NotEd25519 {
        path: origin.to_path_buf(),
        algorithm,
    })
}
