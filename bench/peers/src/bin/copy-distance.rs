//! `copy-distance`: how fast a 16 KiB copy runs, by how far its destination lies past its
//! source within a 4 KiB page.
//!
//! libc's `memcpy` copies this size with `rep movsb` on CPUs that do that fast, as the kernel
//! does between sockets and user memory. On AMD CPUs from Zen 3 on, it runs many times slower
//! when the destination lies a few bytes past the source (counted within a page), which decides
//! where the raw echoes put their buffers (`ws_bench_peers::mid_page`). Run it pinned to one
//! core: `taskset -c 0 bench/peers/target/release/copy-distance`.

use std::time::Instant;

/// Bytes per copy.
const LEN: usize = 16 * 1024;
/// Copies per measurement.
const REPS: u32 = 20_000;

fn main() {
    // Two regions, each starting on a page: the source at page offset 256, the destination at
    // 256 + distance.
    let a = vec![1u8; 64 * 1024];
    let mut b = vec![2u8; 64 * 1024];
    let page = |v: &Vec<u8>| (4096 - v.as_ptr() as usize % 4096) % 4096;
    let (pa, pb) = (page(&a), page(&b));
    println!("16 KiB copies, destination minus source within a page: GB/s");
    for distance in [-64i64, -16, 0, 4, 8, 16, 24, 31, 32, 48, 63, 64, 128, 2048] {
        let src = pa + 4096 + 256;
        let dst = (pb as i64 + 4096 + 256 + distance) as usize;
        let (from, to) = (&a[src..src + LEN], &mut b[dst..dst + LEN]);
        let start = Instant::now();
        for _ in 0..REPS {
            to.copy_from_slice(std::hint::black_box(from));
            std::hint::black_box(&mut *to);
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{distance:>6}: {:>6.1}",
            LEN as f64 * f64::from(REPS) / secs / 1e9
        );
    }
}
