//! `raw-echo ADDR`: plain TCP echo (no WebSocket framing) on one mio thread.
//!
//! This is the physical limit of the loopback path for the benchmark: the
//! load generator's `--raw` mode sends exactly the bytes of its WebSocket
//! frames and expects them back verbatim, so the cost per message here is
//! pure syscall + copy cost with no protocol work at all.
//!
//! With `RAW_ECHO_READV` set it reads with `readv` into two slices (8 bytes, then the rest), as
//! a read of a frame's header into one buffer and its payload into another would: what a
//! vectored read costs next to a plain one (`scripts/bench-ab.sh`, the two side by side).

use std::io::{self, IoSliceMut, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back (only non-empty under backpressure).
    pending: Vec<u8>,
    /// WRITABLE is registered (only while `pending` is non-empty).
    want_write: bool,
}

fn main() -> io::Result<()> {
    let addr = ws_bench_peers::addr_from_args("raw-echo");
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut backing = Vec::new();
    let buf = ws_bench_peers::mid_page(&mut backing, 256 * 1024);
    let readv = std::env::var_os("RAW_ECHO_READV").is_some();
    eprintln!("raw-echo listening on {addr}");
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let idx = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut stream,
                                Token(idx),
                                Interest::READABLE,
                            )?;
                            conns[idx] = Some(Conn {
                                stream,
                                pending: Vec::new(),
                                want_write: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let idx = ev.token().0;
            let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let mut alive = service(conn, buf, readv);
            // Ask for write-space events only while output is pending.
            let want = !conn.pending.is_empty();
            if alive && want != conn.want_write {
                let interest = if want {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                alive = poll
                    .registry()
                    .reregister(&mut conn.stream, Token(idx), interest)
                    .is_ok();
                conn.want_write = want;
            }
            if !alive {
                if let Some(mut c) = conns[idx].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                free.push(idx);
            }
        }
    }
}

/// Flushes pending output, then reads and echoes until the socket would
/// block. Returns false when the connection is finished.
fn service(conn: &mut Conn, buf: &mut [u8], readv: bool) -> bool {
    if !conn.pending.is_empty() {
        match write_some(&mut conn.stream, &conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
                if !conn.pending.is_empty() {
                    return true; // wait for WRITABLE
                }
            }
            Err(_) => return false,
        }
    }
    loop {
        let n = match read(&mut conn.stream, buf, readv) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        match write_some(&mut conn.stream, &buf[..n]) {
            // A short read drained the socket (edge-triggered: the next
            // arrival is a new event), so skip the read that would block.
            Ok(w) if w == n && n < buf.len() => return true,
            Ok(w) if w == n => {}
            Ok(w) => {
                // Backpressure: stop reading until the kernel takes our output.
                conn.pending.extend_from_slice(&buf[w..n]);
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// One read into `buf`, or with `readv` into its first 8 bytes and the rest.
fn read(stream: &mut TcpStream, buf: &mut [u8], readv: bool) -> io::Result<usize> {
    if !readv {
        return stream.read(buf);
    }
    let (head, rest) = buf.split_at_mut(8);
    stream.read_vectored(&mut [IoSliceMut::new(head), IoSliceMut::new(rest)])
}

/// Writes as much of `data` as the socket accepts without blocking.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut off = 0;
    while off < data.len() {
        match stream.write(&data[off..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(off)
}
