//! Sign and verify romfs images on the host (FORMAT.md, section 3.4).
//!
//! A signed image ends with a signature record: a manifest (image length,
//! SHA-256 of every byte before the record, product, anti-rollback
//! generation, key id) and the Ed25519 signature of that manifest.
//! MicroPython skips the record; `romfs-embedded`'s updater checks it.
//!
//! Keys are the files OpenSSL makes and reads: PKCS#8 `PRIVATE KEY` and
//! SPKI `PUBLIC KEY` PEM, so they can come from `openssl genpkey -algorithm
//! ed25519`, an HSM export or a CI secret store.
//!
//! ```
//! use romfs_format::write::{MemoryTree, MetadataSpec, Options};
//! use romfs_sign::{add_signature, verify, Claims, SigningKey};
//!
//! let mut tree = MemoryTree::new();
//! tree.add_file(tree.root(), b"main.py", b"print('hello from a signed image')\n".repeat(8))?;
//! let unsigned = tree.build(&Options::default())?;
//!
//! let key = SigningKey::generate()?;
//! let claims = Claims { product: "board-a".into(), generation: 7 };
//! let signed = add_signature(&unsigned, &key, &claims)?;
//! let who = verify(&signed, &key.public_key())?;
//! assert_eq!((who.key_id, who.generation), (key.key_id(), 7));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod file;
mod image;
mod key;

pub use error::{Error, Result};
pub use file::sign_file;
pub use image::{
    add_signature, claims_for, inspect, set_claims, sign, sign_image, verify, Claims,
    SignatureState, Verified,
};
pub use key::{key_file_names, write_key_pair, KeyFiles, KeyId, PublicKey, SigningKey};
