//! `raw-echo-threads ADDR`: plain TCP echo (no WebSocket framing), a thread per client.
//!
//! The physical limit of the thread-per-client model, as `raw-echo` is that of a single
//! event loop: the load generator's `--raw` mode sends the bytes of its WebSocket frames and
//! expects them back verbatim, and each client's thread blocks in `read`, writes back what it
//! read, and reads again. No protocol work at all, so what it costs above `raw-echo` is what
//! the model itself costs: a sleep and a wake-up, or a context switch, per message, and a
//! buffer and a stack per client. ws-std and tungstenite (thread-per-client servers) are
//! measured against it.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

/// Read buffer per client: as large as the biggest read the kernel hands over at once on
/// loopback, so a 16 KiB message is one read, as in `raw-echo`.
const BUF: usize = 64 * 1024;

fn main() -> io::Result<()> {
    let addr = ws_bench_peers::addr_from_args("raw-echo-threads");
    let listener = TcpListener::bind(addr)?;
    eprintln!("raw-echo-threads listening on {addr}");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                // Small stacks, as the echo needs next to none: 10,000 clients must not
                // reserve 20 GB of address space.
                if let Err(e) = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || client(stream))
                {
                    eprintln!("spawn: {e}");
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}

/// Echoes until the client closes or fails.
fn client(mut stream: TcpStream) {
    let mut backing = Vec::new();
    let buf = ws_bench_peers::mid_page(&mut backing, BUF);
    loop {
        let n = match stream.read(buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
