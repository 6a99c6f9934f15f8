//! Shared pieces of the ws-proto fuzz targets: a probe for not-yet-implemented modules, a checker
//! for the bytes a `Connection` writes, a checker for the events it emits, and the driver of the
//! two byte-stream targets (`server_stream`, `client_stream`).

pub mod puff;

use std::collections::VecDeque;
use std::panic::{self, UnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ws_proto::close::MAX_REASON_LEN;
use ws_proto::deflate::{self, PerMessageDeflate};
use ws_proto::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, RSV1};
use ws_proto::handshake::{self, client, server, Headers, RequestParser, Response, ResponseParser};
use ws_proto::{
    Accept, Backpressure, ClientRequest, CloseCode, Config, Connection, DataKind, DeflateConfig,
    DeflateParams, Event, Role,
};

// ---------------------------------------------------------------------------------------------
// Which parts of ws-proto are implemented.
// ---------------------------------------------------------------------------------------------

/// Which modules are real code rather than `todo!()` stubs.
///
/// The handshake and deflate modules were written in parallel with these targets; a target that
/// needs a stub skips that path instead of "crashing" on `todo!()`. A panic that is *not* a
/// `todo!()` counts as implemented, so real bugs still surface in the fuzz loop.
#[derive(Clone, Copy, Debug)]
pub struct Avail {
    /// handshake/ (request/response parsing, accept key, building requests and responses).
    pub handshake: bool,
    /// deflate/ (negotiation and the codec).
    pub deflate: bool,
}

fn is_stub(f: impl FnOnce() + UnwindSafe) -> bool {
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let r = panic::catch_unwind(f);
    panic::set_hook(hook);
    match r {
        Ok(()) => false,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("");
            msg.contains("not yet implemented") || msg.contains("not implemented")
        }
    }
}

/// Probes once per process.
pub fn avail() -> Avail {
    static AVAIL: OnceLock<Avail> = OnceLock::new();
    *AVAIL.get_or_init(|| {
        let hs_stubs = [
            is_stub(|| {
                handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
            }),
            is_stub(|| {
                let _ = RequestParser::new(4096, 32).push(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            }),
            is_stub(|| {
                let _ = ResponseParser::new(4096, 32).push(b"HTTP/1.1 101 X\r\n\r\n");
            }),
            is_stub(|| {
                client::key_from_nonce([7; 16]);
            }),
            is_stub(|| {
                let mut out = Vec::new();
                client::build_request(&ClientRequest::new("h", "/"), "k", None, &mut out);
            }),
            is_stub(|| {
                let mut out = Vec::new();
                server::response_101("k", None, None, &[], &mut out);
            }),
            is_stub(|| {
                let mut out = Vec::new();
                server::http_response(400, &[], b"x", &mut out);
            }),
            is_stub(|| {
                let r = Response {
                    status: 101,
                    headers: Headers::default(),
                    protocol: None,
                };
                let _ = r.validate("k", &[]);
            }),
        ];
        let cfg = DeflateConfig::default();
        let params = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        let df_stubs = [
            is_stub(|| {
                let _ = deflate::client_offer(&DeflateConfig::default());
            }),
            is_stub(|| {
                let _ =
                    deflate::negotiate_server(&DeflateConfig::default(), &[b"permessage-deflate"]);
            }),
            is_stub(|| {
                let _ = deflate::accept_response(&DeflateConfig::default(), &[]);
            }),
            is_stub(move || {
                let mut d = PerMessageDeflate::new(params, Role::Server, &cfg);
                d.compress(&[b'a'; 200], &mut Vec::new());
            }),
            is_stub(move || {
                let mut d = PerMessageDeflate::new(params, Role::Server, &DeflateConfig::default());
                let _ = d.decompress(&[0xf2, 0x48, 0xcd], &mut Vec::new(), 100);
            }),
            is_stub(move || {
                let mut d = PerMessageDeflate::new(params, Role::Server, &DeflateConfig::default());
                let _ = d.finish_message(&mut Vec::new(), 100);
            }),
        ];
        Avail {
            handshake: !hs_stubs.iter().any(|&s| s),
            deflate: !df_stubs.iter().any(|&s| s),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------

/// Reads bytes from the front of a slice, yielding zeros when it runs out.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    /// Next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
}

/// Small, limit-hitting sizes (index by a nibble).
pub const SIZES: [usize; 16] = [
    0,
    1,
    2,
    5,
    16,
    125,
    126,
    127,
    200,
    1000,
    4096,
    65535,
    65536,
    100_000,
    1 << 20,
    16 << 20,
];

/// Window bits 8..=15 from any byte.
pub fn window_bits(b: u8) -> u8 {
    8 + (b % 8)
}

/// `needle` occurs in `hay`, ASCII case-insensitively.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Output checker: the bytes one endpoint writes must be well-formed, and nothing may follow its
// close frame.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum OutState {
    /// Expecting an HTTP head (client request or server response).
    HttpHead { buf: Vec<u8> },
    /// After a non-101 response: `remaining` body bytes, then nothing.
    HttpBody { remaining: usize },
    /// Frames.
    Frames,
    /// Done: no byte may follow.
    End(&'static str),
}

/// Parses the bytes an endpoint writes, as a peer would, and checks them.
#[derive(Debug)]
pub struct OutputChecker {
    /// Role of the endpoint that writes.
    role: Role,
    state: OutState,
    hdr: Vec<u8>,
    /// Payload of the current frame still to come, and its header.
    payload_left: u64,
    cur: Option<FrameHeader>,
    ctrl: Vec<u8>,
    /// Kind of the data message being sent (between its first and final frame).
    in_message: bool,
    /// Total bytes seen.
    pub total: u64,
    /// A close frame was seen.
    pub sent_close: bool,
    /// Frames seen by opcode (for tests of the harness).
    pub frames: u64,
}

impl OutputChecker {
    /// Checks the output of an endpoint in `role`; `http_first` when the connection starts with
    /// an opening handshake.
    pub fn new(role: Role, http_first: bool) -> Self {
        OutputChecker {
            role,
            state: if http_first {
                OutState::HttpHead { buf: Vec::new() }
            } else {
                OutState::Frames
            },
            hdr: Vec::new(),
            payload_left: 0,
            cur: None,
            ctrl: Vec::new(),
            in_message: false,
            total: 0,
            sent_close: false,
            frames: 0,
        }
    }

    /// Feeds written bytes.
    pub fn feed(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            match &mut self.state {
                OutState::End(why) => {
                    panic!(
                        "{:?} wrote {} byte(s) after {why}: {:02x?}",
                        self.role,
                        data.len(),
                        &data[..data.len().min(32)]
                    );
                }
                OutState::HttpHead { buf } => {
                    // Feed byte by byte until the blank line.
                    buf.push(data[0]);
                    data = &data[1..];
                    assert!(buf.len() <= 64 << 10, "HTTP head over 64 KiB");
                    if buf.ends_with(b"\r\n\r\n") {
                        let head = std::mem::take(buf);
                        self.on_http_head(&head);
                    }
                }
                OutState::HttpBody { remaining } => {
                    let n = (*remaining).min(data.len());
                    *remaining -= n;
                    data = &data[n..];
                    if *remaining == 0 {
                        self.state = OutState::End("the HTTP response (Connection: close)");
                    }
                }
                OutState::Frames => {
                    let used = self.feed_frames(data);
                    data = &data[used..];
                }
            }
        }
    }

    fn on_http_head(&mut self, head: &[u8]) {
        let text = String::from_utf8_lossy(head);
        match self.role {
            Role::Client => {
                assert!(text.starts_with("GET "), "client request: {text:?}");
                assert!(
                    contains_ci(head, b"\r\nsec-websocket-key:"),
                    "no key: {text:?}"
                );
                assert!(
                    contains_ci(head, b"\r\nsec-websocket-version: 13\r\n"),
                    "no version 13: {text:?}"
                );
                self.state = OutState::Frames;
            }
            Role::Server => {
                assert!(text.starts_with("HTTP/1.1 "), "server response: {text:?}");
                let status: u16 = text[9..12].parse().expect("status code");
                if status == 101 {
                    assert!(
                        contains_ci(head, b"\r\nsec-websocket-accept:"),
                        "101 without accept: {text:?}"
                    );
                    self.state = OutState::Frames;
                } else {
                    let lower = text.to_ascii_lowercase();
                    let cl = lower
                        .split("\r\n")
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .unwrap_or_else(|| panic!("no Content-Length: {text:?}"))
                        .trim()
                        .parse::<usize>()
                        .expect("Content-Length value");
                    self.state = if cl == 0 {
                        OutState::End("the HTTP response (Connection: close)")
                    } else {
                        OutState::HttpBody { remaining: cl }
                    };
                }
            }
        }
    }

    /// Returns how many bytes were used.
    fn feed_frames(&mut self, data: &[u8]) -> usize {
        let mut pos = 0;
        while pos < data.len() {
            if let Some(h) = self.cur {
                let n = (self.payload_left.min((data.len() - pos) as u64)) as usize;
                if h.opcode == OpCode::Close {
                    self.ctrl.extend_from_slice(&data[pos..pos + n]);
                }
                pos += n;
                self.payload_left -= n as u64;
                if self.payload_left == 0 {
                    self.cur = None;
                    if h.opcode == OpCode::Close {
                        self.on_close_payload(h);
                        // Whatever follows is an error, reported by the next feed.
                        return pos;
                    }
                }
                continue;
            }
            // Collect a header.
            let need_more = loop {
                match FrameHeader::decode(&self.hdr) {
                    Ok(Some(_)) => break false,
                    Ok(None) => {
                        if pos == data.len() {
                            break true;
                        }
                        self.hdr.push(data[pos]);
                        pos += 1;
                    }
                    Err(e) => panic!(
                        "{:?} wrote an undecodable header {:02x?}: {e}",
                        self.role, self.hdr
                    ),
                }
            };
            if need_more {
                return pos;
            }
            let (h, n) = FrameHeader::decode(&self.hdr).unwrap().unwrap();
            assert_eq!(n, self.hdr.len());
            assert_eq!(
                n,
                h.encoded_len(),
                "{:?} wrote a non-minimal length: {:02x?}",
                self.role,
                self.hdr
            );
            self.hdr.clear();
            self.on_header(h);
            self.frames += 1;
            if h.payload_len == 0 {
                if h.opcode == OpCode::Close {
                    self.on_close_payload(h);
                    return pos;
                }
            } else {
                self.payload_left = h.payload_len;
                self.cur = Some(h);
                self.ctrl.clear();
            }
        }
        pos
    }

    fn on_header(&mut self, h: FrameHeader) {
        let role = self.role;
        match role {
            Role::Client => assert!(h.mask.is_some(), "client wrote an unmasked frame {h:?}"),
            Role::Server => assert!(h.mask.is_none(), "server wrote a masked frame {h:?}"),
        }
        assert_eq!(h.rsv & !RSV1, 0, "{role:?} set RSV2/RSV3: {h:?}");
        if h.opcode.is_control() {
            assert!(h.fin, "{role:?} fragmented a control frame: {h:?}");
            assert_eq!(h.rsv, 0, "{role:?} compressed a control frame: {h:?}");
            assert!(
                h.payload_len <= MAX_CONTROL_PAYLOAD as u64,
                "{role:?} wrote a control frame over 125 bytes: {h:?}"
            );
            return;
        }
        match h.opcode {
            OpCode::Continuation => {
                assert!(
                    self.in_message,
                    "{role:?} wrote a continuation outside a message"
                );
                assert_eq!(h.rsv, 0, "{role:?} set RSV1 on a continuation");
            }
            _ => assert!(
                !self.in_message,
                "{role:?} started a new message inside a fragmented one: {h:?}"
            ),
        }
        self.in_message = !h.fin;
    }

    fn on_close_payload(&mut self, h: FrameHeader) {
        let mut p = std::mem::take(&mut self.ctrl);
        if let Some(k) = h.mask {
            for (i, b) in p.iter_mut().enumerate() {
                *b ^= k[i % 4];
            }
        }
        match p.len() {
            0 => {}
            1 => panic!("{:?} wrote a one-byte close payload", self.role),
            _ => {
                let code = u16::from_be_bytes([p[0], p[1]]);
                assert!(
                    CloseCode::is_valid_on_wire(code),
                    "{:?} wrote close code {code}",
                    self.role
                );
                assert!(
                    std::str::from_utf8(&p[2..]).is_ok(),
                    "{:?} wrote a non-UTF-8 close reason",
                    self.role
                );
            }
        }
        self.sent_close = true;
        self.state = OutState::End("its close frame");
    }
}

// ---------------------------------------------------------------------------------------------
// Event checker.
// ---------------------------------------------------------------------------------------------

/// What an endpoint's events must look like.
#[derive(Debug)]
pub struct EventChecker {
    role: Role,
    handshake: bool,
    streaming: bool,
    max_message: usize,
    /// Events seen.
    pub events: u64,
    /// The terminal event was seen.
    pub closed: bool,
    /// The handshake event (Request/Connected/HttpRequest) was seen.
    pub handshake_event: bool,
    /// Streaming: the message being received: its kind and an unfinished UTF-8 sequence.
    fragments: Option<(DataKind, Vec<u8>, bool)>,
    /// Closed event contents, when seen.
    pub closed_event: Option<ws_proto::Closed>,
}

impl EventChecker {
    /// For an endpoint in `role`; `handshake` when it starts with the opening handshake.
    pub fn new(role: Role, handshake: bool, config: &Config) -> Self {
        EventChecker {
            role,
            handshake,
            streaming: config.streaming,
            max_message: config.max_message_size,
            events: 0,
            closed: false,
            handshake_event: false,
            fragments: None,
            closed_event: None,
        }
    }

    /// Checks one event (taken from `conn`, which is checked too).
    pub fn check(&mut self, ev: &Event, conn: &Connection) {
        let role = self.role;
        assert!(
            !self.closed,
            "{role:?}: event after Closed: {:?}",
            abbreviate(ev)
        );
        self.events += 1;
        match ev {
            Event::Request(_) | Event::HttpRequest(_) => {
                assert_eq!(role, Role::Server, "client got {:?}", abbreviate(ev));
                assert!(self.handshake, "request event without a handshake");
                assert!(!self.handshake_event, "second handshake event");
                assert_eq!(self.events, 1, "request event is not the first event");
                self.handshake_event = true;
            }
            Event::Connected(resp) => {
                assert_eq!(role, Role::Client, "server got Connected");
                assert!(self.handshake, "Connected without a handshake");
                assert!(!self.handshake_event, "second Connected");
                assert_eq!(self.events, 1, "Connected is not the first event");
                assert_eq!(resp.status, 101, "Connected with status {}", resp.status);
                self.handshake_event = true;
            }
            Event::Message(m) => {
                self.check_open_data();
                assert!(!self.streaming, "{role:?}: whole message in streaming mode");
                assert!(
                    m.as_bytes().len() <= self.max_message,
                    "{role:?}: message of {} bytes over max_message_size {}",
                    m.as_bytes().len(),
                    self.max_message
                );
            }
            Event::Fragment { kind, data, fin } => {
                self.check_open_data();
                assert!(self.streaming, "{role:?}: fragment outside streaming mode");
                assert!(
                    data.len() <= self.max_message,
                    "{role:?}: fragment of {} bytes over max_message_size {}",
                    data.len(),
                    self.max_message
                );
                let entry = self
                    .fragments
                    .get_or_insert_with(|| (*kind, Vec::new(), true));
                assert_eq!(
                    entry.0, *kind,
                    "{role:?}: fragment kind changed mid-message"
                );
                if *kind == DataKind::Text {
                    // Incremental: `entry.1` holds only an unfinished UTF-8 sequence (≤ 3 bytes).
                    entry.1.extend_from_slice(data);
                    match std::str::from_utf8(&entry.1) {
                        Ok(_) => entry.1.clear(),
                        Err(e) => {
                            assert!(
                                e.error_len().is_none() && !*fin,
                                "{role:?}: streamed text is not UTF-8 (fin={fin}): {e}"
                            );
                            let keep = e.valid_up_to();
                            entry.1.drain(..keep);
                            assert!(entry.1.len() <= 3);
                        }
                    }
                }
                if *fin {
                    self.fragments = None;
                }
            }
            Event::Ping(p) | Event::Pong(p) => {
                assert!(
                    p.len() <= MAX_CONTROL_PAYLOAD,
                    "{role:?}: control payload {}",
                    p.len()
                );
            }
            Event::Closed(c) => {
                assert!(conn.is_closed(), "{role:?}: Closed event but !is_closed()");
                assert!(!conn.is_open(), "{role:?}: Closed event but is_open()");
                assert!(
                    CloseCode::is_valid_on_wire(c.code)
                        || c.code == CloseCode::NO_STATUS_RECEIVED
                        || c.code == CloseCode::ABNORMAL_CLOSURE,
                    "{role:?}: Closed with code {}",
                    c.code
                );
                assert!(
                    c.reason.len() <= MAX_REASON_LEN,
                    "{role:?}: reason too long"
                );
                if c.clean {
                    assert!(c.error.is_none(), "{role:?}: clean close with error {c:?}");
                }
                self.closed = true;
                self.closed_event = Some(ws_proto::Closed::clone(c));
            }
        }
    }

    fn check_open_data(&self) {
        if self.handshake {
            assert!(
                self.handshake_event,
                "{:?}: data before the handshake completed",
                self.role
            );
        }
    }
}

fn abbreviate(ev: &Event) -> String {
    let mut s = format!("{ev:?}");
    s.truncate(200);
    s
}

/// Invariants of any connection at any time.
pub fn check_conn(conn: &Connection, ev: &EventChecker) {
    if conn.should_close_transport() {
        assert!(
            conn.is_closed(),
            "{:?}: should_close_transport() before the connection is closed",
            conn.role()
        );
    }
    if conn.is_closed() {
        assert!(!conn.is_open());
    }
    // Once the terminal state is reached, the Closed event must be queued or already taken.
    let _ = ev;
}

// ---------------------------------------------------------------------------------------------
// The byte-stream driver of server_stream and client_stream.
// ---------------------------------------------------------------------------------------------

/// Deterministic client seed, so the seed corpus can hold valid responses (the generator computes
/// the same key).
pub const CLIENT_SEED: [u8; 32] = [0; 32];

/// Virtual-clock timers used by the stream targets.
fn timers(config: &mut Config, keepalive: bool) {
    config.handshake_timeout = Some(Duration::from_secs(10));
    config.keepalive_interval = keepalive.then(|| Duration::from_secs(1));
    config.keepalive_timeout = Duration::from_secs(2);
    config.close_timeout = Duration::from_secs(3);
}

/// Runs one endpoint over an arbitrary byte stream.
///
/// Input layout: 4 bytes of knobs, then `n` (1 byte), then `n` schedule bytes, then the stream.
///
/// * byte 0: bit0 from_upgraded (else the opening handshake), bit1 streaming, bit2 deflate
///   (config enabled / params agreed), bit3 `Backpressure::DropMessage`, bit4 auto_pong off,
///   bit5 keepalive, bit6 server_no_context_takeover, bit7 client_no_context_takeover.
/// * byte 1: max_frame_size (low nibble) and max_message_size (high nibble), from [`SIZES`].
/// * byte 2: window bits (server low nibble, client high nibble).
/// * byte 3: max_handshake_bytes (low nibble, from [`SIZES`], at least 16) and
///   max_handshake_headers (high nibble); bit7 also puts a recycled buffer of
///   256 + 32 × byte 2 bytes in the large-message pool.
/// * schedule bytes: `00xxxxxx` feed x+1 bytes; `01xxxxxx` feed (x+1)*64 bytes; `10xxxxxx`
///   advance the clock (x even: to `poll_timeout()`, x odd: by x*50 ms) and run due timers;
///   `110xxxxx` write x*16 bytes of output (x=0: all); `111xxxxx` x=0 EOF, x=1 abort, x=2
///   abort the next planned read while it runs, else write all output. The rest of the stream
///   is fed in one chunk, then timers run out.
///
/// Each chunk is read as the adapters read (straight into a large message, a predicted one,
/// small messages lent in place, then the rest), and a mirror connection takes the same chunks
/// through plain `receive` only, with the same commands and clock: events and output must be
/// the same, byte for byte, at every step.
pub fn run_stream(role: Role, data: &[u8]) {
    let avail = avail();
    let mut b = Bytes::new(data);
    let k0 = b.u8();
    let k1 = b.u8();
    let k2 = b.u8();
    let k3 = b.u8();
    let nsched = b.u8() as usize;
    // Recycled buffers for large messages (process-wide: they may also serve later inputs,
    // which changes only where bytes are read, never the events).
    #[cfg(fuzzing)]
    if k3 & 0x80 != 0 {
        ws_proto::fuzz_recycle(256 + k2 as usize * 32);
    }
    let sched = b.take(nsched);
    let stream = b.rest();

    let mut upgraded = k0 & 1 != 0;
    if !avail.handshake || (role == Role::Client && !avail.deflate) {
        // Connection::client calls deflate::client_offer even with deflate off.
        upgraded = true;
    }
    let use_deflate = k0 & 4 != 0 && avail.deflate;

    let mut config = Config::default();
    config.streaming = k0 & 2 != 0;
    config.backpressure = if k0 & 8 != 0 {
        Backpressure::DropMessage
    } else {
        Backpressure::Close
    };
    config.auto_pong = k0 & 16 == 0;
    timers(&mut config, k0 & 32 != 0);
    config.max_frame_size = SIZES[(k1 & 15) as usize];
    config.max_message_size = SIZES[(k1 >> 4) as usize];
    config.max_handshake_bytes = SIZES[(k3 & 15) as usize].max(16);
    config.max_handshake_headers = (k3 >> 4) as usize * 4;
    config.max_buffered_output = 4096;
    config.deflate.enabled = use_deflate;
    config.deflate.server_no_context_takeover = k0 & 64 != 0;
    config.deflate.client_no_context_takeover = k0 & 128 != 0;
    if k2 & 0x08 != 0 {
        config.deflate.server_max_window_bits = Some(window_bits(k2));
    }
    if k2 & 0x80 != 0 {
        config.deflate.client_max_window_bits = Some(window_bits(k2 >> 4));
    }
    config.deflate.threshold = 0;

    let start = Instant::now();
    let mut now = start;
    let connect = || {
        if upgraded {
            let params = use_deflate.then(|| DeflateParams {
                server_no_context_takeover: k0 & 64 != 0,
                client_no_context_takeover: k0 & 128 != 0,
                server_max_window_bits: window_bits(k2),
                client_max_window_bits: window_bits(k2 >> 4),
            });
            Connection::from_upgraded(role, config.clone(), params, CLIENT_SEED, now)
        } else {
            match role {
                Role::Server => Connection::server(config.clone(), now),
                Role::Client => Connection::client(
                    config.clone(),
                    ClientRequest::new("localhost", "/"),
                    CLIENT_SEED,
                    now,
                ),
            }
        }
    };
    let mut conn = connect();
    let mirror = Mirror {
        conn: connect(),
        events: Vec::new(),
        output: Vec::new(),
    };
    assert_eq!(conn.role(), role);
    if upgraded {
        assert!(conn.is_open());
        assert_eq!(conn.deflate_params().is_some(), use_deflate);
    }

    let mut d = Driver {
        out: OutputChecker::new(role, !upgraded),
        ev: EventChecker::new(role, !upgraded, &config),
        // What the endpoint may have queued since its output was last empty.
        budget: conn.buffered_amount() + 256,
        eof: false,
        reads: 0,
        abort_in_read: false,
        events: Vec::new(),
        output: Vec::new(),
        mirror,
    };
    d.drain_events(&mut conn);

    let mut pos = 0;
    for &s in sched {
        match s >> 6 {
            0 | 1 => {
                let n = if s >> 6 == 0 {
                    (s & 63) as usize + 1
                } else {
                    ((s & 63) as usize + 1) * 64
                };
                let n = n.min(stream.len() - pos);
                d.receive(&mut conn, &stream[pos..pos + n], now);
                pos += n;
            }
            2 => {
                let x = s & 63;
                if x % 2 == 0 {
                    if let Some(t) = conn.poll_timeout() {
                        now = now.max(t);
                    }
                } else {
                    now += Duration::from_millis(x as u64 * 50);
                }
                d.timers(&mut conn, now);
            }
            _ => {
                let x = s & 31;
                if s & 0x20 == 0 {
                    d.write(&mut conn, if x == 0 { usize::MAX } else { x as usize * 16 });
                } else if x == 0 {
                    d.eof(&mut conn, now);
                } else if x == 1 {
                    d.abort(&mut conn);
                } else if x == 2 {
                    // The next read that `plan_predicted` plans is aborted while it runs.
                    d.abort_in_read = true;
                } else {
                    d.write(&mut conn, usize::MAX);
                }
            }
        }
    }
    if pos < stream.len() {
        d.receive(&mut conn, &stream[pos..], now);
    }
    // Let the peer read everything, then run the clock out: every connection must end.
    for _ in 0..8 {
        d.write(&mut conn, usize::MAX);
        match conn.poll_timeout() {
            Some(t) => {
                now = now.max(t);
                d.timers(&mut conn, now);
            }
            None => break,
        }
    }
    d.write(&mut conn, usize::MAX);
    if !conn.is_closed() {
        d.eof(&mut conn, now);
    }
    assert!(d.ev.closed);
}

struct Driver {
    out: OutputChecker,
    ev: EventChecker,
    budget: usize,
    eof: bool,
    /// Reads so far (see `receive`).
    reads: u32,
    /// The next planned read is aborted while it runs, as another of ws-std's threads may end a
    /// connection whose reader waits in its read (see `receive`).
    abort_in_read: bool,
    /// Events and output bytes since they were last compared with the mirror's.
    events: Vec<Event>,
    output: Vec<u8>,
    mirror: Mirror,
}

/// The same connection given the same input, commands and clock, its input through plain
/// `receive` only: the other ways of reading (in place, predicted, direct) must give the same
/// events and output, byte for byte.
struct Mirror {
    conn: Connection,
    events: Vec<Event>,
    output: Vec<u8>,
}

impl Mirror {
    fn drain_events(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            match &e {
                Event::Request(_) => {
                    let _ = self.conn.accept(Accept::default());
                }
                Event::HttpRequest(_) => {
                    let _ = self.conn.respond(
                        200,
                        &[("Content-Type".into(), "text/plain".into())],
                        b"hello",
                    );
                }
                _ => {}
            }
            self.events.push(e);
        }
    }

    /// Takes `n` bytes of output, as the connection's were taken.
    fn write(&mut self, mut n: usize) {
        while n > 0 && self.conn.wants_write() {
            let chunk = self.conn.pending_output();
            let k = chunk.len().min(n);
            self.output.extend_from_slice(&chunk[..k]);
            self.conn.consume_output(k);
            n -= k;
        }
    }
}

impl Driver {
    fn drain_events(&mut self, conn: &mut Connection) {
        while let Some(e) = conn.poll_event() {
            self.ev.check(&e, conn);
            self.events.push(e.clone());
            match e {
                Event::Request(req) => {
                    assert!(!req.key.is_empty(), "upgrade request without a key");
                    self.budget += 1024;
                    conn.accept(Accept::default())
                        .expect("accept right after Event::Request");
                    assert!(conn.is_open() || conn.is_closed());
                }
                Event::HttpRequest(_) => {
                    self.budget += 1024;
                    conn.respond(
                        200,
                        &[("Content-Type".into(), "text/plain".into())],
                        b"hello",
                    )
                    .expect("respond right after Event::HttpRequest");
                    assert!(conn.is_closed(), "respond() must end the connection");
                }
                _ => {}
            }
        }
        check_conn(conn, &self.ev);
        if conn.is_closed() {
            assert!(self.ev.closed, "is_closed() but no Closed event");
        }
        self.mirror.drain_events();
        self.compare(conn);
        let buffered = conn.buffered_amount();
        if buffered == 0 {
            self.budget = 256;
        }
        assert!(
            buffered <= self.budget,
            "{:?}: {buffered} bytes buffered, budget {}",
            conn.role(),
            self.budget
        );
    }

    fn receive(&mut self, conn: &mut Connection, data: &[u8], now: Instant) {
        if self.eof || data.is_empty() {
            return;
        }
        // Auto pongs and close echoes: at most 3x what came in (a client masks its replies);
        // or a close frame with a reason (at most 6 + 125 bytes) when it fails the connection.
        self.budget += 3 * data.len() + 16 + 131;
        // As ws-mio reads: one read straight into a message's buffer when the connection
        // predicts one.
        let fill = |buf: &mut [u8]| {
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            n
        };
        if self.abort_in_read {
            // As ws-std reads while another thread ends the connection: the read planned, the
            // connection aborted, then what the read brought taken in. Nothing of it may come
            // out as an event after the Closed.
            if let Some(mut plan) = conn.plan_predicted() {
                self.abort_in_read = false;
                // The mirror is aborted with it (`abort`) and takes none of the bytes: after
                // an abort nothing is taken in.
                let n = fill(plan.buffer());
                self.abort(conn);
                conn.finish_predicted(plan, &Ok(n), now);
                self.drain_events(conn);
                assert!(!conn.wants_write(), "output after abort()");
                return;
            }
        }
        // A large frame under way goes straight into its (recycled) message buffer, as in
        // both adapters; else a predicted one.
        let taken = conn
            .receive_direct(now, |buf| Ok(fill(buf)))
            .or_else(|| conn.receive_predicted(now, |buf| Ok(fill(buf))));
        let taken = taken.map_or(0, |r| r.expect("the read cannot fail"));
        let mut rest = data[taken..].to_vec();
        let mut pos = 0;
        // As the adapters read: whole small messages taken where they lie, then the rest. Every
        // other read only, so that the decoder's own whole-message path is fuzzed as well.
        self.reads += 1;
        if self.reads.is_multiple_of(2) {
            while let Some((message, used)) = conn.receive_in_place(&mut rest[pos..], now) {
                let event = Event::Message(message.to_message());
                assert!(used > 0 && used <= rest.len() - pos, "took {used} bytes");
                pos += used;
                self.ev.check(&event, conn);
                self.events.push(event);
            }
        }
        if pos < rest.len() {
            conn.receive(&rest[pos..], now);
        }
        // After the connection, so that a recycled buffer in the pool goes to it, not to the
        // mirror, which never reads straight into one.
        self.mirror.conn.receive(data, now);
        self.drain_events(conn);
    }

    /// The events and output so far must be the mirror's.
    fn compare(&mut self, conn: &Connection) {
        assert!(
            self.events == self.mirror.events,
            "{:?}: events differ from plain receive's:\n  {:?}\n  {:?}",
            conn.role(),
            self.events.iter().map(abbreviate).collect::<Vec<_>>(),
            self.mirror
                .events
                .iter()
                .map(abbreviate)
                .collect::<Vec<_>>()
        );
        assert!(
            self.output == self.mirror.output,
            "{:?}: output differs from plain receive's",
            conn.role()
        );
        self.events.clear();
        self.mirror.events.clear();
        self.output.clear();
        self.mirror.output.clear();
        assert_eq!(
            conn.is_closed(),
            self.mirror.conn.is_closed(),
            "closed here and not there"
        );
    }

    fn abort(&mut self, conn: &mut Connection) {
        conn.abort();
        self.mirror.conn.abort();
        self.eof = true;
        assert_eq!(conn.buffered_amount(), 0, "output left after abort()");
        self.drain_events(conn);
        assert!(self.ev.closed, "no Closed after abort()");
    }

    fn timers(&mut self, conn: &mut Connection, now: Instant) {
        assert_eq!(conn.poll_timeout(), self.mirror.conn.poll_timeout());
        if conn.poll_timeout().is_some_and(|t| t <= now) {
            self.budget += 32;
            conn.handle_timeout(now);
            self.mirror.conn.handle_timeout(now);
            self.drain_events(conn);
            if let Some(t) = conn.poll_timeout() {
                assert!(
                    t > now,
                    "{:?}: poll_timeout() still due after handle_timeout()",
                    conn.role()
                );
            }
        }
    }

    fn eof(&mut self, conn: &mut Connection, now: Instant) {
        conn.receive_eof(now);
        self.mirror.conn.receive_eof(now);
        self.eof = true;
        self.drain_events(conn);
        assert!(self.ev.closed, "no Closed after receive_eof()");
        assert!(conn.should_close_transport());
        assert!(conn.pending_output().is_empty());
        assert!(!conn.wants_write());
    }

    /// Writes up to `max` bytes of output to the (imaginary) peer.
    fn write(&mut self, conn: &mut Connection, mut max: usize) {
        while max > 0 && conn.wants_write() {
            let chunk = conn.pending_output();
            assert!(
                !chunk.is_empty(),
                "wants_write() with empty pending_output()"
            );
            let n = chunk.len().min(max);
            self.out.feed(&chunk[..n]);
            self.output.extend_from_slice(&chunk[..n]);
            self.mirror.write(n);
            let before = conn.buffered_amount();
            conn.consume_output(n);
            assert_eq!(conn.buffered_amount(), before - n);
            max -= n;
        }
        if !conn.wants_write() && conn.buffered_amount() == 0 {
            self.budget = 256;
        }
        check_conn(conn, &self.ev);
        self.compare(conn);
    }
}

/// A queue of expected messages, for the pair target.
pub type Expected = VecDeque<(DataKind, Vec<u8>)>;
