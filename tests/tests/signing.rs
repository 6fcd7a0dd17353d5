//! Signing against the real tools: keys made by `openssl genpkey` sign,
//! OpenSSL verifies our signatures with exactly the commands FORMAT.md
//! (section 3.4) gives, OpenSSL's own Ed25519 signature of a manifest is
//! byte for byte ours, keys OpenSSL cannot help us with are refused
//! clearly, key ids agree with the device's, and signed images mount and
//! import in the real MicroPython.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use romfs_format::signature::{MANIFEST_LEN, SIGNED_MANIFEST_LEN};
use romfs_format::write::{MemoryTree, MetadataSpec, Options, SignatureSpec};
use romfs_sign::{add_signature, sign, verify, Claims, PublicKey, SigningKey};
use romfs_testkit::{run_micropython, system_tool, venv_tool, workspace_root};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `openssl ARGS` in `dir`.
fn openssl(openssl: &Path, dir: &Path, args: &[&str]) -> Output {
    run(Command::new(openssl).args(args).current_dir(dir))
}

/// An app: a module, a package module and some data.
fn app_tree() -> MemoryTree {
    let mut tree = MemoryTree::new();
    let root = tree.root();
    let lib = tree.add_dir(root, b"lib").unwrap();
    tree.add_file(
        lib,
        b"greeter.py",
        b"def greet(n):\n    return 'signed hello %d' % n\n".to_vec(),
    )
    .unwrap();
    tree.add_file(root, b"config.py", b"PRODUCT = 'board-a'\n".to_vec())
        .unwrap();
    let blob: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 251) as u8).collect();
    tree.add_file(root, b"blob.bin", blob).unwrap();
    tree
}

fn unsigned_app() -> Vec<u8> {
    app_tree()
        .build(&Options {
            metadata: Some(MetadataSpec {
                product: Some("board-a".into()),
                generation: Some(3),
                ..MetadataSpec::default()
            }),
            ..Options::default()
        })
        .unwrap()
}

fn claims() -> Claims {
    Claims {
        product: "board-a".into(),
        generation: 3,
    }
}

/// A key pair made by OpenSSL, as a release pipeline or an HSM export would: (private, public).
fn openssl_key_pair(tool: &Path, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = format!("{name}.pem");
    let public = format!("{name}.pub.pem");
    openssl(
        tool,
        dir,
        &["genpkey", "-algorithm", "ed25519", "-out", &private],
    );
    openssl(
        tool,
        dir,
        &["pkey", "-in", &private, "-pubout", "-out", &public],
    );
    (dir.join(private), dir.join(public))
}

/// The verification commands of FORMAT.md, section 3.4, as written there.
fn format_md_commands() -> String {
    let text = std::fs::read_to_string(workspace_root().join("FORMAT.md")).unwrap();
    let start = text
        .find("**Verifying with standard tools**")
        .expect("FORMAT.md 3.4 shows how to verify with standard tools");
    let block = &text[start..];
    let open = block.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let close = block[open..].find("```").unwrap();
    block[open..open + close].to_string()
}

#[test]
fn keys_made_by_openssl_sign_and_verify() {
    let Some(tool) = system_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = openssl_key_pair(&tool, dir.path(), "release");
    let key = SigningKey::load(&private).unwrap();
    let pubkey = PublicKey::load(&public).unwrap();
    assert_eq!(key.public_key(), pubkey);
    let signed = add_signature(&unsigned_app(), &key, &claims()).unwrap();
    let who = verify(&signed, &pubkey).unwrap();
    assert_eq!(who.key_id, pubkey.key_id());

    // Our key files are the bytes OpenSSL writes for the same key: it reads
    // ours, and derives our public key file from our private one.
    let ours = SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("ours.pem"), ours.to_pem().as_bytes()).unwrap();
    let derived = openssl(&tool, dir.path(), &["pkey", "-in", "ours.pem", "-pubout"]);
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap(),
        ours.public_key().to_pem()
    );
    let rewritten = openssl(&tool, dir.path(), &["pkey", "-in", "ours.pem"]);
    assert_eq!(String::from_utf8(rewritten.stdout).unwrap(), *ours.to_pem());
    // And DER, as `openssl pkey -outform DER` writes it.
    openssl(
        &tool,
        dir.path(),
        &[
            "pkey",
            "-in",
            "release.pem",
            "-outform",
            "DER",
            "-out",
            "release.der",
        ],
    );
    let der = SigningKey::load(&dir.path().join("release.der")).unwrap();
    assert_eq!(der.public_key(), pubkey);
}

/// A scratch folder holding a key pair OpenSSL made (`key.pem`), that
/// key, and the sample app signed with it.
fn signed_with_an_openssl_key(tool: &Path) -> (tempfile::TempDir, SigningKey, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = openssl_key_pair(tool, dir.path(), "key");
    let key = SigningKey::load(&private).unwrap();
    let signed = add_signature(&unsigned_app(), &key, &claims()).unwrap();
    (dir, key, signed)
}

#[test]
fn openssl_verifies_our_signatures_with_the_commands_format_md_gives() {
    let Some(tool) = system_tool("openssl") else {
        return;
    };
    let (dir, key, signed) = signed_with_an_openssl_key(&tool);
    std::fs::write(dir.path().join("app.img"), &signed).unwrap();

    let commands = format_md_commands();
    let script = format!(
        "set -e\nexport PATH={:?}:$PATH\n{commands}",
        tool.parent().unwrap()
    );
    let out = run(Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path()));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let sha256 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let od: String = lines
        .by_ref()
        .take(2)
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert_eq!(
        sha256, od,
        "the manifest vouches for the image's SHA-256:\n{stdout}"
    );
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "openssl: {stdout}"
    );
    let digest = verify(&signed, &key.public_key()).unwrap().digest;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha256, hex);

    // A forged signature or an altered manifest: OpenSSL refuses it too.
    for at in [signed.len() - 1, signed.len() - SIGNED_MANIFEST_LEN + 16] {
        let mut forged = signed.clone();
        forged[at] ^= 1;
        std::fs::write(dir.path().join("app.img"), &forged).unwrap();
        let out = Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "openssl accepted a change at byte {at}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verification Failure"));
    }
}

#[test]
fn openssl_signs_a_manifest_exactly_as_we_do() {
    let Some(tool) = system_tool("openssl") else {
        return;
    };
    let (dir, _, signed) = signed_with_an_openssl_key(&tool);
    let body = &signed[signed.len() - SIGNED_MANIFEST_LEN..];
    std::fs::write(dir.path().join("manifest.bin"), &body[..MANIFEST_LEN]).unwrap();
    let out = openssl(
        &tool,
        dir.path(),
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "key.pem",
            "-rawin",
            "-in",
            "manifest.bin",
        ],
    );
    // Ed25519 is deterministic: the same key and message give the same signature.
    assert_eq!(out.stdout, &body[MANIFEST_LEN..]);
}

#[test]
fn key_ids_are_what_devices_compute_and_what_openssl_shows() {
    let Some(tool) = system_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        let (_, public) = openssl_key_pair(&tool, dir.path(), name);
        let key = PublicKey::load(&public).unwrap();
        assert_eq!(
            key.key_id().0,
            romfs_embedded::update::key_id(&key.to_bytes()),
            "key {name}"
        );
        // README.md's recipe: the last 32 bytes of the SPKI DER, hashed.
        let script = format!(
            "{:?} pkey -pubin -in {name}.pub.pem -outform DER | tail -c 32 | sha256sum | cut -c1-16",
            tool
        );
        let out = run(Command::new("bash")
            .args(["-c", &script])
            .current_dir(dir.path()));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            key.key_id().to_string()
        );
    }
}

#[test]
fn keys_romfs_cannot_use_are_refused_naming_the_file() {
    let Some(tool) = system_tool("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &str); 5] = [
        (
            "encrypted.pem",
            &[
                "genpkey",
                "-algorithm",
                "ed25519",
                "-aes256",
                "-pass",
                "pass:secret",
            ],
            "encrypted",
        ),
        ("ed448.pem", &["genpkey", "-algorithm", "ed448"], "Ed448"),
        (
            "p256.pem",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            "EC (ECDSA)",
        ),
        (
            "rsa.pem",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:1024",
            ],
            "RSA",
        ),
        (
            "traditional-ec.pem",
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
            "EC (ECDSA)",
        ),
    ];
    for (file, args, what) in cases {
        let mut args = args.to_vec();
        args.extend(["-out", file]);
        openssl(&tool, dir.path(), &args);
        let path = dir.path().join(file);
        let err = SigningKey::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", path.display())) && err.contains(what),
            "{file}: {err}"
        );
        assert!(PublicKey::load(&path).is_err(), "{file}");
    }
    // A public key where the private one is needed.
    let (_, public) = openssl_key_pair(&tool, dir.path(), "k");
    let err = SigningKey::load(&public).unwrap_err().to_string();
    assert!(
        err.contains("a public key; signing needs the private key"),
        "{err}"
    );
    // Ed448 public keys are refused for verifying too.
    openssl(
        &tool,
        dir.path(),
        &[
            "pkey",
            "-in",
            "ed448.pem",
            "-pubout",
            "-out",
            "ed448.pub.pem",
        ],
    );
    let err = PublicKey::load(&dir.path().join("ed448.pub.pem"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Ed448"), "{err}");
}

/// Mount `image` in the real MicroPython, import from it, list its root.
fn import_in_micropython(micropython: &Path, image: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.img"), image).unwrap();
    run_micropython(
        micropython,
        r#"
import sys, vfs, os
vfs.mount(vfs.VfsRom(open("app.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom/lib")
sys.path.insert(0, "/rom")
import greeter, config
print(greeter.greet(7), config.PRODUCT)
print(sorted(os.listdir("/rom")), len(open("/rom/blob.bin", "rb").read()))
"#,
        dir.path(),
    )
}

#[test]
fn signed_images_mount_and_import_in_micropython() {
    let Some(micropython) = venv_tool("micropython") else {
        return;
    };
    let key = SigningKey::generate().unwrap();
    let expected = "signed hello 7 board-a\n['blob.bin', 'config.py', 'lib'] 5000\n";
    let plain = unsigned_app();
    assert_eq!(import_in_micropython(&micropython, &plain), expected);
    // Signed after the build, and laid out by the writer then sealed.
    let added = add_signature(&plain, &key, &claims()).unwrap();
    let mut laid_out = app_tree()
        .build(&Options {
            signature: Some(SignatureSpec {
                product: "board-a".into(),
                generation: 3,
            }),
            ..Options::default()
        })
        .unwrap();
    sign(&mut laid_out, &key).unwrap();
    for signed in [&added, &laid_out] {
        verify(signed, &key.public_key()).unwrap();
        assert_eq!(import_in_micropython(&micropython, signed), expected);
    }
}
