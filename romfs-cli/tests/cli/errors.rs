//! Every failure path as a user meets it: the exit status, one
//! `PROGRAM: error: ...` message that names the file or path, and no part
//! of the message said twice; and corrupt images never make a panic.

use std::fs;
use std::path::Path;

use crate::{built, fails, romfs, romfs_mount};

/// The longest part of `message` (at least `min` bytes) that appears twice
/// without overlapping, if any.
fn repeated_part(message: &str, min: usize) -> Option<String> {
    let b = message.as_bytes();
    let mut best: Option<&[u8]> = None;
    for i in 0..b.len() {
        for j in i + 1..b.len() {
            let mut k = 0;
            while j + k < b.len() && i + k < j && b[i + k] == b[j + k] {
                k += 1;
            }
            if k >= min && best.is_none_or(|x| k > x.len()) {
                best = Some(&b[i..i + k]);
            }
        }
    }
    best.map(|x| String::from_utf8_lossy(x).into_owned())
}

#[test]
fn repeated_parts_are_found() {
    let twice = "romfs: error: junk.img: not a ROMFS image at 0: not a ROMFS image at 0";
    assert_eq!(
        repeated_part(twice, 12).as_deref(),
        Some(": not a ROMFS image at 0")
    );
    assert_eq!(repeated_part("romfs: error: x.img: bad header", 12), None);
}

/// The files every case runs against, in `dir`: a good image, junk, a
/// truncated and a 2-byte image, a plain file, a mountpoint, an
/// extraction target that already holds `main.py`.
fn fixtures(dir: &Path) {
    let img = built(dir);
    let good = fs::read(&img).unwrap();
    fs::write(dir.join("junk.img"), b"hello world").unwrap();
    fs::write(dir.join("trunc.img"), &good[..good.len() / 2]).unwrap();
    fs::write(dir.join("short.img"), [0xd2, 0xcd]).unwrap();
    fs::write(dir.join("afile"), b"x").unwrap();
    fs::create_dir(dir.join("mnt")).unwrap();
    fs::create_dir(dir.join("exists")).unwrap();
    fs::write(dir.join("exists/main.py"), b"mine").unwrap();
    let key = romfs_sign::SigningKey::from_bytes(&[3; 32]);
    romfs_sign::write_key_pair(&key, &dir.join("key")).unwrap();
}

#[test]
fn every_error_names_its_subject_once() {
    let t = tempfile::tempdir().unwrap();
    fixtures(t.path());
    // ("PROGRAM ARGUMENTS...", exit status, what the message must name)
    #[rustfmt::skip] // one case a line
    let cases: &[(&str, i32, &str)] = &[
        ("romfs info missing.img", 1, "missing.img: No such file"),
        ("romfs ls missing.img", 1, "missing.img: No such file"),
        ("romfs verify missing.img", 1, "missing.img"),
        ("romfs info junk.img", 1, "junk.img: not a ROMFS image"),
        ("romfs tree junk.img", 1, "junk.img: not a ROMFS image"),
        ("romfs ls trunc.img", 1, "trunc.img: image declares"),
        ("romfs cat trunc.img main.py", 1, "trunc.img"),
        ("romfs info app", 1, "app: is a directory"),
        ("romfs cat app.img nope.txt", 1, "nope.txt: no such file"),
        ("romfs cat app.img lib", 1, "lib: is a directory"),
        ("romfs ls app.img lib/nope", 1, "lib/nope: no such file"),
        ("romfs extract junk.img out", 1, "junk.img"),
        ("romfs extract app.img exists", 1, "exists/main.py: already exists"),
        ("romfs extract app.img afile", 1, "afile"),
        ("romfs build missing -o x.img", 1, "missing: No such file"),
        ("romfs build afile -o x.img", 1, "afile: not a directory"),
        ("romfs build app -o afile/x.img --no-mpy", 1, "afile/x.img: Not a directory"),
        ("romfs build app -o nodir/x.img", 1, "nodir/x.img"),
        ("romfs build app -o app/x.img", 1, "app/x.img is inside"),
        ("romfs build app -o x.img --layout mpremote --label a --align 8", 2, "--align, --label only apply"),
        ("romfs build app -o x.img --no-mpy --max-size 100", 1, "x.img: image is"),
        ("romfs build app -o x.img --exclude a[", 2, "\"a[\""),
        ("romfs build app -o x.img --max-size lots", 2, "lots"),
        ("romfs build app -o x.img --frob", 2, "--frob"),
        ("romfs mount junk.img mnt", 1, "junk.img: not a ROMFS image"),
        ("romfs mount trunc.img mnt", 1, "trunc.img: not a ROMFS image"),
        ("romfs mount app.img nomnt", 1, "mountpoint nomnt: does not exist"),
        ("romfs mount app.img afile", 1, "mountpoint afile: is not a directory"),
        ("romfs mount -o bogus app.img mnt", 2, "unknown option \"bogus\""),
        ("romfs mount -o fmode=9 app.img mnt", 2, "fmode: \"9\" is not an octal mode"),
        ("romfs umount mnt", 1, "mnt: nothing is mounted there"),
        ("romfs keygen --out key", 1, "key.pem: already exists"),
        ("romfs build app -o x.img --sign key.pub.pem --product p --generation 1", 1, "key.pub.pem: a public key; signing needs the private key"),
        ("romfs build app -o x.img --sign nokey.pem --product p --generation 1", 1, "nokey.pem: No such file"),
        ("romfs build app -o x.img --sign key.pem", 2, "--product <NAME>"),
        ("romfs build app -o x.img --sign key.pem --product p --generation 1 --no-checksum", 2, "'--sign <KEY>' cannot be used with '--no-checksum'"),
        ("romfs build app -o x.img --sign key.pem --product p --generation 1 --layout mpremote", 2, "--generation, --product, --sign only apply to the default layout"),
        ("romfs sign junk.img --key key.pem --product p --generation 1", 1, "junk.img: not a ROMFS image"),
        ("romfs sign missing.img --key key.pem", 1, "missing.img: No such file"),
        ("romfs sign app.img --key key.pem --generation 1", 1, "app.img: no product to sign for"),
        ("romfs sign app.img --key afile --product p --generation 1", 1, "afile: not an Ed25519 key"),
        ("romfs verify --key nokey.pub.pem app.img", 1, "nokey.pub.pem: No such file"),
        ("romfs-mount junk.img mnt", 1, "junk.img: not a ROMFS image"),
        ("romfs-mount short.img mnt", 1, "short.img: not a ROMFS image"),
        ("romfs-mount missing.img mnt", 1, "cannot read image missing.img"),
        ("romfs-mount app mnt", 1, "cannot read image app: is a directory"),
        ("romfs-mount -u mnt", 1, "mnt: nothing is mounted there"),
        ("romfs-mount --uid x app.img mnt", 2, "'x' for '--uid <UID>'"),
        ("romfs-mount --threads 0 app.img mnt", 2, "\"0\" is not a thread count"),
        ("romfs-mount app.img", 2, "<MOUNTPOINT>"),
        ("romfs-mount -u mnt app.img", 2, "'--unmount' cannot be used"),
    ];
    for &(context, code, names) in cases {
        let mut words = context.split(' ');
        let program = words.next().unwrap();
        let mut cmd = if program == "romfs" {
            romfs()
        } else {
            romfs_mount()
        };
        let stderr = fails(cmd.current_dir(t.path()).args(words), code, names);
        assert!(
            stderr.starts_with(&format!("{program}: error: ")),
            "{context}: {stderr}"
        );
        // clap's usage hint follows a usage error after a blank line.
        let message = stderr.split("\n\n").next().unwrap_or_default();
        if let Some(part) = repeated_part(message, 12) {
            panic!("{context}: {part:?} is said twice in: {message}");
        }
    }
    assert!(!t.path().join("x.img").exists());
    assert_eq!(fs::read(t.path().join("exists/main.py")).unwrap(), b"mine");
}

#[test]
fn corrupt_images_never_panic() {
    let t = tempfile::tempdir().unwrap();
    let img = built(t.path());
    let good = fs::read(&img).unwrap();
    let bad = t.path().join("bad.img");
    let mut variants: Vec<Vec<u8>> = Vec::new();
    for cut in [3, 4, 5, 9, good.len() / 2, good.len() - 1] {
        variants.push(good[..cut].to_vec());
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        let mut v = good.clone();
        for _ in 0..(1 + i % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = (x as usize) % v.len();
            v[pos] = (x >> 32) as u8;
        }
        variants.push(v);
    }
    for v in variants {
        fs::write(&bad, &v).unwrap();
        for args in [
            &["ls", "-l"][..],
            &["ls", "--json", "lib"],
            &["tree"],
            &["info", "--json"],
            &["info"],
            &["verify"],
            &["cat", "lib/helper.py"],
        ] {
            let out = romfs()
                .arg(args[0])
                .arg(&bad)
                .args(&args[1..])
                .output()
                .unwrap();
            let code = out.status.code();
            assert!(
                code == Some(0) || code == Some(1),
                "{args:?} exit {code:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
        }
        let dest = t.path().join("x");
        let out = romfs()
            .arg("extract")
            .arg(&bad)
            .arg(&dest)
            .arg("--force")
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0) | Some(1)));
    }
}
