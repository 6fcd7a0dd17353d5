//! `romfs publish` then `romfs_ota.update` on the real unix port, writing a
//! file-backed block device (micropython/tests/ota_device.py), against a
//! local HTTP server (ota/server.py) that counts the bytes it serves and can
//! ignore Range, die mid-transfer, hang or send garbage.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use romfs_testkit::{romfs_bin, Rng};

use super::support::*;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(root: &Path) -> Server {
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ota/server.py"))
            .arg(root)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 for the test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Server { child, port }
    }

    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    }

    fn config(&self, query: &str) {
        assert_eq!(self.get(&format!("/_config?{query}")), "ok");
    }

    /// Body bytes served since the last `reset=1`.
    fn bytes_served(&self) -> u64 {
        let stats: serde_json::Value = serde_json::from_str(&self.get("/_stats")).unwrap();
        stats["bytes"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app folder of `modules` data modules (stored as .py, --no-mpy).
fn app(dir: &Path, seed: u64, modules: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng(seed);
    for i in 0..modules {
        let len = 1500 + rng.below(4000) as usize;
        let text: String = (0..len)
            .map(|_| b"abcdefgh =\n"[rng.below(11) as usize] as char)
            .collect();
        std::fs::write(dir.join(format!("m{i}.py")), text).unwrap();
    }
}

fn publish(src: &Path, out: &Path, generation: u64, product: &str, key: Option<&Path>) -> Vec<u8> {
    publish_with(src, out, generation, product, key, &["-q"]).0
}

/// `romfs publish` with `extra` arguments: the image the folder's manifest
/// names, and what the command printed.
fn publish_with(
    src: &Path,
    out: &Path,
    generation: u64,
    product: &str,
    key: Option<&Path>,
    extra: &[&str],
) -> (Vec<u8>, String) {
    let mut cmd = Command::new(romfs_bin());
    cmd.arg("publish")
        .arg(src)
        .arg("-o")
        .arg(out)
        .arg("--no-mpy")
        .args(extra);
    cmd.args([
        "--generation",
        &generation.to_string(),
        "--product",
        product,
    ]);
    if let Some(k) = key {
        cmd.arg("--sign").arg(k);
    }
    let out_ = cmd.output().unwrap();
    romfs_testkit::assert_succeeded(&out_, "romfs publish");
    let printed =
        String::from_utf8_lossy(&out_.stdout).into_owned() + &String::from_utf8_lossy(&out_.stderr);
    (published(out).1, printed)
}

/// 4 KiB blocks of `new` that differ from `old` at the same offset.
fn blocks_differing(old: &[u8], new: &[u8]) -> usize {
    new.chunks(4096)
        .enumerate()
        .filter(|(i, b)| old.get(i * 4096..i * 4096 + b.len()) != Some(*b))
        .count()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: Server,
    v1: Vec<u8>,
    v2: Vec<u8>,
    public_key: [u8; 32],
}

/// v1 and v2 (one module changed, same length) signed, generations 1 and 2,
/// product "board"; "foreign" (another product), "forged" (v2's manifest
/// signed by another key) and "old" (generation 1 again, other bytes).
fn fixture() -> Option<Fixture> {
    micropython()?;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let www = root.join("www");
    let key = romfs_sign::SigningKey::from_bytes(&[42; 32]);
    let other = romfs_sign::SigningKey::from_bytes(&[43; 32]);
    std::fs::write(root.join("key.pem"), key.to_pem().as_bytes()).unwrap();
    std::fs::write(root.join("other.pem"), other.to_pem().as_bytes()).unwrap();
    app(&root.join("app1"), 1, 60);
    app(&root.join("app2"), 1, 60);
    // One module changed in place (same length).
    let m = root.join("app2/m30.py");
    let mut text = std::fs::read(&m).unwrap();
    text[10] = b'Z';
    std::fs::write(&m, text).unwrap();
    let k = Some(root.join("key.pem"));
    let v1 = publish(
        &root.join("app1"),
        &www.join("v1"),
        1,
        "board",
        k.as_deref(),
    );
    let v2 = publish(
        &root.join("app2"),
        &www.join("v2"),
        2,
        "board",
        k.as_deref(),
    );
    publish(
        &root.join("app2"),
        &www.join("foreign"),
        3,
        "other",
        k.as_deref(),
    );
    publish(
        &root.join("app2"),
        &www.join("forged"),
        3,
        "board",
        Some(&root.join("other.pem")),
    );
    app(&root.join("app3"), 3, 10);
    publish(
        &root.join("app3"),
        &www.join("old"),
        1,
        "board",
        k.as_deref(),
    );
    let server = Server::start(&www);
    Some(Fixture {
        _dir: dir,
        root,
        server,
        v1,
        v2,
        public_key: key.public_key().to_bytes(),
    })
}

impl Fixture {
    /// Run `body` in MicroPython with `d` (the device), `KEY`, `url(name)`
    /// and `update(name, **kw)` defined; returns stdout.
    fn run(&self, body: &str) -> String {
        let key: String = self
            .public_key
            .iter()
            .map(|b| format!("\\x{b:02x}"))
            .collect();
        let script = format!(
            r#"
import sys
sys.path.insert(0, {ota:?})
sys.path.insert(0, {tests:?})
import romfs_ota, ota_device
romfs_ota.TIMEOUT = 2
KEY = b"{key}"
STATE = {state:?}
PART = {part:?}
def url(name):
    return "http://127.0.0.1:{port}/%s/ota.manifest" % name
d = ota_device.FileDevice(PART)
def update(name, **kw):
    kw.setdefault("key", KEY)
    kw.setdefault("product", "board")
    return romfs_ota.update(url(name), device=d, state=STATE, **kw)
def show(r):
    print("STATS", r["fetched"], r["copied"], r["skipped"], r["written"], r["downloaded"], r["up_to_date"])
{body}
print("DONE", d.overprogrammed)
"#,
            ota = ota_dir().to_str().unwrap(),
            tests = ota_dir().parent().unwrap().join("tests").to_str().unwrap(),
            state = self.root.join("state").to_str().unwrap(),
            part = self.root.join("part.bin").to_str().unwrap(),
            port = self.server.port,
        );
        let path = self.root.join("script.py");
        std::fs::write(&path, script).unwrap();
        let out = Command::new(micropython().unwrap())
            .args(["-X", "heapsize=32M"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains("DONE 0"),
            "micropython: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn partition(&self) -> Vec<u8> {
        std::fs::read(self.root.join("part.bin")).unwrap()
    }

    fn holds(&self, image: &[u8]) -> bool {
        self.partition()[..image.len()] == *image
    }
}

fn stats(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("STATS "))
        .map(String::from)
        .collect()
}

/// The first `n` numbers of the first update's STATS line (blocks fetched,
/// blocks copied, ...).
fn first_counts(out: &str, n: usize) -> Vec<usize> {
    stats(out)[0]
        .split(' ')
        .take(n)
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn ota_first_update_then_one_module_then_unchanged() {
    let Some(f) = fixture() else { return };
    let out = f.run("show(update('v1'))");
    assert!(f.holds(&f.v1));
    let blocks = f.v1.len().div_ceil(4096);
    assert_eq!(
        stats(&out)[0].split(' ').next().unwrap(),
        blocks.to_string(),
        "{out}"
    );

    f.server.config("reset=1");
    let out = f.run("show(update('v2'))");
    assert!(f.holds(&f.v2));
    let served = f.server.bytes_served();
    let manifest = std::fs::metadata(f.root.join("www/v2/ota.manifest"))
        .unwrap()
        .len();
    // One module changed in place: its block, the first block (the
    // metadata holds the generation) and the last (the CRC-32 record). The
    // server sends the manifest, the one-byte Range probe and those three.
    let s = stats(&out);
    let fields: Vec<&str> = s[0].split(' ').collect();
    assert_eq!(fields[0], "3", "three blocks fetched: {out}");
    assert!(
        served <= manifest + 1 + 3 * 4096,
        "served {served} bytes: {out}"
    );

    f.server.config("reset=1");
    let out = f.run("show(update('v2'))");
    assert_eq!(
        f.server.bytes_served(),
        manifest,
        "only the manifest: {out}"
    );
    assert!(stats(&out)[0].ends_with("True"), "{out}");
    assert!(f.holds(&f.v2));
}

#[test]
fn ota_refuses_forged_foreign_old_and_unsigned_with_the_device_unchanged() {
    let Some(f) = fixture() else { return };
    f.run("update('v2')");
    let before = f.partition();
    let out = f.run(
        r#"
for name, kw in (("forged", {}), ("foreign", {}), ("old", {}), ("v1", {})):
    try:
        update(name, **kw)
        print("ACCEPTED", name)
    except romfs_ota.OtaError as e:
        print("REFUSED", name, e)
try:
    romfs_ota.update(url("v2"), device=d, state=STATE, key=b"\x01" * 32)
    print("ACCEPTED wrong key")
except romfs_ota.OtaError as e:
    print("REFUSED wrong key", e)
"#,
    );
    assert!(!out.contains("ACCEPTED"), "{out}");
    assert!(out.contains("REFUSED forged bad signature"), "{out}");
    assert!(
        out.contains("REFUSED foreign the manifest is for product 'other'"),
        "{out}"
    );
    assert!(out.contains("REFUSED old generation 1 is older"), "{out}");
    assert_eq!(f.partition(), before, "the device is unchanged");
}

#[test]
fn ota_server_dies_mid_update_then_resume_fetches_only_the_rest() {
    let Some(f) = fixture() else { return };
    let blocks = f.v1.len().div_ceil(4096);
    // The server dies after 60 KiB of the image; the device is left
    // mounting nothing, and a rerun completes without fetching again what
    // was written.
    f.server.config("die_after=62000");
    let out = f.run(
        r#"
try:
    update('v1')
    print("COMPLETED")
except romfs_ota.OtaError as e:
    print("FAILED", e)
print("MOUNTS", ota_device.mounts(d.contents()) is not None)
"#,
    );
    assert!(
        out.contains("FAILED") && out.contains("MOUNTS False"),
        "{out}"
    );
    f.server.config("reset=1");
    let out = f.run("show(update('v1'))");
    assert!(f.holds(&f.v1));
    let fetched = first_counts(&out, 1)[0];
    assert!(
        fetched < blocks - 10,
        "resume fetched {fetched} of {blocks}: {out}"
    );
    assert!(f.server.bytes_served() < f.v1.len() as u64 - 40_000);
}

/// Update to `v1`; on failure print `FAILED` and the error.
const UPDATE_V1_OR_SAY_WHY: &str = r#"
try:
    update('v1')
except romfs_ota.OtaError as e:
    print("FAILED", e)
"#;

#[test]
fn ota_server_without_range_streams_once_and_bad_servers_fail_clearly() {
    let Some(f) = fixture() else { return };
    f.run("update('v1')");
    f.server.config("range=0&reset=1");
    let out = f.run("show(update('v2'))");
    assert!(f.holds(&f.v2), "{out}");
    f.server.config("range=1&garbage=1");
    let out = f.run(UPDATE_V1_OR_SAY_WHY);
    assert!(
        out.contains("FAILED") && out.contains("not an HTTP answer"),
        "{out}"
    );
    f.server.config("garbage=0&slow=1");
    let out = f.run(UPDATE_V1_OR_SAY_WHY);
    assert!(out.contains("FAILED"), "a silent server times out: {out}");
    assert!(f.holds(&f.v2), "nothing written");
}

/// A power cut after every possible number of flash operations: each cut
/// leaves a device that mounts nothing or the new image (the old one only
/// when the cut came before the first write); a rerun completes. Once for
/// a one-module update, once for a full update over another image (every
/// third operation).
#[test]
fn ota_power_cut_at_every_write_then_resume() {
    let Some(f) = fixture() else { return };
    f.run("update('v1')");
    std::fs::write(f.root.join("v1.bin"), f.partition()).unwrap();
    std::fs::write(f.root.join("v2.bin"), &f.v2).unwrap();
    let old = std::fs::read_dir(f.root.join("www/old"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "romfs"))
        .unwrap();
    for (release, target, step, min_cuts) in
        [("v2", f.root.join("v2.bin"), 1, 6), ("old", old, 3, 5)]
    {
        let n2 = std::fs::metadata(&target).unwrap().len();
        let out = f.run(&format!(
            r#"
import os
def fresh():
    with open({v1:?}, "rb") as a, open(PART, "wb") as b:
        b.write(a.read())
    try:
        os.remove(STATE)
    except OSError:
        pass
want = open({target:?}, "rb").read()
base = open({v1:?}, "rb").read()
n = 0
while True:
    d.close()
    fresh()
    d = ota_device.FileDevice(PART, cut_after=n)
    try:
        update({release:?})
        print("NOCUT", n)
        break
    except ota_device.PowerCut:
        pass
    img = ota_device.mounts(d.contents())
    old = n == 0 and img == base
    if img is not None and img[:{n2}] != want and not old:
        print("BAD", n)
    d.cut_after = None
    update({release:?})
    if d.contents()[:{n2}] != want:
        print("NOT RESUMED", n)
    n += {step}
print("CUTS", n // {step})
"#,
            v1 = f.root.join("v1.bin").to_str().unwrap(),
            target = target.to_str().unwrap(),
        ));
        assert!(cuts_survived(&out) >= min_cuts, "{release}: {out}");
    }
}

/// How many power cuts a cut loop's output counts (`CUTS n`), once it is
/// checked that none left a partition mounting anything but the old or new
/// image (`BAD`) and that every rerun completed (`NOT RESUMED`).
fn cuts_survived(out: &str) -> usize {
    assert!(
        !out.contains("BAD") && !out.contains("NOT RESUMED"),
        "{out}"
    );
    out.lines()
        .find_map(|l| l.strip_prefix("CUTS "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Erase units larger than `romfs_ota.RAM_UNIT` (64 KiB here; stm32
/// internal flash has 128 KiB sectors) are written block by block, holding
/// only the header's block in RAM: a first update, then a power cut at
/// every other write of the next one, each leaving a partition that mounts
/// nothing or the new image, and a rerun that completes.
#[test]
fn ota_large_erase_units_are_written_block_by_block_and_survive_cuts() {
    let Some(f) = fixture() else { return };
    std::fs::write(f.root.join("v2.bin"), &f.v2).unwrap();
    let out = f.run(&format!(
        r#"
import os
BIG = PART + ".big"
def device(cut=None):
    global d
    d.close()
    d = ota_device.FileDevice(BIG, bs=65536, cut_after=cut)
def floor(n):
    with open(STATE, "w") as s:
        s.write(str(n))
floor(0)
device()
show(update("v1"))
base = d.contents()
want = open({v2:?}, "rb").read()
n = 0
while True:
    with open(BIG, "wb") as b:
        b.write(base)
    floor(1)
    device(n)
    try:
        update("v2")
        print("NOCUT", n)
        break
    except ota_device.PowerCut:
        pass
    img = ota_device.mounts(d.contents())
    old = n == 0 and img == base
    if img is not None and img[:len(want)] != want and not old:
        print("BAD", n)
    d.cut_after = None
    show(update("v2"))
    if d.contents()[:len(want)] != want:
        print("NOT RESUMED", n)
    n += 2
print("CUTS", n // 2)
"#,
        v2 = f.root.join("v2.bin").to_str().unwrap(),
    ));
    assert!(cuts_survived(&out) >= 5, "{out}");
    // The first update wrote whole 64 KiB units: fewer units than blocks.
    let first: Vec<usize> = first_counts(&out, 4);
    assert_eq!(first[3], f.v1.len().div_ceil(65536), "{out}");
}

/// Blocks the partition holds at another offset are copied on the device,
/// not fetched: 4 KiB-aligned data files that a new file before them moves
/// by whole blocks.
#[test]
fn ota_copies_blocks_the_partition_holds_elsewhere() {
    let Some(f) = fixture() else { return };
    let app_dir = f.root.join("app-moved");
    std::fs::create_dir_all(&app_dir).unwrap();
    let mut rng = Rng(11);
    std::fs::write(app_dir.join("a.bin"), rng.bytes(3 * 4096)).unwrap();
    std::fs::write(app_dir.join("b.bin"), rng.bytes(2 * 4096)).unwrap();
    let key = f.root.join("key.pem");
    let aligned = ["-q", "--align-rule", "*.bin=4096"];
    let www = f.root.join("www");
    let (v1, _) = publish_with(&app_dir, &www.join("c1"), 1, "board", Some(&key), &aligned);
    std::fs::write(app_dir.join("0.bin"), rng.bytes(4096)).unwrap();
    let (v2, _) = publish_with(&app_dir, &www.join("c2"), 2, "board", Some(&key), &aligned);
    assert_ne!(blocks_differing(&v1, &v2), 0);
    let out = f.run("update('c1')\nshow(update('c2'))");
    assert!(f.holds(&v2), "{out}");
    let fields: Vec<usize> = first_counts(&out, 2);
    assert!(fields[1] >= 5, "the moved files' blocks are copied: {out}");
}

/// `update_from` over a stream (manifest then image, as a UART or BLE link
/// would carry them): a full update, then a one-module one that writes only
/// the changed units.
#[test]
fn ota_update_from_a_stream() {
    let Some(f) = fixture() else { return };
    let mut stream1 = std::fs::read(f.root.join("www/v1/ota.manifest")).unwrap();
    stream1.extend_from_slice(&f.v1);
    let mut stream2 = std::fs::read(f.root.join("www/v2/ota.manifest")).unwrap();
    stream2.extend_from_slice(&f.v2);
    std::fs::write(f.root.join("s1"), stream1).unwrap();
    std::fs::write(f.root.join("s2"), stream2).unwrap();
    let out = f.run(&format!(
        r#"
for name in ({s1:?}, {s2:?}):
    with open(name, "rb") as s:
        r = romfs_ota.update_from(s.read, key=KEY, product="board", device=d, state=STATE)
    show(r)
"#,
        s1 = f.root.join("s1").to_str().unwrap(),
        s2 = f.root.join("s2").to_str().unwrap(),
    ));
    assert!(f.holds(&f.v2), "{out}");
    let s = stats(&out);
    let written: Vec<usize> = s
        .iter()
        .map(|l| l.split(' ').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(written[0], f.v1.len().div_ceil(4096), "{out}");
    assert_eq!(written[1], 3, "only the changed units: {out}");
}

/// The package compiles to .mpy with mpy-cross (what `mip` installs on
/// boards with little RAM), and the compiled modules run the verifier.
#[test]
fn ota_package_compiles_with_mpy_cross() {
    let Some(mpy_cross) = romfs_testkit::venv_tool("mpy-cross") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for module in ["romfs_ota", "romfs_ed25519", "romfs_flash"] {
        let out = Command::new(&mpy_cross)
            .arg(ota_dir().join(format!("{module}.py")))
            .arg("-o")
            .arg(dir.path().join(format!("{module}.mpy")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{module}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let script = dir.path().join("t.py");
    std::fs::write(
        &script,
        format!(
            "import sys\nsys.path.insert(0, {:?})\nimport romfs_ota, romfs_ed25519\nprint(romfs_ed25519.__file__.endswith('.mpy'), romfs_ed25519.sha512(b'abc').hex()[:16])\n",
            dir.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(micropython().unwrap())
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True ddaf35a193617aba"
    );
}

/// `romfs publish` into a folder that holds a release lays the new one out
/// against it (the stable layout): one grown module changes a few blocks
/// where a fresh layout (`--fresh`) shifts most of the image; the image
/// verifies, and a device holding the old release fetches only those
/// blocks.
#[test]
fn publish_builds_on_the_previous_release_and_the_device_fetches_little() {
    let Some(f) = fixture() else { return };
    let www = f.root.join("www");
    let app_dir = f.root.join("app-stable");
    app(&app_dir, 7, 60);
    let key = f.root.join("key.pem");
    let v1 = publish(&app_dir, &www.join("rel"), 5, "board", Some(&key));
    let module = app_dir.join("m20.py");
    let mut text = std::fs::read(&module).unwrap();
    text.extend_from_slice(&[b'#'; 1024]);
    std::fs::write(&module, text).unwrap();
    let fresh_dir = f.root.join("fresh");
    std::fs::create_dir(&fresh_dir).unwrap();
    for e in std::fs::read_dir(www.join("rel")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, fresh_dir.join(p.file_name().unwrap())).unwrap();
    }
    let (v2, printed) = publish_with(&app_dir, &www.join("rel"), 6, "board", Some(&key), &[]);
    let (v2_fresh, _) = publish_with(&app_dir, &fresh_dir, 6, "board", Some(&key), &["--fresh"]);
    assert!(
        printed.contains("laid out against the previous publication"),
        "{printed}"
    );
    let stable = blocks_differing(&v1, &v2);
    let fresh = blocks_differing(&v1, &v2_fresh);
    // The module's block, the block after it, the tree's and the last block (the checksum).
    assert!(stable <= 4, "{stable} blocks changed: {printed}");
    assert!(fresh > 4 * stable, "fresh {fresh}, stable {stable}");
    assert!(
        printed.contains(&format!("rewrites {stable} blocks")),
        "{printed}"
    );
    let verify = Command::new(romfs_bin())
        .arg("verify")
        .arg(www.join("rel").join(format!("{}.romfs", hex8(&v2))))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // The device holds v1 (generation 5); the update fetches only the
    // changed blocks.
    let mut part = vec![0xffu8; 1 << 20];
    part[..v1.len()].copy_from_slice(&v1);
    std::fs::write(f.root.join("part.bin"), part).unwrap();
    std::fs::write(f.root.join("state"), "5").unwrap();
    f.server.config("reset=1");
    let out = f.run("show(update('rel'))");
    assert!(f.holds(&v2), "{out}");
    let fields: Vec<usize> = first_counts(&out, 4);
    let (fetched, copied) = (fields[0], fields[1]);
    assert!(fetched + copied <= stable, "{out}");
    let manifest = std::fs::metadata(www.join("rel/ota.manifest"))
        .unwrap()
        .len() as usize;
    let served = f.server.bytes_served() as usize;
    assert!(
        served <= manifest + 1 + fetched * 4096,
        "served {served} bytes: {out}"
    );
}

fn hex8(image: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(image)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A previous publication whose image does not match its manifest is no
/// base: `romfs publish` says so, naming the image, and lays the new one
/// out afresh.
#[test]
fn publish_with_a_damaged_previous_image_lays_out_afresh_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    app(&d.join("app"), 5, 5);
    let www = d.join("www");
    let v1 = publish(&d.join("app"), &www, 1, "p", None);
    let name = format!("{}.romfs", hex8(&v1));
    std::fs::write(www.join(&name), &v1[..100]).unwrap();
    let (_, printed) = publish_with(&d.join("app"), &www, 2, "p", None, &[]);
    assert!(
        printed.contains("laid out afresh, not against the previous publication")
            && printed.contains(&format!("{name}: does not match the SHA-256")),
        "{printed}"
    );
    assert!(!printed.contains("laid out against"), "{printed}");
}

/// `romfs publish`: the same inputs give the same bytes, from a folder or
/// from the image it built; a file that is not an image is refused, naming
/// it, with nothing written.
#[test]
fn publish_is_deterministic_and_refuses_non_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    app(&d.join("app"), 9, 5);
    let image = publish(&d.join("app"), &d.join("a"), 4, "p", None);
    publish(&d.join("app"), &d.join("b"), 4, "p", None);
    let manifest = std::fs::read(d.join("a/ota.manifest")).unwrap();
    assert_eq!(manifest, std::fs::read(d.join("b/ota.manifest")).unwrap());
    std::fs::write(d.join("app.img"), &image).unwrap();
    publish(&d.join("app.img"), &d.join("c"), 4, "p", None);
    assert_eq!(manifest, std::fs::read(d.join("c/ota.manifest")).unwrap());
    assert_eq!(&manifest[..8], b"ROMFSOTA");
    assert_eq!(manifest.len(), 192 + 8 * image.len().div_ceil(4096));

    std::fs::write(d.join("notes.txt"), "not an image").unwrap();
    let out = Command::new(romfs_bin())
        .args(["publish"])
        .arg(d.join("notes.txt"))
        .arg("-o")
        .arg(d.join("e"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("notes.txt: not a ROMFS image"), "{err}");
    assert!(!d.join("e").exists(), "nothing written");
}
