//! `romfs keygen`, `romfs build --sign`, `romfs sign` and `romfs verify
//! --key`: keys, signed images, what is reported, and that failures change
//! nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use romfs_format::Image;
use romfs_sign::{PublicKey, SigningKey};

use crate::{
    build_cmd, built, fails, files_of, json_of, leftovers, romfs, sample, stdout_of,
    verify_with_key,
};

/// `romfs keygen --out DIR/NAME`; the key it wrote.
fn keygen(dir: &Path, name: &str) -> SigningKey {
    let out = stdout_of(romfs().arg("keygen").arg("--out").arg(dir.join(name)));
    let key = SigningKey::load(&dir.join(format!("{name}.pem"))).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("key id:      {}", key.key_id())),
        "{text}"
    );
    key
}

fn signed_build(src: &Path, out: &Path, key: &Path, generation: &str) -> String {
    let run = build_cmd(src, out)
        .args(["--no-mpy", "--sign"])
        .arg(key)
        .args(["--product", "board-a", "--generation", generation])
        .output()
        .unwrap();
    romfs_testkit::assert_succeeded(&run, "romfs build --sign");
    String::from_utf8(run.stderr).unwrap()
}

#[test]
fn keygen_writes_a_key_pair_once() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "release");
    let private = t.path().join("release.pem");
    let public = t.path().join("release.pub.pem");
    assert_eq!(
        fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(PublicKey::load(&public).unwrap(), key.public_key());
    let before = fs::read(&private).unwrap();
    fails(
        romfs()
            .arg("keygen")
            .arg("--out")
            .arg(t.path().join("release")),
        1,
        "release.pem: already exists",
    );
    assert_eq!(fs::read(&private).unwrap(), before);
    // The default prefix, in the current directory.
    romfs()
        .current_dir(t.path())
        .arg("keygen")
        .assert()
        .success();
    assert!(t.path().join("romfs-key.pem").exists() && t.path().join("romfs-key.pub.pem").exists());
}

#[test]
fn build_sign_makes_an_image_that_verifies_and_reads_as_the_unsigned_one() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "k");
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("signed.img");
    let summary = signed_build(&src, &img, &t.path().join("k.pem"), "12");
    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    // The summary's checksum is the stored one, not the image's last bytes.
    let (_, crc) = image.checksum_record().unwrap();
    assert!(
        summary.contains(&format!("checksum crc32 {crc:#010x}")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "signed by key {} for product \"board-a\", generation 12",
            key.key_id()
        )),
        "{summary}"
    );
    let who = romfs_sign::verify(&bytes, &key.public_key()).unwrap();
    assert_eq!((who.product.as_str(), who.generation), ("board-a", 12));

    // The same files, at the same places, as the unsigned build.
    let plain = t.path().join("plain.img");
    build_cmd(&src, &plain)
        .args([
            "--no-mpy",
            "-q",
            "--product",
            "board-a",
            "--generation",
            "12",
        ])
        .assert()
        .success();
    let plain_bytes = fs::read(&plain).unwrap();
    assert_eq!(
        files_of(&Image::parse(&plain_bytes).unwrap()),
        files_of(&image)
    );

    let out = stdout_of(&mut verify_with_key(t.path().join("k.pub.pem"), &img));
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("signature OK: signed by key {}", key.key_id())),
        "{text}"
    );
    let v = json_of(romfs().arg("info").arg("--json").arg(&img));
    assert_eq!(v["signature"]["state"], "signed");
    assert_eq!(v["signature"]["key_id"], key.key_id().to_string());
    assert_eq!(v["signature"]["generation"], 12);
    assert_eq!(v["signature"]["digest_matches"], true);
    assert_eq!(
        v["signature"]["signed_manifest"].as_str().unwrap().len(),
        2 * 160
    );
    let manifest: String = bytes[bytes.len() - 160..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v["signature"]["signed_manifest"], manifest.as_str());
    assert!(leftovers(t.path()).is_empty());
}

#[test]
fn verify_with_a_key_fails_on_any_change_saying_why() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "k");
    keygen(t.path(), "other");
    let src = t.path().join("app");
    sample(&src);
    let img = t.path().join("app.img");
    signed_build(&src, &img, &t.path().join("k.pem"), "1");
    let bytes = fs::read(&img).unwrap();
    let pubkey = t.path().join("k.pub.pem");
    // (what changed, the byte, what verify says)
    let n = bytes.len();
    let cases = [
        (
            "a file's data",
            200,
            "do not match the SHA-256 in the signed manifest",
        ),
        ("the signature", n - 1, "the signature does not verify"),
        (
            "the manifest's generation",
            n - 160 + 16,
            "the signature does not verify",
        ),
    ];
    for (what, at, says) in cases {
        let mut bad = bytes.clone();
        bad[at] ^= 0x04;
        let path = t.path().join("bad.img");
        fs::write(&path, &bad).unwrap();
        let out = verify_with_key(&pubkey, &path).output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{what}: {stdout}");
        assert!(
            stdout.contains("signature BAD: ") && stdout.contains(says),
            "{what}: {stdout}"
        );
    }
    // Another key: it says which key signed.
    let out = verify_with_key(t.path().join("other.pub.pem"), &img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains(&format!(
        "signed by key {}, not by the given key",
        key.key_id()
    )));
    // A private key file works for verifying too.
    verify_with_key(t.path().join("k.pem"), &img)
        .assert()
        .success();
}

#[test]
fn sign_signs_in_place_or_to_a_new_file_and_changes_nothing_on_failure() {
    let t = tempfile::tempdir().unwrap();
    let key = keygen(t.path(), "k");
    let other = keygen(t.path(), "other");
    let img = built(t.path());
    let plain = fs::read(&img).unwrap();
    fs::set_permissions(&img, fs::Permissions::from_mode(0o640)).unwrap();

    // Refused: nothing changes, nothing is left behind.
    fails(
        romfs()
            .arg("sign")
            .arg(&img)
            .arg("--key")
            .arg(t.path().join("k.pem")),
        1,
        "no product to sign for",
    );
    fails(
        romfs()
            .arg("sign")
            .arg(&img)
            .args(["--product", "p", "--generation", "1", "--key"])
            .arg(t.path().join("k.pub.pem")),
        1,
        "k.pub.pem: a public key",
    );
    assert_eq!(fs::read(&img).unwrap(), plain);
    assert!(leftovers(t.path()).is_empty());

    // To another file: the input stays as it was.
    let copy = t.path().join("copy.img");
    let out = stdout_of(
        romfs()
            .arg("sign")
            .arg(&img)
            .args(["--product", "board-a", "--generation", "2", "--key"])
            .arg(t.path().join("k.pem"))
            .arg("-o")
            .arg(&copy),
    );
    assert!(String::from_utf8(out).unwrap().contains(&format!(
        "signed by key {} for product \"board-a\", generation 2",
        key.key_id()
    )));
    assert_eq!(fs::read(&img).unwrap(), plain);
    let signed = fs::read(&copy).unwrap();
    romfs_sign::verify(&signed, &key.public_key()).unwrap();
    assert_eq!(
        files_of(&Image::parse(&plain).unwrap()),
        files_of(&Image::parse(&signed).unwrap())
    );

    // In place, keeping the file's permissions; then again with another
    // key, which keeps the product and generation.
    romfs()
        .arg("sign")
        .arg(&img)
        .args(["--product", "board-a", "--generation", "2", "--key"])
        .arg(t.path().join("k.pem"))
        .assert()
        .success();
    assert_eq!(fs::read(&img).unwrap(), signed);
    assert_eq!(
        fs::metadata(&img).unwrap().permissions().mode() & 0o777,
        0o640
    );
    romfs()
        .arg("sign")
        .arg(&img)
        .arg("--key")
        .arg(t.path().join("other.pem"))
        .assert()
        .success();
    let resigned = fs::read(&img).unwrap();
    let who = romfs_sign::verify(&resigned, &other.public_key()).unwrap();
    assert_eq!((who.product.as_str(), who.generation), ("board-a", 2));
    assert_eq!(
        resigned[..resigned.len() - 160],
        signed[..signed.len() - 160]
    );
    assert!(leftovers(t.path()).is_empty());
}
