//! The pure-MicroPython Ed25519 verifier (`micropython/romfs_ota/romfs_ed25519.py`)
//! run by the real unix port, against RFC 8032's vectors, OpenSSL-made
//! signatures, and ed25519-dalek's `verify_strict` on random and edge cases:
//! mutated signatures, keys and messages, non-canonical S, small-order R and
//! public keys, non-canonical point encodings, points off the curve.

use std::fmt::Write as _;
use std::process::Command;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use romfs_testkit::{system_tool, Rng};

use super::support::*;

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The canonical encodings of the eight points of small order.
const SMALL_ORDER: [&str; 8] = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/// Non-canonical encodings (y >= p, or x = 0 with the sign bit set) of
/// small-order points.
const NON_CANONICAL: [&str; 5] = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p (0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p + 1 (1)
    "0100000000000000000000000000000000000000000000000000000000000080", // y = 1, sign 1
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = -1, sign 1
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // y = p + 1, sign 1
];

#[derive(Clone)]
struct Case {
    public_key: [u8; 32],
    signature: [u8; 64],
    message: Vec<u8>,
    why: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// y >= p: an encoding this verifier refuses where dalek reduces it.
fn y_not_canonical(key: &[u8; 32]) -> bool {
    let mut y = *key;
    y[31] &= 0x7f;
    // p = 2^255 - 19: y >= p when the top 31 bytes are all ones (0x7f at
    // the top) and the low byte is >= 0xed.
    y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed
}

/// ed25519-dalek's strict verdict, the reference.
fn dalek_accepts(case: &Case) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(&case.public_key) else {
        return false;
    };
    let signature = Signature::from_bytes(&case.signature);
    key.verify_strict(&case.message, &signature).is_ok() && !y_not_canonical(&case.public_key)
}

/// Add L to the S half (non-canonical S, same value mod L).
fn add_l(signature: &mut [u8; 64]) {
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = signature[32 + i] as u16 + L[i] as u16 + carry;
        signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
}

fn random_cases(rng: &mut Rng, count: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for n in 0..count {
        let seed: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        let len = [0, 1, 31, 64, 111, 112, 128, 192, 300][rng.below(9) as usize];
        let message = rng.bytes(len);
        let signature = key.sign(&message).to_bytes();
        let public_key = key.verifying_key().to_bytes();
        let valid = Case {
            public_key,
            signature,
            message: message.clone(),
            why: format!("random #{n}"),
        };
        // Every fourth case also gets a mutation of each kind: the valid
        // case with one field changed.
        if n % 4 == 0 {
            let because = |what: &str| format!("random #{n}, {what}");
            let bit = rng.below(512) as usize;
            let mut bad = signature;
            bad[bit / 8] ^= 1 << (bit % 8);
            cases.push(Case {
                signature: bad,
                why: because(&format!("signature bit {bit} flipped")),
                ..valid.clone()
            });
            let mut bad = public_key;
            let bit = rng.below(256) as usize;
            bad[bit / 8] ^= 1 << (bit % 8);
            cases.push(Case {
                public_key: bad,
                why: because(&format!("key bit {bit} flipped")),
                ..valid.clone()
            });
            let mut bad_message = message.clone();
            if bad_message.is_empty() {
                bad_message.push(0);
            } else {
                let at = rng.below(bad_message.len() as u64) as usize;
                bad_message[at] ^= 0x40;
            }
            cases.push(Case {
                message: bad_message,
                why: because("message changed"),
                ..valid.clone()
            });
            let mut high = signature;
            add_l(&mut high);
            cases.push(Case {
                signature: high,
                why: because("S + L (non-canonical S)"),
                ..valid.clone()
            });
            let mut top = signature;
            top[63] |= 0x80;
            cases.push(Case {
                signature: top,
                why: because("S with its top bit set"),
                ..valid.clone()
            });
            let mut off_curve = signature;
            off_curve[..32].copy_from_slice(&rng.bytes(32));
            cases.push(Case {
                signature: off_curve,
                why: because("random R"),
                ..valid.clone()
            });
        }
        cases.push(valid);
    }
    cases
}

fn edge_cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public_key = key.verifying_key().to_bytes();
    let encodings: Vec<&str> = SMALL_ORDER
        .iter()
        .chain(NON_CANONICAL.iter())
        .copied()
        .collect();
    for enc in &encodings {
        let point: [u8; 32] = unhex(enc);
        for m in 0..16u8 {
            let message = vec![m; m as usize];
            // Small-order R with S = 0 and with a random S, under a real key.
            for s in [
                [0u8; 32],
                rng.bytes(31)
                    .into_iter()
                    .chain([0])
                    .collect::<Vec<_>>()
                    .try_into()
                    .unwrap(),
            ] {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&point);
                signature[32..].copy_from_slice(&s);
                cases.push(Case {
                    public_key,
                    signature,
                    message: message.clone(),
                    why: format!("R = {enc}, message {m}"),
                });
            }
            // A small-order (or non-canonical) public key with a small-order
            // R and S = 0: [S]B - [k]A lands in the small subgroup, so a
            // cofactorless check without the key test accepts some of these.
            for r in &encodings {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&unhex::<32>(r));
                cases.push(Case {
                    public_key: point,
                    signature,
                    message: message.clone(),
                    why: format!("A = {enc}, R = {r}, S = 0, message {m}"),
                });
            }
        }
    }
    // A valid signature with R re-encoded non-canonically is impossible to
    // build (R would need y < 19), so: keys whose y is p..p+18.
    for low in 0xedu8..=0xff {
        let mut k = [0xffu8; 32];
        k[0] = low;
        k[31] = 0x7f;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&unhex::<32>(SMALL_ORDER[0]));
        cases.push(Case {
            public_key: k,
            signature,
            message: vec![],
            why: format!("A with y = p + {}", low - 0xed),
        });
    }
    // S = L - 1 (largest canonical) and S = L exactly.
    let message = b"edge".to_vec();
    let signature = key.sign(&message).to_bytes();
    for (s, why) in [(L, "S = L"), ([0xff; 32], "S = 2^256 - 1")] {
        let mut bad = signature;
        bad[32..].copy_from_slice(&s);
        cases.push(Case {
            public_key,
            signature: bad,
            message: message.clone(),
            why: why.into(),
        });
    }
    cases
}

/// RFC 8032 section 7.1, tests 1-3 and SHA(abc).
fn rfc8032_cases() -> Vec<Case> {
    let vectors = [
        ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        ("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
         "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
         "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
    ];
    vectors
        .iter()
        .map(|(pk, msg, sig)| Case {
            public_key: unhex(pk),
            signature: unhex(sig),
            message: (0..msg.len() / 2)
                .map(|i| u8::from_str_radix(&msg[2 * i..2 * i + 2], 16).unwrap())
                .collect(),
            why: format!("RFC 8032 key {pk}"),
        })
        .collect()
}

/// Run the MicroPython verifier over `cases`; its verdicts in order.
fn micropython_verdicts(cases: &[Case]) -> Vec<bool> {
    let mp = micropython().expect("micropython");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("cases.txt");
    let mut text = String::new();
    for c in cases {
        writeln!(
            text,
            "{} {} {}",
            hex(&c.public_key),
            hex(&c.signature),
            hex(&c.message)
        )
        .unwrap();
    }
    std::fs::write(&list, text).unwrap();
    let out = Command::new(mp)
        .arg(ota_dir().parent().unwrap().join("tests/ed25519_batch.py"))
        .arg(&list)
        .arg(ota_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("END"),
        "the verifier failed: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().next().unwrap();
    assert_eq!(line.len(), cases.len(), "one verdict per case");
    line.bytes().map(|b| b == b'1').collect()
}

fn check(cases: &[Case]) -> (usize, usize) {
    let got = micropython_verdicts(cases);
    let mut accepted = 0;
    for (case, ours) in cases.iter().zip(got) {
        let reference = dalek_accepts(case);
        assert_eq!(
            ours, reference,
            "{}: MicroPython says {ours}, ed25519-dalek verify_strict says {reference}\nkey {}\nsig {}\nmsg {}",
            case.why,
            hex(&case.public_key),
            hex(&case.signature),
            hex(&case.message)
        );
        accepted += ours as usize;
    }
    (accepted, cases.len())
}

#[test]
fn ed25519_rfc8032_vectors() {
    if micropython().is_none() {
        return;
    }
    let cases = rfc8032_cases();
    assert_eq!(micropython_verdicts(&cases), vec![true; cases.len()]);
    assert!(cases.iter().all(dalek_accepts));
}

#[test]
fn ed25519_matches_dalek_verify_strict_on_random_and_edge_cases() {
    if micropython().is_none() {
        return;
    }
    let mut rng = Rng(0x0ed2_5519);
    let mut cases = random_cases(&mut rng, 400);
    cases.extend(edge_cases(&mut rng));
    let (accepted, total) = check(&cases);
    // The valid random signatures, and nothing else, are accepted.
    assert_eq!(accepted, 400, "of {total} cases");
    assert!(total > 2000, "{total} cases");
}

/// Signatures made by the `openssl` command (Ed25519 signing is
/// deterministic, so they must equal dalek's byte for byte) verify, and
/// their mutations do not.
#[test]
fn ed25519_openssl_signatures() {
    if micropython().is_none() {
        return;
    }
    let Some(openssl) = system_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x055e_1000);
    let mut cases = Vec::new();
    for n in 0..24 {
        let seed: [u8; 32] = rng.bytes(32).try_into().unwrap();
        let key = romfs_sign::SigningKey::from_bytes(&seed);
        let pem = dir.path().join(format!("key{n}.pem"));
        std::fs::write(&pem, key.to_pem().as_bytes()).unwrap();
        let message = rng.bytes(1 + n * 13); // openssl refuses an empty file
        let msg_path = dir.path().join(format!("msg{n}"));
        std::fs::write(&msg_path, &message).unwrap();
        let sig_path = dir.path().join(format!("sig{n}"));
        let status = Command::new(&openssl)
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(&pem)
            .arg("-in")
            .arg(&msg_path)
            .arg("-out")
            .arg(&sig_path)
            .status()
            .unwrap();
        assert!(status.success(), "openssl pkeyutl -sign");
        let signature: [u8; 64] = std::fs::read(&sig_path).unwrap().try_into().unwrap();
        let dalek = SigningKey::from_bytes(&seed);
        assert_eq!(
            signature,
            dalek.sign(&message).to_bytes(),
            "OpenSSL and dalek agree"
        );
        let public_key = key.public_key().to_bytes();
        let mut high = signature;
        add_l(&mut high);
        cases.push(Case {
            public_key,
            signature,
            message: message.clone(),
            why: format!("openssl #{n}"),
        });
        cases.push(Case {
            public_key,
            signature: high,
            message,
            why: format!("openssl #{n}, S + L"),
        });
    }
    let got = micropython_verdicts(&cases);
    let want: Vec<bool> = (0..cases.len()).map(|i| i % 2 == 0).collect();
    assert_eq!(got, want);
}
