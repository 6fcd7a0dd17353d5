//! Benchmarks for romfs-embedded (run by `bench/embedded/run.sh`):
//! lookup cost in both modes, update cost (erases, writes, bytes) of full
//! and one-file updates in A/B and single-slot modes, on the simulated NOR.

use std::time::Instant;

use romfs_embedded::mapped::MappedFs;
use romfs_embedded::sim::SimFlash;
use romfs_embedded::slots::{AbLayout, Verify};
use romfs_embedded::update::{Report, Updater};
use romfs_embedded::{FlashFs, Region};
use romfs_format::write::{MemoryTree, MetadataSpec, Options};

const E: usize = 4096;
type Flash = SimFlash<1, 4, E>;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// (paths, image): `files` files, in `dirs` directories (0 = all at root).
fn tree_image(files: usize, dirs: usize, seed: u64) -> (Vec<String>, Vec<u8>) {
    let mut rng = Rng(seed);
    let mut tree = MemoryTree::new();
    let mut paths = Vec::new();
    let dir_nodes: Vec<_> = (0..dirs)
        .map(|d| {
            tree.add_dir(tree.root(), format!("d{d:03}").as_bytes())
                .unwrap()
        })
        .collect();
    for i in 0..files {
        let name = format!("f{i:05}.mpy");
        let len = 64 + (rng.next() % 192) as usize;
        let data = rng.bytes(len);
        if dirs == 0 {
            tree.add_file(tree.root(), name.as_bytes(), data).unwrap();
            paths.push(name);
        } else {
            let d = i % dirs;
            tree.add_file(dir_nodes[d], name.as_bytes(), data).unwrap();
            paths.push(format!("d{d:03}/{name}"));
        }
    }
    (paths, tree.build(&Options::default()).unwrap())
}

fn lookups(label: &str, files: usize, dirs: usize) {
    let (paths, img) = tree_image(files, dirs, 1);
    // Stored order is sorted, so first/middle/last by name.
    let mut sorted = paths.clone();
    sorted.sort();
    let picks = [
        ("first", &sorted[0]),
        ("middle", &sorted[sorted.len() / 2]),
        ("last", &sorted[sorted.len() - 1]),
    ];
    println!(
        "\n### Lookup: {label} ({files} files, {dirs} dirs, image {} bytes)\n",
        img.len()
    );
    println!("| mode | path | time/lookup | flash reads | bytes read |");
    println!("|---|---|---|---|---|");
    let fs = MappedFs::mount(&img).unwrap();
    for (which, p) in picks {
        let iters = 2000;
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(fs.open(std::hint::black_box(p.as_bytes())).unwrap());
        }
        let ns = t.elapsed().as_nanos() / iters;
        println!("| mapped | {which} `{p}` | {ns} ns | 0 | 0 |");
    }
    let cap = img.len().div_ceil(E) * E;
    let mut sim = Flash::new(cap);
    sim.load(0, &img);
    macro_rules! streaming {
        ($n:literal) => {{
            let mut fs = FlashFs::<_, $n>::mount(&mut sim).unwrap();
            for (which, p) in picks {
                fs.invalidate_cache();
                fs.reset_stats();
                let t = Instant::now();
                let node = fs.lookup(p.as_bytes()).unwrap().unwrap();
                let ns = t.elapsed().as_nanos();
                let s = fs.stats();
                assert!(node.is_file());
                println!(
                    "| flash, {}-byte buffer | {which} `{p}` | {ns} ns (sim) | {} | {} |",
                    $n, s.reads, s.bytes
                );
            }
        }};
    }
    streaming!(64);
    streaming!(256);
    streaming!(4096);
}

fn app(seed: u64, kib: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut files = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < kib * 1024 {
        let len = 500 + (rng.next() % 6000) as usize;
        files.push((format!("lib/m{i:03}.mpy"), rng.bytes(len)));
        size += len;
        i += 1;
    }
    files.push(("config.py".into(), b"VERSION = 1\n".to_vec()));
    files
}

fn build(files: &[(String, Vec<u8>)], generation: u64) -> Vec<u8> {
    let mut tree = MemoryTree::new();
    let lib = tree.add_dir(tree.root(), b"lib").unwrap();
    for (p, d) in files {
        match p.strip_prefix("lib/") {
            Some(name) => tree.add_file(lib, name.as_bytes(), d.clone()).unwrap(),
            None => tree.add_file(tree.root(), p.as_bytes(), d.clone()).unwrap(),
        };
    }
    let opts = Options {
        metadata: Some(MetadataSpec {
            generation: Some(generation),
            ..MetadataSpec::default()
        }),
        ..Options::default()
    };
    tree.build(&opts).unwrap()
}

const SLOT: u32 = 512 * 1024;

fn ab(flash: &mut Flash, img: &[u8]) -> Report {
    let layout = AbLayout::new(Region::new(0, SLOT), Region::new(SLOT, SLOT), E, 4).unwrap();
    let mut buf = vec![0u8; E];
    let mut up = Updater::begin_ab(flash, layout, Verify::CommitOnly, &mut buf).unwrap();
    for c in img.chunks(1460) {
        up.write(c).unwrap();
    }
    up.finish(None).unwrap()
}

fn single(flash: &mut Flash, img: &[u8]) -> Report {
    let mut buf = vec![0u8; 2 * E];
    let mut up = Updater::begin_single(flash, Region::new(0, SLOT), &mut buf).unwrap();
    for c in img.chunks(1460) {
        up.write(c).unwrap();
    }
    up.finish(None).unwrap()
}

fn row(label: &str, img: &[u8], r: &Report, t: std::time::Duration) {
    let s = r.stats;
    println!(
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms |",
        img.len(),
        img.len().div_ceil(E),
        s.sectors_programmed,
        s.sectors_skipped,
        s.erases,
        s.writes,
        s.bytes_written,
        s.bytes_read,
        t.as_secs_f64() * 1000.0
    );
}

fn updates() {
    let files = app(7, 200);
    let v1 = build(&files, 1);
    let other = build(&app(8, 200), 1);
    let mut small = files.clone();
    let last = small.len() - 1;
    small[last].1 = b"VERSION = 2\n".to_vec(); // same length
    let v2_same_gen = build(&small, 1);
    let v2 = build(&small, 2);
    let mut grown = files.clone();
    grown[last].1 = b"VERSION = 2 # grown\n".to_vec();
    let v2_grown = build(&grown, 2);
    let mut mid = files.clone();
    let m = mid.len() / 2;
    mid[m].1[10] ^= 0xff; // one byte of a file in the middle of the image
    let v2_mid = build(&mid, 1);

    println!(
        "\n### Update cost (4 KiB sectors, 4-byte writes, image ≈ 200 KiB, chunks of 1460 bytes)\n"
    );
    println!("| case | image bytes | image sectors | sectors programmed | sectors skipped | erases | writes | bytes written | bytes read | time (sim, release) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let time = |f: &mut dyn FnMut() -> Report| {
        let t = Instant::now();
        let r = f();
        (r, t.elapsed())
    };
    // A/B.
    let mut flash = Flash::new(2 * SLOT as usize);
    let (r, t) = time(&mut || ab(&mut flash, &v1));
    row("A/B: first install into blank flash", &v1, &r, t);
    let (r, t) = time(&mut || ab(&mut flash, &other));
    row(
        "A/B: full update (all files differ) into blank slot B",
        &other,
        &r,
        t,
    );
    let (r, t) = time(&mut || ab(&mut flash, &other));
    row(
        "A/B: full update into A (holding a different image)",
        &other,
        &r,
        t,
    );
    // Both slots hold v1 for the one-file cases.
    let mut f2 = Flash::new(2 * SLOT as usize);
    ab(&mut f2, &v1);
    ab(&mut f2, &v1);
    let base = f2.clone();
    for (label, img) in [
        (
            "A/B: one small file changed, same size, same metadata",
            &v2_same_gen,
        ),
        ("A/B: one small file changed + generation bump", &v2),
        ("A/B: one byte of a mid-image file changed", &v2_mid),
        (
            "A/B: one small file grows by 8 bytes (later data shifts)",
            &v2_grown,
        ),
        ("A/B: identical image re-sent", &v1),
    ] {
        let mut f = base.clone();
        let (r, t) = time(&mut || ab(&mut f, img));
        row(label, img, &r, t);
    }
    // Single slot.
    let mut s = Flash::new(SLOT as usize);
    let (r, t) = time(&mut || single(&mut s, &v1));
    row("single: first install into blank flash", &v1, &r, t);
    let sbase = s.clone();
    for (label, img) in [
        ("single: full update (all files differ)", &other),
        (
            "single: one small file changed, same size, same metadata",
            &v2_same_gen,
        ),
        ("single: one small file changed + generation bump", &v2),
        ("single: one byte of a mid-image file changed", &v2_mid),
        (
            "single: one small file grows by 8 bytes (later data shifts)",
            &v2_grown,
        ),
        ("single: identical image re-sent", &v1),
    ] {
        let mut f = sbase.clone();
        let (r, t) = time(&mut || single(&mut f, img));
        row(label, img, &r, t);
    }
}

fn main() {
    lookups("100 files, flat", 100, 0);
    lookups("10,000 files, flat", 10_000, 0);
    lookups("10,000 files in 100 directories", 10_000, 100);
    updates();
}
