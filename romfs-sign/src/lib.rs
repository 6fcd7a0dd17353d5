#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod error;
mod image;
mod key;

pub use error::{Error, Result};
pub use image::{
    add_signature, claims_for, inspect, set_claims, sign, sign_image, verify, Claims,
    SignatureState, Verified,
};
pub use key::{key_file_names, write_key_pair, KeyFiles, KeyId, PublicKey, SigningKey};
