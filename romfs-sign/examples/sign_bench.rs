//! The host side of `bench/signing.sh`:
//!
//! ```text
//! sign_bench make OUT MIB KEY.pem   an image of MIB MiB of pseudo-random files, signed with KEY
//! sign_bench verify IMG KEY.pub.pem read IMG and verify its signature (exit 1 if it does not)
//! ```

use std::path::Path;
use std::process::ExitCode;

use romfs_format::write::{MemoryTree, Options, SignatureSpec};
use romfs_sign::{sign, verify, PublicKey, SigningKey};

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
                let bytes = std::fs::read(image).map_err(|e| format!("{image}: {e}"))?;
                verify(&bytes, &key).map(|_| ()).map_err(Into::into)
            }),
        _ => Err("usage: sign_bench make OUT MIB KEY.pem | verify IMG KEY.pub.pem".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sign_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
