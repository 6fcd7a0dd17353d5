//! The host side of `bench/signing.sh`:
//!
//! ```text
//! sign_bench make OUT MIB KEY.pem   an image of MIB MiB of pseudo-random files, signed with KEY
//! sign_bench verify IMG KEY.pub.pem map IMG and verify its signature (exit 1 if it does not)
//! sign_bench time IMG KEY.pub.pem   in-process medians of ROUNDS (env, default 20) runs:
//!                                   SHA-256 throughput, Ed25519 verifications per second,
//!                                   and `verify()` of the image held in memory
//! ```

use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use romfs_format::signature::{MANIFEST_LEN, SIGNED_MANIFEST_LEN};
use romfs_format::write::{MemoryTree, Options, SignatureSpec};
use romfs_sign::{sign, verify, PublicKey, SigningKey};
use sha2::{Digest, Sha256};

fn make(out: &Path, mib: usize, key: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let key = SigningKey::load(key)?;
    let mut tree = MemoryTree::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..mib {
        let data: Vec<u8> = (0..1 << 17)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()
            })
            .collect();
        tree.add_file(tree.root(), format!("part{i:04}.bin").as_bytes(), data)?;
    }
    let mut image = tree.build(&Options {
        signature: Some(SignatureSpec {
            product: "bench-board".into(),
            generation: 1,
        }),
        ..Options::default()
    })?;
    sign(&mut image, &key)?;
    std::fs::write(out, image)?;
    Ok(())
}

/// Median seconds of `rounds` runs of `f`.
fn median(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn time(image: &Path, key: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let rounds = std::env::var("ROUNDS").map_or(Ok(20), |r| r.parse())?;
    let key = PublicKey::load(key)?;
    let bytes = std::fs::read(image)?;
    let mib = bytes.len() as f64 / f64::from(1 << 20);
    let sha = median(rounds, || {
        black_box(Sha256::digest(black_box(&bytes)));
    });
    let body = &bytes[bytes.len() - SIGNED_MANIFEST_LEN..];
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes())?;
    let signature = ed25519_dalek::Signature::from_slice(&body[MANIFEST_LEN..])?;
    let per_batch = 200;
    let ed = median(rounds, || {
        for _ in 0..per_batch {
            black_box(vk.verify_strict(black_box(&body[..MANIFEST_LEN]), &signature)).unwrap();
        }
    }) / f64::from(per_batch);
    let whole = median(rounds, || {
        black_box(verify(black_box(&bytes), &key)).unwrap();
    });
    println!("sha256 MB/s {:.0}", bytes.len() as f64 / sha / 1e6);
    println!("ed25519 verify/s {:.0}", 1.0 / ed);
    println!("verify ms/MiB {:.3}", whole * 1e3 / mib);
    println!("verify ms {:.3} for {mib:.1} MiB", whole * 1e3);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["make", out, mib, key] => match mib.parse() {
            Ok(mib) => make(Path::new(out), mib, Path::new(key)),
            Err(e) => Err(format!("MIB {mib:?}: {e}").into()),
        },
        ["verify", image, key] => PublicKey::load(Path::new(key))
            .map_err(Into::into)
            .and_then(|key| {
                // Mapped, as `romfs verify` reads images.
                let file = std::fs::File::open(image).map_err(|e| format!("{image}: {e}"))?;
                // SAFETY: the benchmark's own file, not changed while mapped.
                let bytes = unsafe { memmap2::Mmap::map(&file) }?;
                verify(&bytes, &key).map(|_| ()).map_err(Into::into)
            }),
        ["time", image, key] => time(Path::new(image), Path::new(key)),
        _ => Err(
            "usage: sign_bench make OUT MIB KEY.pem | verify IMG KEY.pub.pem | time IMG KEY.pub.pem"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sign_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
