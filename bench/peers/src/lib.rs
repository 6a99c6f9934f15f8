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
