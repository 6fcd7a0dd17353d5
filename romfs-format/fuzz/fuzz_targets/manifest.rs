//! Manifest and signature-record parsing on arbitrary bytes: no panic, and
//! whatever parses round-trips exactly. The input is tried as a signed
//! manifest (what a sender hands a device ahead of an image), as a bare
//! manifest, and as an image whose last record may be a signature record;
//! an image that has one is sealed again (with a stand-in signer, the
//! cryptography is not this crate's) and must then still describe itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_format::signature::{
    self, Manifest, SignedManifest, MANIFEST_LEN, SIGNATURE_RECORD_LEN, SIGNED_MANIFEST_LEN,
};
use romfs_format::Image;

fn manifest_round_trips(bytes: &[u8]) {
    let Ok(m) = Manifest::parse(bytes) else {
        return;
    };
    assert_eq!(
        m.to_bytes()[..],
        bytes[..],
        "a parsed manifest re-encodes to its bytes"
    );
    assert_eq!(Manifest::parse(&m.to_bytes()), Ok(m));
    assert_eq!(
        u64::from(m.signed_len) + SIGNATURE_RECORD_LEN as u64,
        u64::from(m.image_len)
    );
    let product = m.product();
    assert!(product.len() <= signature::MAX_PRODUCT_LEN && !product.contains(&0));
    assert_eq!(Manifest::product_field(product), Some(m.product));
}

fn image_signature(data: &[u8]) {
    let Ok(image) = Image::parse(data) else {
        return;
    };
    let Some(found) = image.signature() else {
        return;
    };
    let Ok(signed) = found else { return };
    // A valid record describes exactly this image and ends it.
    let len = image.len();
    assert_eq!(signed.manifest.image_len as usize, len);
    assert_eq!(
        signed.manifest.signed_len as usize,
        len - SIGNATURE_RECORD_LEN
    );
    assert_eq!(
        signature::signed_len(image.bytes()),
        Some(len - SIGNATURE_RECORD_LEN)
    );
    assert_eq!(
        signed.to_bytes()[..],
        image.bytes()[len - SIGNED_MANIFEST_LEN..]
    );

    // Seal it again: only the last 160 bytes change, and it still parses.
    let mut sealed = image.bytes().to_vec();
    let digest = [data.len() as u8; 32];
    let key_id = [0x5a; 8];
    let manifest = signature::seal(&mut sealed, digest, key_id, |m| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&m[56..88]);
        s
    })
    .expect("a valid signature record can be sealed");
    assert_eq!(
        sealed[..len - SIGNED_MANIFEST_LEN],
        image.bytes()[..len - SIGNED_MANIFEST_LEN]
    );
    assert_eq!((manifest.digest, manifest.key_id), (digest, key_id));
    let again = Image::parse(&sealed).unwrap().signature().unwrap().unwrap();
    assert_eq!(again.manifest, manifest);
    assert_eq!(again.signature[..32], digest);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedManifest::parse(data) {
        assert_eq!(signed.to_bytes()[..], data[..]);
        assert_eq!(signed.message[..], data[..MANIFEST_LEN]);
    }
    manifest_round_trips(data.get(..MANIFEST_LEN).unwrap_or(data));
    // The input's tail, as the body of a signature record at its end.
    if let Some(tail) = data
        .len()
        .checked_sub(SIGNED_MANIFEST_LEN)
        .map(|at| &data[at..])
    {
        let _ = SignedManifest::parse(tail);
        manifest_round_trips(&tail[..MANIFEST_LEN]);
    }
    image_signature(data);
    // Seal must refuse, not panic, on anything.
    let mut copy = data.to_vec();
    let _ = signature::seal(&mut copy, [0; 32], [0; 8], |_| [0; 64]);
});
