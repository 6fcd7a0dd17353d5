//! Host throughput of each CRC-32 implementation (see `src/crc32.rs`):
//! `cargo run --release -p romfs-format --example crc32_speed`.
//! Prints MiB/s, the median of several passes over 4 MiB, for crc32fast
//! (with run-time CPU feature detection, as `std` builds use it) and the
//! three firmware implementations, side by side in one run.

use std::time::Instant;

use romfs_format::crc32;

type Update<'a> = &'a dyn Fn(u32, &[u8]) -> u32;

fn main() {
    let data: Vec<u8> = (0u32..4 << 20)
        .map(|i| (i.wrapping_mul(0x9E37_79B1) >> 24) as u8)
        .collect();
    let fast = |crc: u32, bytes: &[u8]| {
        let mut h = crc32fast::Hasher::new_with_initial(crc);
        h.update(bytes);
        h.finalize()
    };
    let impls: [(&str, Update); 4] = [
        ("crc32fast", &fast),
        ("table", &crc32::update_table),
        ("small-table", &crc32::update_small_table),
        ("table-free", &crc32::update_table_free),
    ];
    let want = crc32fast::hash(&data);
    println!("| implementation | MiB/s |");
    println!("|---|---|");
    for (name, update) in impls {
        let mut rates = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let crc = update(0, std::hint::black_box(&data));
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(crc, want, "{name}");
            rates.push(data.len() as f64 / (1 << 20) as f64 / seconds);
        }
        rates.sort_by(f64::total_cmp);
        println!("| {name} | {:.0} |", rates[rates.len() / 2]);
    }
}
