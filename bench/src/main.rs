//! `ws-load`: a closed-loop WebSocket load generator for benchmarking the
//! ws-mio / ws-std servers against reference peers.
//!
//! One thread, non-blocking mio sockets, loopback targets only. Every
//! connection pre-builds its outgoing message (masked frame bytes) once; a
//! send is a counter increment, writes are coalesced with `writev` of the same
//! frame repeated, and reads go into one reused buffer through an incremental
//! frame parser that verifies echoed payloads byte for byte while they stream
//! in. Latencies go into a fixed log-linear histogram. The tool stops by
//! itself: every phase has a deadline.
//!
//! ```text
//! ws-load --url ws://127.0.0.1:9001/ [--scenario echo] [--conns 100] [--size 64]
//!         [--inflight 1] [--warmup 1] [--duration 5] [--server-pid PID] [--json]
//!         [--raw] [--deflate] [--topics 8] [--connect-timeout 30]
//! ```
//!
//! Scenarios:
//! - `echo`: every connection keeps `--inflight` binary messages of `--size`
//!   random bytes in flight; each echo must equal what was sent. `--deflate`
//!   negotiates `permessage-deflate; client_no_context_takeover;
//!   server_no_context_takeover` and sends a compressible payload compressed
//!   once up front (RSV1); compressed or plain echoes are both accepted and
//!   verified after inflating. `--raw` skips the handshake and sends the same
//!   frame bytes over plain TCP, expecting them back verbatim (for
//!   `raw-echo`, the physical limit).
//! - `broadcast`: the server sends every received message to every client
//!   (the sender included). Each client sends its next message when its own
//!   previous one has come back. Payloads start with the sender's index (u32
//!   LE); every delivery is verified. Reports deliveries/s.
//! - `pubsub`: text protocol below, `--topics K` topics; client `i`
//!   subscribes to and publishes on topic `t{i % K}`, and publishes its next
//!   message when its own publication has been delivered back to it.
//! - `idle`: opens `--conns` connections, completes the handshakes, holds
//!   them for `--duration`, and reports the server's RSS growth per
//!   connection against a baseline read before the first connection.
//!   Needs `ulimit -n` above the connection count (scripts/bench.sh raises it).
//! - `slow-consumer`: the broadcast scenario plus one extra client that
//!   completes its handshake and then never reads; reports the other
//!   clients' rate and the server's RSS growth during the window (which must
//!   stay bounded by the server's per-connection output limit).
//!
//! # Pub/sub protocol (implemented by the `pubsub` example servers)
//!
//! All messages are text frames; a topic is 1..=64 bytes of
//! `[A-Za-z0-9_.-]` (never `:`).
//!
//! | client → server         | server reply / effect                                              |
//! |-------------------------|--------------------------------------------------------------------|
//! | `sub:<topic>`           | subscribe this connection; reply `subscribed:<topic>` to it        |
//! | `unsub:<topic>`         | unsubscribe; reply `unsubscribed:<topic>`                          |
//! | `pub:<topic>:<payload>` | send `msg:<topic>:<payload>` to every connection subscribed to `<topic>` at that moment, the publisher included if subscribed; no reply to the publisher otherwise |
//!
//! `<payload>` is everything after the second `:` (it may itself contain
//! `:`). Deliveries to one subscriber keep the order in which the server
//! handled the publications. Anything else may be answered with
//! `error:<reason>` or a close with 1008.
//!
//! # Broadcast protocol (the `broadcast` example servers)
//!
//! Every text or binary message received from any client is sent, unchanged
//! and with the same opcode, to every connected client, the sender included.
//!
//! # Output
//!
//! msgs/s counts messages received in the window (echoes, or deliveries for
//! broadcast/pubsub); MB/s is their payload in 10^6 bytes/s; latency is
//! send → own echo; server CPU µs/msg is (utime+stime delta of
//! `--server-pid`, all threads) / msgs, with its user-space part (utime).
//! `--json` prints one JSON object.

mod frame;
mod hist;
mod procfs;

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::exit;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use frame::{Event, Inflater, Rng, Rx, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use hist::Histogram;

/// The RFC 6455 sample key; a load tool needs no fresh nonce per connection.
const HS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// base64(sha1(HS_KEY + GUID)).
const HS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Connections whose connect or handshake is in progress at once.
const MAX_PENDING_CONNECTS: usize = 256;
/// Shared read buffer size.
const READ_BUF: usize = 256 * 1024;
/// Frames per writev call.
const MAX_IOV: usize = 64;

const USAGE: &str = "\
usage: ws-load --url ws://127.0.0.1:PORT/ [options]
  --scenario S        echo | broadcast | pubsub | idle | slow-consumer (default echo)
  --conns N           connections (default 100; idle: e.g. 10000)
  --size BYTES        payload size (default 64)
  --inflight K        messages in flight per connection (default 1)
  --warmup SECS       warmup before the window (default 1)
  --duration SECS     measurement window (default 5)
  --topics K          pubsub topics (default 8)
  --server-pid PID    read the server's CPU time and RSS from /proc/PID
  --raw               plain TCP: send frame bytes without handshake, expect them verbatim
  --deflate           negotiate permessage-deflate (no context takeover), send compressed
                      (echo); idle: connections negotiate it and stay silent
  --connect-timeout S deadline for all connections + handshakes (default 30)
  --seed N            payload/mask seed (default: from the clock)
  --json              print one JSON object instead of text";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Echo,
    Broadcast,
    Pubsub,
    Idle,
    SlowConsumer,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Echo => "echo",
            Scenario::Broadcast => "broadcast",
            Scenario::Pubsub => "pubsub",
            Scenario::Idle => "idle",
            Scenario::SlowConsumer => "slow-consumer",
        }
    }
}

struct Opts {
    addr: SocketAddr,
    host: String,
    path: String,
    scenario: Scenario,
    conns: usize,
    size: usize,
    inflight: usize,
    warmup: f64,
    duration: f64,
    topics: usize,
    server_pid: Option<u32>,
    raw: bool,
    deflate: bool,
    connect_timeout: f64,
    seed: u64,
    json: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut url = None;
    let mut o = Opts {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        host: String::new(),
        path: "/".into(),
        scenario: Scenario::Echo,
        conns: 100,
        size: 64,
        inflight: 1,
        warmup: 1.0,
        duration: 5.0,
        topics: 8,
        server_pid: None,
        raw: false,
        deflate: false,
        connect_timeout: 30.0,
        seed: 0,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("bad value for {name}: {v:?}"))
        }
        match name.as_str() {
            "--url" => url = Some(value()?),
            "--scenario" => {
                o.scenario = match value()?.as_str() {
                    "echo" => Scenario::Echo,
                    "broadcast" => Scenario::Broadcast,
                    "pubsub" => Scenario::Pubsub,
                    "idle" => Scenario::Idle,
                    "slow-consumer" => Scenario::SlowConsumer,
                    s => return Err(format!("unknown scenario {s:?}")),
                }
            }
            "--conns" => o.conns = num(&name, value()?)?,
            "--size" => o.size = num(&name, value()?)?,
            "--inflight" => o.inflight = num(&name, value()?)?,
            "--warmup" => o.warmup = num(&name, value()?)?,
            "--duration" => o.duration = num(&name, value()?)?,
            "--topics" => o.topics = num(&name, value()?)?,
            "--server-pid" => o.server_pid = Some(num(&name, value()?)?),
            "--connect-timeout" => o.connect_timeout = num(&name, value()?)?,
            "--seed" => o.seed = num(&name, value()?)?,
            "--raw" => o.raw = true,
            "--deflate" => o.deflate = true,
            "--json" => o.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("ws://")
        .ok_or("--url must start with ws://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    o.host = hostport.to_string();
    o.path = path.to_string();
    o.addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or("only loopback targets are allowed (127.0.0.0/8, ::1, localhost)")?;
    let positive = |v: f64, what: &str| {
        if (0.0..=3600.0).contains(&v) {
            Ok(())
        } else {
            Err(format!("{what} must be between 0 and 3600 s"))
        }
    };
    positive(o.warmup, "--warmup")?;
    positive(o.duration, "--duration")?;
    positive(o.connect_timeout, "--connect-timeout")?;
    if o.conns == 0 || o.conns > 60_000 {
        return Err("--conns must be 1..=60000".into());
    }
    if o.inflight == 0 || o.inflight > 4096 {
        return Err("--inflight must be 1..=4096".into());
    }
    if o.size > 256 << 20 {
        return Err("--size must be at most 256 MiB".into());
    }
    if o.topics == 0 {
        return Err("--topics must be at least 1".into());
    }
    match o.scenario {
        Scenario::Broadcast | Scenario::SlowConsumer if o.size < 4 => {
            return Err("broadcast payloads need --size >= 4 (sender index)".into())
        }
        Scenario::Pubsub if o.size < 9 => {
            return Err("pubsub payloads need --size >= 9 (sender index)".into())
        }
        _ => {}
    }
    if o.raw && (o.scenario != Scenario::Echo || o.deflate) {
        return Err("--raw only works with the plain echo scenario".into());
    }
    if o.deflate && !matches!(o.scenario, Scenario::Echo | Scenario::Idle) {
        return Err("--deflate only works with the echo and idle scenarios".into());
    }
    if o.seed == 0 {
        o.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    Ok(o)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    NotStarted,
    Connecting,
    Handshake,
    Open,
    Closed,
}

/// Outgoing side of a connection: a pre-built message and counters.
struct Tx {
    /// One complete outgoing message (masked frame bytes), built once.
    frame: Box<[u8]>,
    /// Queued copies of `frame`; the first may be partly written.
    to_send: u64,
    /// Bytes of the first queued frame already written.
    send_off: usize,
    /// Handshake request, commands, pongs: written at a frame boundary.
    extra: Vec<u8>,
    extra_off: usize,
    /// The last write was short: wait for WRITABLE.
    blocked: bool,
    /// Send times of own messages in flight (FIFO; echoes come in order).
    sent_at: VecDeque<Instant>,
}

impl Tx {
    fn queue(&mut self, now: Instant) {
        self.to_send += 1;
        self.sent_at.push_back(now);
    }

    /// Writes until done or the socket is full, as few syscalls as possible.
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        while !self.blocked {
            let extra_first = self.send_off == 0 && self.extra_off < self.extra.len();
            let (n, total) = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut cnt = 0;
                let mut total = 0;
                if extra_first {
                    iov[0] = IoSlice::new(&self.extra[self.extra_off..]);
                    total += self.extra.len() - self.extra_off;
                    cnt = 1;
                }
                let mut frames = 0;
                while frames < self.to_send && cnt < MAX_IOV {
                    let start = if frames == 0 { self.send_off } else { 0 };
                    iov[cnt] = IoSlice::new(&self.frame[start..]);
                    total += self.frame.len() - start;
                    cnt += 1;
                    frames += 1;
                }
                if cnt == 0 {
                    return Ok(());
                }
                // A plain write is a little cheaper than writev for one slice.
                let res = if cnt == 1 {
                    stream.write(&iov[0])
                } else {
                    stream.write_vectored(&iov[..cnt])
                };
                match res {
                    Ok(n) => (n, total),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.blocked = true;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            let mut left = n;
            if extra_first {
                let k = left.min(self.extra.len() - self.extra_off);
                self.extra_off += k;
                left -= k;
                if self.extra_off == self.extra.len() {
                    self.extra.clear();
                    self.extra_off = 0;
                }
            }
            while left > 0 {
                let rem = self.frame.len() - self.send_off;
                if left >= rem {
                    left -= rem;
                    self.send_off = 0;
                    self.to_send -= 1;
                } else {
                    self.send_off += left;
                    left = 0;
                }
            }
            if n < total {
                self.blocked = true;
            }
        }
        Ok(())
    }
}

struct Conn {
    stream: Option<TcpStream>,
    st: St,
    /// Handshake response bytes until the blank line.
    hs_in: Vec<u8>,
    tx: Tx,
    rx: Rx,
    /// Raw mode: offset within the frame currently being echoed.
    raw_pos: usize,
    /// Echo without deflate: the reply frame expected, checked whole (see `Rx::take_exact`);
    /// empty otherwise.
    reply: Box<[u8]>,
    /// Pubsub: the server confirmed our subscription.
    subscribed: bool,
    /// Sends messages in the traffic phase (false for the slow consumer).
    sender: bool,
    /// WRITABLE is in the registered interest (connecting, or a short write).
    want_write: bool,
}

#[derive(Default, Clone, Copy)]
struct Stats {
    /// Messages received (echoes or deliveries).
    msgs: u64,
    /// Their payload bytes (uncompressed).
    bytes: u64,
    /// Own messages sent.
    sent: u64,
}

struct Load<'o> {
    o: &'o Opts,
    poll: Poll,
    conns: Vec<Conn>,
    /// The uncompressed payload each connection sends.
    payloads: Vec<Box<[u8]>>,
    hist: Histogram,
    inflater: Inflater,
    rbuf: Vec<u8>,
    stats: Stats,
    request: Vec<u8>,
    traffic: bool,
    next_connect: usize,
    pending: usize,
    open: usize,
    subscribed: usize,
    /// Shutdown phase: close frames sent, close replies and EOFs expected.
    closing: bool,
    /// Connections finished during shutdown.
    closed: usize,
}

fn topic_name(k: usize) -> String {
    format!("t{k}")
}

/// Words for compressible (deflate) payloads.
const WORDS: &[&str] = &[
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "socket",
    "frame",
    "message",
    "server",
    "client",
    "buffer",
    "event",
    "stream",
    "close",
    "ping",
    "pong",
    "mask",
    "payload",
    "header",
    "upgrade",
    "connection",
    "latency",
    "throughput",
    "benchmark",
    "deflate",
    "{\"id\":",
    "\"value\":",
    "true,",
    "false,",
    "null,",
    "[1,2,3],",
    "\"name\":",
    "\"ok\"}",
];

fn make_payload(o: &Opts, i: usize, rng: &mut Rng) -> Vec<u8> {
    let mut p = vec![0u8; o.size];
    match o.scenario {
        Scenario::Echo if o.deflate => {
            p.clear();
            while p.len() < o.size {
                p.extend_from_slice(
                    WORDS[(rng.next_u64() % WORDS.len() as u64) as usize].as_bytes(),
                );
                p.push(b' ');
            }
            p.truncate(o.size);
        }
        Scenario::Echo | Scenario::Idle => rng.fill(&mut p),
        Scenario::Broadcast | Scenario::SlowConsumer => {
            rng.fill(&mut p);
            p[..4].copy_from_slice(&(i as u32).to_le_bytes());
        }
        Scenario::Pubsub => {
            const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            for b in p.iter_mut() {
                *b = ALNUM[(rng.next_u64() % ALNUM.len() as u64) as usize];
            }
            p[..9].copy_from_slice(format!("{i:08x}-").as_bytes());
        }
    }
    p
}

impl<'o> Load<'o> {
    fn new(o: &'o Opts) -> Result<Self, String> {
        let total = o.conns + usize::from(o.scenario == Scenario::SlowConsumer);
        let mut rng = Rng::new(o.seed);
        let mut request = Vec::new();
        if !o.raw {
            request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {HS_KEY}\r\nSec-WebSocket-Version: 13\r\n{}\r\n",
                o.path,
                o.host,
                if o.deflate {
                    "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; \
                     server_no_context_takeover\r\n"
                } else {
                    ""
                }
            )
            .into_bytes();
        }
        let max_msg = (o.size + o.size / 8 + 4096) as u64;
        let mut conns = Vec::with_capacity(total);
        let mut payloads = Vec::with_capacity(total);
        for i in 0..total {
            let sender = i < o.conns && o.scenario != Scenario::Idle;
            let payload = if o.scenario == Scenario::Idle {
                Vec::new()
            } else {
                make_payload(o, i, &mut rng)
            };
            let mask = (rng.next_u64() as u32).to_ne_bytes();
            let mut frame = Vec::new();
            let mut reply = Vec::new();
            if sender && o.scenario == Scenario::Echo && !o.deflate && !o.raw {
                frame::push_server_frame(&mut reply, OP_BINARY, &payload);
            }
            if sender {
                match o.scenario {
                    Scenario::Pubsub => {
                        let mut m = format!("pub:{}:", topic_name(i % o.topics)).into_bytes();
                        m.extend_from_slice(&payload);
                        frame::push_client_frame(&mut frame, OP_TEXT, false, &m, mask);
                    }
                    _ if o.deflate => {
                        let c = frame::deflate_message(&payload);
                        frame::push_client_frame(&mut frame, OP_BINARY, true, &c, mask);
                    }
                    _ => frame::push_client_frame(&mut frame, OP_BINARY, false, &payload, mask),
                }
            }
            payloads.push(payload.into_boxed_slice());
            conns.push(Conn {
                stream: None,
                st: St::NotStarted,
                hs_in: Vec::new(),
                tx: Tx {
                    frame: frame.into_boxed_slice(),
                    to_send: 0,
                    send_off: 0,
                    extra: Vec::new(),
                    extra_off: 0,
                    blocked: false,
                    sent_at: VecDeque::with_capacity(if sender { o.inflight } else { 0 }),
                },
                rx: Rx::new(max_msg),
                raw_pos: 0,
                reply: reply.into_boxed_slice(),
                subscribed: false,
                sender,
                want_write: true,
            });
        }
        Ok(Load {
            o,
            poll: Poll::new().map_err(|e| format!("poll: {e}"))?,
            conns,
            payloads,
            hist: Histogram::new(),
            inflater: Inflater::new(),
            rbuf: vec![0; READ_BUF],
            stats: Stats::default(),
            request,
            traffic: false,
            next_connect: 0,
            pending: 0,
            open: 0,
            subscribed: 0,
            closing: false,
            closed: 0,
        })
    }

    /// Starts connects while fewer than MAX_PENDING_CONNECTS are in progress.
    fn connect_more(&mut self) -> Result<(), String> {
        while self.pending < MAX_PENDING_CONNECTS && self.next_connect < self.conns.len() {
            let i = self.next_connect;
            let mut s = TcpStream::connect(self.o.addr).map_err(|e| {
                let hint = if e.raw_os_error() == Some(24) {
                    " (too many open files: raise `ulimit -n`)"
                } else {
                    ""
                };
                format!("connect #{i} to {}: {e}{hint}", self.o.addr)
            })?;
            self.poll
                .registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("register: {e}"))?;
            let c = &mut self.conns[i];
            c.stream = Some(s);
            c.st = St::Connecting;
            self.next_connect += 1;
            self.pending += 1;
        }
        Ok(())
    }

    fn on_open(&mut self, i: usize) -> Result<(), String> {
        self.pending -= 1;
        self.open += 1;
        let c = &mut self.conns[i];
        c.st = St::Open;
        if !c.sender && self.o.scenario == Scenario::SlowConsumer {
            // The slow consumer never reads again: stop its wakeups too.
            if let Some(s) = c.stream.as_mut() {
                let _ = self.poll.registry().deregister(s);
            }
        }
        self.connect_more()
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) -> Result<(), String> {
        let now = Instant::now();
        let c = &mut self.conns[i];
        if writable {
            c.tx.blocked = false;
        }
        if c.st == St::Connecting {
            let s = c.stream.as_mut().expect("stream");
            match s.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    return Err(format!("connect #{i} to {}: {e}", self.o.addr))
                }
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect #{i}: {e}")),
            }
            let _ = s.set_nodelay(true);
            if self.o.raw {
                self.on_open(i)?;
            } else {
                c.st = St::Handshake;
                c.tx.extra.extend_from_slice(&self.request);
            }
        }
        let c = &self.conns[i];
        if c.st == St::Open && !c.sender && self.o.scenario == Scenario::SlowConsumer {
            return Ok(());
        }
        if readable {
            self.read_conn(i, now)?;
        }
        self.flush_conn(i)
    }

    /// Writes what is queued, and asks for WRITABLE events only while a
    /// write is pending: write-space wakeups after every ACK would cost the
    /// load generator CPU for nothing.
    fn flush_conn(&mut self, i: usize) -> Result<(), String> {
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_mut() else {
            return Ok(());
        };
        c.tx.flush(s).map_err(|e| format!("write #{i}: {e}"))?;
        let want = c.tx.blocked || c.st == St::Connecting;
        if want != c.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.poll
                .registry()
                .reregister(s, Token(i), interest)
                .map_err(|e| format!("reregister #{i}: {e}"))?;
            c.want_write = want;
        }
        Ok(())
    }

    fn read_conn(&mut self, i: usize, now: Instant) -> Result<(), String> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let res = self.read_into(i, now, &mut rbuf);
        self.rbuf = rbuf;
        res
    }

    fn read_into(&mut self, i: usize, now: Instant, rbuf: &mut [u8]) -> Result<(), String> {
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else {
                return Ok(());
            };
            let n = match s.read(rbuf) {
                Ok(0) | Err(_) if self.closing => {
                    self.finish(i);
                    return Ok(());
                }
                Ok(0) => {
                    return Err(format!(
                        "connection #{i} closed by the server{}",
                        if c.st == St::Open {
                            ""
                        } else {
                            " during the handshake"
                        }
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let when = if c.st == St::Open {
                        ""
                    } else {
                        " during the handshake"
                    };
                    return Err(format!("read #{i}{when}: {e}"));
                }
            };
            let data = &rbuf[..n];
            match c.st {
                St::Handshake => self.handshake_bytes(i, data, now)?,
                St::Open => self.feed(i, data, now)?,
                St::Closed => return Ok(()),
                _ => return Err(format!("#{i}: data before connect completed")),
            }
            // A short read drained the socket; the next arrival is a new edge.
            if n < rbuf.len() {
                return Ok(());
            }
        }
    }

    fn handshake_bytes(&mut self, i: usize, data: &[u8], now: Instant) -> Result<(), String> {
        let c = &mut self.conns[i];
        c.hs_in.extend_from_slice(data);
        let Some(end) = c.hs_in.windows(4).position(|w| w == b"\r\n\r\n") else {
            if c.hs_in.len() > 16 * 1024 {
                return Err(format!("#{i}: handshake response too long"));
            }
            return Ok(());
        };
        let head = String::from_utf8_lossy(&c.hs_in[..end]).into_owned();
        let rest = c.hs_in[end + 4..].to_vec();
        c.hs_in = Vec::new();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("");
        if !status.starts_with("HTTP/1.1 101") {
            return Err(format!("#{i}: handshake refused: {status:?}"));
        }
        let mut accept_ok = false;
        let mut deflate = false;
        for l in lines {
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accept_ok = value == HS_ACCEPT;
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                deflate |= value.to_ascii_lowercase().contains("permessage-deflate");
            }
        }
        if !accept_ok {
            return Err(format!("#{i}: missing or wrong Sec-WebSocket-Accept"));
        }
        if deflate != self.o.deflate {
            return Err(format!(
                "#{i}: permessage-deflate {} by the server",
                if deflate {
                    "negotiated without an offer"
                } else {
                    "not accepted"
                }
            ));
        }
        self.on_open(i)?;
        if !rest.is_empty() {
            self.feed(i, &rest, now)?;
        }
        Ok(())
    }

    /// Processes bytes received on an open connection.
    fn feed(&mut self, i: usize, data: &[u8], now: Instant) -> Result<(), String> {
        let o = self.o;
        let traffic = self.traffic;
        let closing = self.closing;
        let mut got_close = false;
        let Load {
            conns,
            payloads,
            hist,
            inflater,
            stats,
            subscribed,
            ..
        } = self;
        let c = &mut conns[i];
        if o.raw {
            let mut d = data;
            while !d.is_empty() {
                let f = &c.tx.frame;
                let n = (f.len() - c.raw_pos).min(d.len());
                if f[c.raw_pos..c.raw_pos + n] != d[..n] {
                    return Err(format!(
                        "#{i}: raw {}",
                        frame::mismatch(f, c.raw_pos, &d[..n])
                    ));
                }
                c.raw_pos += n;
                d = &d[n..];
                if c.raw_pos == f.len() {
                    c.raw_pos = 0;
                    stats.msgs += 1;
                    stats.bytes += o.size as u64;
                    own_done(&mut c.tx, hist, stats, now, traffic);
                }
            }
            return Ok(());
        }
        let Conn {
            rx,
            tx,
            subscribed: sub,
            reply,
            ..
        } = c;
        let mut data = data;
        for _ in 0..rx.take_exact(&mut data, reply) {
            stats.msgs += 1;
            stats.bytes += payloads[i].len() as u64;
            own_done(tx, hist, stats, now, traffic);
        }
        let expected = match o.scenario {
            Scenario::Echo => Some(&payloads[i][..]),
            _ => None,
        };
        let res = rx.feed(data, expected, |ev| match ev {
            Event::Control {
                opcode: OP_PING,
                payload,
            } => {
                let mut p = [0u8; 125];
                p[..payload.len()].copy_from_slice(payload);
                frame::push_client_frame(
                    &mut tx.extra,
                    OP_PONG,
                    false,
                    &p[..payload.len()],
                    [0; 4],
                );
                Ok(())
            }
            Event::Control {
                opcode: OP_CLOSE, ..
            } if closing => {
                got_close = true;
                Ok(())
            }
            Event::Control {
                opcode: OP_CLOSE,
                payload,
            } => Err(format!("server sent close{}", describe_close(payload))),
            Event::Control { .. } => Ok(()),
            Event::Message {
                opcode,
                compressed,
                payload,
                ..
            } => match o.scenario {
                Scenario::Echo => {
                    if let Some(p) = payload {
                        inflater.check(p, &payloads[i])?;
                    }
                    stats.msgs += 1;
                    stats.bytes += payloads[i].len() as u64;
                    own_done(tx, hist, stats, now, traffic);
                    Ok(())
                }
                Scenario::Broadcast | Scenario::SlowConsumer => {
                    let p = payload.ok_or("internal: unbuffered message")?;
                    if compressed || opcode != OP_BINARY || p.len() < 4 {
                        return Err("unexpected broadcast message (opcode, RSV1 or length)".into());
                    }
                    let j = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize;
                    match payloads.get(j) {
                        Some(exp) if exp[..] == p[..] => {}
                        _ => {
                            return Err(format!(
                                "broadcast delivery from #{j} differs from what it sent"
                            ))
                        }
                    }
                    stats.msgs += 1;
                    stats.bytes += p.len() as u64;
                    if j == i {
                        own_done(tx, hist, stats, now, traffic);
                    }
                    Ok(())
                }
                Scenario::Pubsub => {
                    let p = payload.ok_or("internal: unbuffered message")?;
                    if compressed || opcode != OP_TEXT {
                        return Err("pubsub replies must be uncompressed text".into());
                    }
                    let topic = topic_name(i % o.topics);
                    if !*sub {
                        if p.strip_prefix(b"subscribed:") != Some(topic.as_bytes()) {
                            return Err(format!(
                                "expected \"subscribed:{topic}\", got {:?}",
                                String::from_utf8_lossy(&p[..p.len().min(80)])
                            ));
                        }
                        *sub = true;
                        *subscribed += 1;
                        return Ok(());
                    }
                    let body = p
                        .strip_prefix(b"msg:")
                        .and_then(|r| r.strip_prefix(topic.as_bytes()))
                        .and_then(|r| r.strip_prefix(b":"))
                        .ok_or_else(|| {
                            format!(
                                "expected \"msg:{topic}:...\", got {:?}",
                                String::from_utf8_lossy(&p[..p.len().min(80)])
                            )
                        })?;
                    let j = std::str::from_utf8(body.get(..8).unwrap_or(b"?"))
                        .ok()
                        .and_then(|h| usize::from_str_radix(h, 16).ok())
                        .ok_or("pubsub payload lost its sender index")?;
                    match payloads.get(j) {
                        Some(exp) if exp[..] == *body && j % o.topics == i % o.topics => {}
                        _ => {
                            return Err(format!(
                                "pubsub delivery from #{j} differs from what it published"
                            ))
                        }
                    }
                    stats.msgs += 1;
                    stats.bytes += body.len() as u64;
                    if j == i {
                        own_done(tx, hist, stats, now, traffic);
                    }
                    Ok(())
                }
                Scenario::Idle => Err("unexpected data message on an idle connection".into()),
            },
        });
        res.map_err(|e| format!("#{i}: {e}"))?;
        if got_close {
            self.finish(i);
        }
        Ok(())
    }

    /// Drops a connection during shutdown.
    fn finish(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.st == St::Closed {
            return;
        }
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.st = St::Closed;
        self.closed += 1;
    }

    /// Sends a 1000 close on every open connection (after the frame being
    /// written, if any) and waits up to `limit` for the replies, so servers
    /// see a clean end rather than resets. Nothing here is measured.
    fn shutdown(&mut self, limit: Duration) -> Result<(), String> {
        self.traffic = false;
        self.closing = true;
        let slow = self.o.scenario == Scenario::SlowConsumer;
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.st != St::Open || self.o.raw || (slow && !c.sender) {
                self.finish(i);
                continue;
            }
            c.tx.to_send = c.tx.to_send.min(u64::from(c.tx.send_off > 0));
            let mask = [0x11, 0x22, 0x33, (i & 0xff) as u8];
            frame::push_client_frame(
                &mut c.tx.extra,
                OP_CLOSE,
                false,
                &1000u16.to_be_bytes(),
                mask,
            );
            if self.flush_conn(i).is_err() {
                self.finish(i);
            }
        }
        let total = self.conns.len();
        // Errors while closing (resets, late data) do not matter any more.
        let _ = self.run_until(Instant::now() + limit, |l| l.closed == total);
        Ok(())
    }

    /// Polls and dispatches until `done` holds or `deadline` passes.
    fn run_until(
        &mut self,
        deadline: Instant,
        done: impl Fn(&Self) -> bool,
    ) -> Result<bool, String> {
        let mut events = Events::with_capacity(1024);
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            match self.poll.poll(&mut events, Some(deadline - now)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll: {e}")),
            }
            for ev in events.iter() {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let i = ev.token().0;
                if let Err(e) = self.on_event(i, readable, ev.is_writable()) {
                    if !self.closing {
                        return Err(e);
                    }
                    self.finish(i);
                }
            }
        }
    }

    fn start_traffic(&mut self) -> Result<(), String> {
        self.traffic = true;
        let now = Instant::now();
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if !c.sender {
                continue;
            }
            for _ in 0..self.o.inflight {
                c.tx.queue(now);
                self.stats.sent += 1;
            }
            self.flush_conn(i)?;
        }
        Ok(())
    }
}

/// Bookkeeping when one of our own messages came back: latency, and the
/// closed loop's next send.
fn own_done(tx: &mut Tx, hist: &mut Histogram, stats: &mut Stats, now: Instant, traffic: bool) {
    if let Some(t) = tx.sent_at.pop_front() {
        hist.record(now.saturating_duration_since(t).as_nanos() as u64);
    }
    if traffic {
        tx.queue(now);
        stats.sent += 1;
    }
}

fn describe_close(p: &[u8]) -> String {
    if p.len() >= 2 {
        format!(
            " {} {:?}",
            u16::from_be_bytes([p[0], p[1]]),
            String::from_utf8_lossy(&p[2..])
        )
    } else {
        String::new()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

struct Report {
    window: f64,
    stats: Stats,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    samples: u64,
    server_before: Option<procfs::Usage>,
    server_after: Option<procfs::Usage>,
    server_baseline: Option<procfs::Usage>,
    load_cpu_pct: f64,
    open: usize,
}

fn server_usage(o: &Opts) -> Result<Option<procfs::Usage>, String> {
    o.server_pid
        .map(|p| procfs::usage(&p.to_string()))
        .transpose()
}

fn run(o: &Opts) -> Result<Report, String> {
    let mut l = Load::new(o)?;
    let baseline = server_usage(o)?;
    let total = l.conns.len();
    l.connect_more()?;
    let deadline = Instant::now() + secs(o.connect_timeout);
    if !l.run_until(deadline, |l| l.open == total)? {
        return Err(format!(
            "only {} of {total} connections open after {} s",
            l.open, o.connect_timeout
        ));
    }
    if o.scenario == Scenario::Pubsub {
        for i in 0..l.conns.len() {
            let cmd = format!("sub:{}", topic_name(i % o.topics));
            let mask = [(i & 0xff) as u8, 0x5a, 0xa5, 0x3c];
            let c = &mut l.conns[i];
            frame::push_client_frame(&mut c.tx.extra, OP_TEXT, false, cmd.as_bytes(), mask);
            l.flush_conn(i)?;
        }
        let deadline = Instant::now() + secs(10.0);
        if !l.run_until(deadline, |l| l.subscribed == total)? {
            return Err(format!(
                "only {} of {total} subscriptions confirmed (\"subscribed:<topic>\") after 10 s",
                l.subscribed
            ));
        }
    }
    if o.scenario != Scenario::Idle {
        l.start_traffic()?;
    }
    l.run_until(Instant::now() + secs(o.warmup), |_| false)?;
    l.stats = Stats::default();
    l.hist.clear();
    let server_before = server_usage(o)?;
    let self_before = procfs::usage("self")?;
    let t0 = Instant::now();
    l.run_until(t0 + secs(o.duration), |_| false)?;
    let window = t0.elapsed().as_secs_f64();
    let server_after = server_usage(o)?;
    let self_after = procfs::usage("self")?;
    l.shutdown(Duration::from_secs(1))?;
    let us = |v: u64| v as f64 / 1000.0;
    Ok(Report {
        window,
        stats: l.stats,
        p50: us(l.hist.quantile(0.5)),
        p99: us(l.hist.quantile(0.99)),
        p999: us(l.hist.quantile(0.999)),
        max: us(l.hist.max()),
        samples: l.hist.count(),
        server_before,
        server_after,
        server_baseline: baseline,
        load_cpu_pct: (self_after.cpu_us - self_before.cpu_us) as f64 / window / 1e4,
        open: l.open,
    })
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("null".into(), |v| format!("{v:.prec$}"))
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ws-load: {e}\n\n{USAGE}");
            exit(2);
        }
    };
    let r = match run(&o) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ws-load: error: {e}");
            exit(1);
        }
    };
    let s = r.stats;
    let msgs_per_s = s.msgs as f64 / r.window;
    let mb_per_s = s.bytes as f64 / r.window / 1e6;
    let cpu = match (r.server_before, r.server_after) {
        (Some(a), Some(b)) => Some((b.cpu_us - a.cpu_us) as f64),
        _ => None,
    };
    let cpu_per_msg = cpu.filter(|_| s.msgs > 0).map(|c| c / s.msgs as f64);
    // The user-space share: what a server's own code costs, beside the kernel's part of the
    // same reads and writes.
    let user_per_msg = match (r.server_before, r.server_after) {
        (Some(a), Some(b)) if s.msgs > 0 => Some((b.user_us - a.user_us) as f64 / s.msgs as f64),
        _ => None,
    };
    let cpu_pct = cpu.map(|c| c / r.window / 1e4);
    let rss_start = r.server_before.map(|u| u.rss as f64);
    let rss_end = r.server_after.map(|u| u.rss as f64);
    let rss_base = r.server_baseline.map(|u| u.rss as f64);
    let rss_per_conn = match (o.scenario, rss_base, rss_end) {
        (Scenario::Idle, Some(b), Some(e)) => Some((e - b) / r.open as f64),
        _ => None,
    };
    let rss_growth = match (rss_start, rss_end) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if o.json {
        println!(
            "{{\"scenario\":\"{}\",\"raw\":{},\"deflate\":{},\"conns\":{},\"size\":{},\"inflight\":{},\
             \"topics\":{},\"window_s\":{:.3},\"msgs\":{},\"msgs_per_s\":{:.1},\"mb_per_s\":{:.3},\
             \"sent_per_s\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1},\
             \"latency_samples\":{},\"server_cpu_us_per_msg\":{},\"server_user_us_per_msg\":{},\"server_cpu_pct\":{},\"server_rss_baseline\":{},\
             \"server_rss_start\":{},\"server_rss_end\":{},\"server_rss_growth\":{},\
             \"rss_per_conn\":{},\"load_cpu_pct\":{:.1}}}",
            o.scenario.name(),
            o.raw,
            o.deflate,
            r.open,
            o.size,
            o.inflight,
            o.topics,
            r.window,
            s.msgs,
            msgs_per_s,
            mb_per_s,
            s.sent as f64 / r.window,
            r.p50,
            r.p99,
            r.p999,
            r.max,
            r.samples,
            fmt_opt(cpu_per_msg, 3),
            fmt_opt(user_per_msg, 3),
            fmt_opt(cpu_pct, 1),
            fmt_opt(rss_base, 0),
            fmt_opt(rss_start, 0),
            fmt_opt(rss_end, 0),
            fmt_opt(rss_growth, 0),
            fmt_opt(rss_per_conn, 0),
            r.load_cpu_pct,
        );
        return;
    }
    if o.scenario == Scenario::Idle {
        println!(
            "ws-load idle: {} connections held {:.2} s",
            r.open, r.window
        );
        if let (Some(b), Some(e), Some(pc)) = (rss_base, rss_end, rss_per_conn) {
            println!(
                "  server RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per connection",
                b / 1048576.0,
                e / 1048576.0,
                pc
            );
        } else {
            println!("  all connections open; pass --server-pid to measure RSS");
        }
        return;
    }
    println!(
        "ws-load {}{}{}: {} conns{}, {} B, inflight {}, window {:.2} s",
        o.scenario.name(),
        if o.raw { " (raw TCP)" } else { "" },
        if o.deflate {
            " (permessage-deflate)"
        } else {
            ""
        },
        o.conns,
        if o.scenario == Scenario::SlowConsumer {
            " + 1 that never reads"
        } else {
            ""
        },
        o.size,
        o.inflight,
        r.window
    );
    let what = match o.scenario {
        Scenario::Broadcast | Scenario::SlowConsumer | Scenario::Pubsub => "deliveries",
        _ => "msgs",
    };
    println!(
        "  {what}/s {:.0} ({:.2} MB/s), sent/s {:.0}",
        msgs_per_s,
        mb_per_s,
        s.sent as f64 / r.window
    );
    println!(
        "  latency p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        r.p50, r.p99, r.p999, r.max
    );
    if let (Some(c), Some(u), Some(p)) = (cpu_per_msg, user_per_msg, cpu_pct) {
        println!(
            "  server CPU {c:.3} µs per {} (user {u:.3}, system {:.3}), {p:.0} % of a core",
            if what == "msgs" {
                "message"
            } else {
                "delivery"
            },
            c - u
        );
    }
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        println!(
            "  server RSS {:.1} MiB -> {:.1} MiB ({:+.1} MiB in the window)",
            a / 1048576.0,
            b / 1048576.0,
            (b - a) / 1048576.0
        );
    }
    println!("  load generator CPU {:.0} % of a core", r.load_cpu_pct);
    if r.load_cpu_pct > 90.0 {
        println!("  warning: the load generator itself may be the bottleneck");
    }
}
