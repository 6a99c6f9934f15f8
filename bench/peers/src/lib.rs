//! Shared helpers for the benchmark peer servers.

use std::net::SocketAddr;

/// Parses the single `ADDR` argument (`127.0.0.1:PORT`) every peer takes.
///
/// Only loopback addresses are accepted: these servers exist for local
/// benchmarks and must never listen on a routable interface.
pub fn addr_from_args(name: &str) -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let (Some(a), None) = (args.next(), args.next()) else {
        eprintln!("usage: {name} ADDR   (e.g. 127.0.0.1:9001)");
        std::process::exit(2);
    };
    let addr: SocketAddr = a.parse().unwrap_or_else(|e| {
        eprintln!("{name}: bad ADDR {a:?}: {e}");
        std::process::exit(2);
    });
    if !addr.ip().is_loopback() {
        eprintln!("{name}: refusing non-loopback address {addr}");
        std::process::exit(2);
    }
    addr
}

/// A zeroed buffer of `len` bytes that starts halfway into a 4 KiB page, inside `backing`.
///
/// On AMD CPUs with fast short `rep movsb` (Zen 3 on), which the kernel uses to copy between a
/// socket and user memory, a copy runs about 30 times slower when the destination lies 1 to 63
/// bytes past the source, counted within a page. The kernel's side of a loopback transfer
/// usually starts a few bytes into a page (a frame header past a fresh page fragment), so a
/// buffer at a page's start (glibc puts large ones 16 bytes in) can hit that on every message:
/// a raw echo read into one at offset 16 spent 1.38 times the CPU of one at offset 2048 with a
/// single client sending 16 KiB messages. Mid-page, the physical limit is not handicapped.
///
/// `RAW_ECHO_PAGE_OFFSET` (0 to 4095) places the buffer elsewhere, to measure that.
pub fn mid_page(backing: &mut Vec<u8>, len: usize) -> &mut [u8] {
    let offset = std::env::var("RAW_ECHO_PAGE_OFFSET")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2048)
        % 4096;
    *backing = vec![0u8; len + 4096];
    let start = (offset + 4096 - backing.as_ptr() as usize % 4096) % 4096;
    &mut backing[start..start + len]
}
