//! A client and a server `Connection` (made with `from_upgraded`, optionally with deflate agreed)
//! talking to each other under a structured list of operations: sends of every kind, pings,
//! closes, partial deliveries in either direction and a virtual clock.
//!
//! Invariants:
//! * each side receives exactly the messages the other sent, in order, same kind and bytes
//!   (whole or streamed), as long as it has not closed; a clean close on one side means every
//!   message the other sent arrived before it;
//! * after all output is delivered, an open receiver has nothing left to receive;
//! * the bytes each side writes are well-formed frames (client masked, server not, control
//!   frames short and whole, fragments in order), and nothing follows a close frame;
//! * exactly one `Closed` per side, nothing after it, and `should_close_transport()` only after it;
//! * send results agree with the state (NotOpen/AlreadyClosing exactly when not open,
//!   StreamState exactly when a streamed message is unfinished, BufferFull only with a non-empty
//!   queue), DropMessage leaves the queue unchanged, Close policy closes;
//! * buffered output stays within `max_buffered_output` plus one message and the control
//!   frames queued meanwhile, and a message admitted into a non-empty queue keeps it within
//!   `max_buffered_output` (`WS_FUZZ_LAX_BACKPRESSURE=1` drops this last check).
#![no_main]
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::{
    Backpressure, CloseCode, Config, Connection, DataKind, DeflateParams, Error, Event, Role,
};
use ws_proto_fuzz::{avail, check_conn, EventChecker, OutputChecker, SIZES};

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Arbitrary, Debug)]
struct SideCfg {
    streaming: bool,
    max_message: u8,
    max_frame: u8,
    outgoing_frame: u8,
    auto_pong: bool,
}

#[derive(Arbitrary, Debug)]
struct DeflateCfg {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_bits: u8,
    client_bits: u8,
    level: u8,
    threshold: u8,
}

#[derive(Arbitrary, Debug)]
struct PairCfg {
    client: SideCfg,
    server: SideCfg,
    max_buffered: u16,
    drop_policy: bool,
    keepalive: bool,
    deflate: Option<DeflateCfg>,
    seed: u64,
}

#[derive(Arbitrary, Debug)]
enum Op {
    SendText(Side, String),
    SendBinary(Side, Vec<u8>),
    SendFragment {
        side: Side,
        text: bool,
        data: String,
        fin: bool,
    },
    /// A large, compressible message: `len` bytes of a repeating pattern.
    SendBig {
        side: Side,
        text: bool,
        len: u16,
        fill: u8,
    },
    Ping(Side, Vec<u8>),
    Pong(Side, Vec<u8>),
    Close {
        side: Side,
        code: u8,
        reason: String,
    },
    /// Delivers up to this many bytes of one side's output to the other (0: all).
    Deliver(Side, u16),
    AdvanceTime(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    cfg: PairCfg,
    ops: Vec<Op>,
}

const CODES: [u16; 14] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
];

fn strict_backpressure() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var_os("WS_FUZZ_LAX_BACKPRESSURE").is_none())
}

/// One endpoint with its checkers and its half of the model.
struct End {
    conn: Connection,
    ev: EventChecker,
    out: OutputChecker,
    /// Messages this side sent that the peer has yet to receive.
    sent: VecDeque<(DataKind, Vec<u8>)>,
    /// A streamed message this side is sending.
    sending: Option<(DataKind, Vec<u8>)>,
    /// Streaming receiver: the message being assembled from fragments.
    receiving: Option<(DataKind, Vec<u8>)>,
    /// Allowance over `max_buffered_output` since the queue was last empty.
    allow: usize,
    outgoing_frame: usize,
}

impl End {
    fn new(
        role: Role,
        config: Config,
        deflate: Option<DeflateParams>,
        seed: [u8; 32],
        now: Instant,
    ) -> End {
        let conn = Connection::from_upgraded(role, config.clone(), deflate, seed, now);
        End {
            ev: EventChecker::new(role, false, &config),
            out: OutputChecker::new(role, false),
            conn,
            sent: VecDeque::new(),
            sending: None,
            receiving: None,
            allow: 0,
            outgoing_frame: config.outgoing_frame_size.max(1),
        }
    }

    /// Upper bound of the encoded size of a data message of `len` bytes.
    fn encoded_bound(&self, len: usize) -> usize {
        let frames = len.div_ceil(self.outgoing_frame).max(1);
        len + 14 * frames
    }
}

struct Pair {
    c: End,
    s: End,
    now: Instant,
    link_up: bool,
    max_buffered: usize,
    policy: Backpressure,
}

impl Pair {
    fn end(&mut self, side: Side) -> (&mut End, &mut End) {
        match side {
            Side::Client => (&mut self.c, &mut self.s),
            Side::Server => (&mut self.s, &mut self.c),
        }
    }

    /// Drains and checks the events of `side`, matching messages against what the peer sent.
    fn drain(&mut self, side: Side) {
        let max_buffered = self.max_buffered;
        let (me, peer) = self.end(side);
        while let Some(e) = me.conn.poll_event() {
            me.ev.check(&e, &me.conn);
            match e {
                Event::Message(m) => {
                    let want = peer.sent.pop_front().unwrap_or_else(|| {
                        panic!(
                            "{side:?} received an unsent message ({} bytes)",
                            m.as_bytes().len()
                        )
                    });
                    let got = (m.kind(), m.as_bytes().to_vec());
                    assert!(
                        got == want,
                        "{side:?} received {} {:?} bytes, sent {:?} {} bytes",
                        got.1.len(),
                        got.0,
                        want.0,
                        want.1.len()
                    );
                }
                Event::Fragment { kind, data, fin } => {
                    let r = me.receiving.get_or_insert_with(|| (kind, Vec::new()));
                    assert_eq!(r.0, kind);
                    r.1.extend_from_slice(&data);
                    if fin {
                        let got = me.receiving.take().unwrap();
                        let want = peer.sent.pop_front().unwrap_or_else(|| {
                            panic!("{side:?} received an unsent streamed message")
                        });
                        assert!(
                            got == want,
                            "{side:?} streamed {} {:?} bytes, sent {:?} {} bytes",
                            got.1.len(),
                            got.0,
                            want.0,
                            want.1.len()
                        );
                    }
                }
                Event::Closed(c) => {
                    if c.clean {
                        assert!(
                            peer.sent.is_empty(),
                            "{side:?} closed cleanly with {} message(s) from the peer missing",
                            peer.sent.len()
                        );
                    }
                }
                _ => {}
            }
        }
        check_conn(&me.conn, &me.ev);
        if me.conn.is_closed() {
            assert!(me.ev.closed, "{side:?}: is_closed() without a Closed event");
        }
        let buffered = me.conn.buffered_amount();
        if buffered == 0 {
            me.allow = 0;
        }
        assert!(
            buffered <= max_buffered + me.allow,
            "{side:?}: {buffered} bytes buffered; max_buffered_output {max_buffered} + allowance {}",
            me.allow
        );
    }

    /// Control frames and automatic replies are never refused: widen the allowance.
    fn allow(&mut self, side: Side, n: usize) {
        self.end(side).0.allow += n;
    }

    fn send(&mut self, side: Side, kind: DataKind, data: &[u8], fragment: Option<bool>) {
        let policy = self.policy;
        let max_buffered = self.max_buffered;
        let (me, _) = self.end(side);
        let was_open = me.conn.is_open();
        let before = me.conn.buffered_amount();
        let streaming = me.sending.is_some();
        let bound = me.encoded_bound(data.len());
        let r = match fragment {
            None => match kind {
                DataKind::Text => me.conn.send_text(std::str::from_utf8(data).unwrap()),
                DataKind::Binary => me.conn.send_binary(data),
            },
            Some(fin) => me.conn.send_fragment(kind, data, fin),
        };
        let after = me.conn.buffered_amount();
        match &r {
            Ok(()) => {
                assert!(
                    was_open,
                    "{side:?}: send succeeded on a connection that is not open"
                );
                assert!(
                    fragment.is_some() || !streaming,
                    "{side:?}: whole message inside a streamed one"
                );
                assert!(after > before, "{side:?}: a send queued nothing");
                assert!(
                    after - before <= bound,
                    "{side:?}: {} bytes queued for {} bytes",
                    after - before,
                    data.len()
                );
                if before == 0 {
                    // Admitted whatever its size.
                    me.allow += after;
                } else {
                    if strict_backpressure() {
                        assert!(
                            after <= max_buffered,
                            "{side:?}: send admitted into a queue of {before} bytes left {after} > max_buffered_output {max_buffered} ({} payload bytes)",
                            data.len()
                        );
                    }
                    // The admission check counts one header; count the rest of the framing.
                    me.allow += bound.saturating_sub(data.len() + 14);
                }
                match fragment {
                    None => me.sent.push_back((kind, data.to_vec())),
                    Some(fin) => {
                        let m = me.sending.get_or_insert_with(|| (kind, Vec::new()));
                        m.1.extend_from_slice(data);
                        if fin {
                            let m = me.sending.take().unwrap();
                            me.sent.push_back(m);
                        }
                    }
                }
            }
            Err(Error::NotOpen) | Err(Error::AlreadyClosing) => {
                assert!(!was_open, "{side:?}: {r:?} on an open connection");
                assert_eq!(after, before);
            }
            Err(Error::StreamState) => {
                assert!(
                    was_open && fragment.is_none() && streaming,
                    "{side:?}: unexpected StreamState"
                );
                assert_eq!(after, before);
            }
            Err(Error::BufferFull) => {
                assert!(was_open, "{side:?}: BufferFull on a closed connection");
                assert!(before > 0, "{side:?}: BufferFull with an empty queue");
                match policy {
                    Backpressure::DropMessage => {
                        assert_eq!(
                            after, before,
                            "{side:?}: a dropped message changed the queue"
                        );
                        assert!(me.conn.is_open());
                    }
                    Backpressure::Close => {
                        assert!(me.conn.is_closed(), "{side:?}: Close policy did not close");
                        me.allow += 256;
                    }
                }
            }
            Err(e) => panic!("{side:?}: unexpected send error {e:?}"),
        }
        if !me.conn.is_open() {
            me.sending = None;
        }
        self.drain(side);
    }

    fn control(&mut self, side: Side, ping: bool, payload: &[u8]) {
        self.allow(side, 14 + payload.len());
        let (me, _) = self.end(side);
        let was_open = me.conn.is_open();
        let r = if ping {
            me.conn.ping(payload)
        } else {
            me.conn.pong(payload)
        };
        match r {
            Ok(()) => assert!(was_open && payload.len() <= 125),
            Err(Error::ControlPayloadTooLong) => assert!(payload.len() > 125),
            Err(Error::NotOpen) | Err(Error::AlreadyClosing) => assert!(!was_open),
            Err(e) => panic!("{side:?}: unexpected control error {e:?}"),
        }
        self.drain(side);
    }

    fn close(&mut self, side: Side, code: u16, reason: &str) {
        self.allow(side, 14 + 2 + reason.len());
        let (me, _) = self.end(side);
        let was_open = me.conn.is_open();
        let r = me.conn.close(CloseCode::new(code).unwrap(), reason);
        match r {
            Ok(()) => {
                assert!(was_open && reason.len() <= 123);
                assert!(!me.conn.is_open());
                me.sending = None;
            }
            Err(Error::ReasonTooLong) => assert!(reason.len() > 123),
            Err(Error::NotOpen) | Err(Error::AlreadyClosing) => assert!(!was_open),
            Err(e) => panic!("{side:?}: unexpected close error {e:?}"),
        }
        self.drain(side);
    }

    /// Moves up to `max` bytes (0: all) from `from`'s output to its peer.
    fn deliver(&mut self, from: Side, max: usize) -> usize {
        let mut budget = if max == 0 { usize::MAX } else { max };
        let mut moved = 0;
        while self.link_up && budget > 0 {
            let now = self.now;
            let (me, peer) = self.end(from);
            if !me.conn.wants_write() {
                break;
            }
            let chunk = me.conn.pending_output();
            assert!(
                !chunk.is_empty(),
                "{from:?}: wants_write() but nothing pending"
            );
            let n = chunk.len().min(budget);
            let bytes = chunk[..n].to_vec();
            me.out.feed(&bytes);
            me.conn.consume_output(n);
            if me.conn.buffered_amount() == 0 {
                me.allow = 0;
            }
            budget -= n;
            moved += n;
            // The receiver may answer: pongs and a close echo (up to 3x for a masking client),
            // or a close frame with a reason when it fails the connection.
            peer.allow += 3 * n + 16 + 131;
            peer.conn.receive(&bytes, now);
            let to = other(from);
            self.drain(to);
            self.drain(from);
        }
        self.transport_check();
        moved
    }

    /// A side that wants its transport closed closes it: the peer sees EOF.
    fn transport_check(&mut self) {
        for side in [Side::Client, Side::Server] {
            if !self.link_up {
                return;
            }
            let now = self.now;
            let (me, _) = self.end(side);
            if me.conn.should_close_transport() {
                assert!(me.conn.is_closed());
                self.link_up = false;
                let (_, peer) = self.end(side);
                peer.conn.receive_eof(now);
                assert!(peer.conn.is_closed(), "receive_eof() did not close");
                self.drain(other(side));
                let (_, peer) = self.end(side);
                assert!(peer.ev.closed, "no Closed after receive_eof()");
            }
        }
    }

    fn timers(&mut self) {
        let now = self.now;
        for side in [Side::Client, Side::Server] {
            let (me, _) = self.end(side);
            if me.conn.poll_timeout().is_some_and(|t| t <= now) {
                me.allow += 32;
                me.conn.handle_timeout(now);
                if let Some(t) = me.conn.poll_timeout() {
                    assert!(t > now, "{side:?}: timer still due after handle_timeout()");
                }
                self.drain(side);
            }
        }
        self.transport_check();
    }

    fn settle(&mut self) {
        for _ in 0..64 {
            let a = self.deliver(Side::Client, 0);
            let b = self.deliver(Side::Server, 0);
            if a + b == 0 {
                break;
            }
        }
    }
}

fn other(s: Side) -> Side {
    match s {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

fn side_config(c: &SideCfg, pc: &PairCfg) -> Config {
    let mut config = Config::default();
    config.streaming = c.streaming;
    config.max_message_size = SIZES[(c.max_message & 15) as usize];
    config.max_frame_size = SIZES[(c.max_frame & 15) as usize];
    config.outgoing_frame_size = SIZES[(c.outgoing_frame & 15) as usize].max(1);
    config.auto_pong = c.auto_pong;
    config.max_buffered_output = pc.max_buffered as usize;
    config.backpressure = if pc.drop_policy {
        Backpressure::DropMessage
    } else {
        Backpressure::Close
    };
    config.keepalive_interval = pc.keepalive.then(|| Duration::from_millis(1000));
    config.keepalive_timeout = Duration::from_millis(2000);
    config.close_timeout = Duration::from_millis(3000);
    if let Some(d) = &pc.deflate {
        config.deflate.level = d.level % 10;
        config.deflate.threshold = d.threshold as usize;
    }
    config
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fuzz_target!(|input: Input| {
    let Input { cfg, ops } = input;
    let deflate = cfg
        .deflate
        .as_ref()
        .filter(|_| avail().deflate)
        .map(|d| DeflateParams {
            server_no_context_takeover: d.server_no_context_takeover,
            client_no_context_takeover: d.client_no_context_takeover,
            server_max_window_bits: 8 + d.server_bits % 8,
            client_max_window_bits: 8 + d.client_bits % 8,
        });
    let now = Instant::now();
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cfg.seed.to_le_bytes());
    let ccfg = side_config(&cfg.client, &cfg);
    let scfg = side_config(&cfg.server, &cfg);
    let mut p = Pair {
        c: End::new(Role::Client, ccfg, deflate, seed, now),
        s: End::new(Role::Server, scfg, deflate, seed, now),
        now,
        link_up: true,
        max_buffered: cfg.max_buffered as usize,
        policy: if cfg.drop_policy {
            Backpressure::DropMessage
        } else {
            Backpressure::Close
        },
    };
    assert_eq!(p.c.conn.deflate_params(), deflate);
    assert_eq!(p.s.conn.deflate_params(), deflate);

    let mut big_budget: usize = 256 << 10;
    for op in ops.iter().take(256) {
        match op {
            Op::SendText(side, text) => p.send(*side, DataKind::Text, text.as_bytes(), None),
            Op::SendBinary(side, data) => p.send(*side, DataKind::Binary, data, None),
            Op::SendFragment {
                side,
                text,
                data,
                fin,
            } => {
                let kind = if *text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                p.send(*side, kind, data.as_bytes(), Some(*fin))
            }
            Op::SendBig {
                side,
                text,
                len,
                fill,
            } => {
                let n = *len as usize;
                // Bound the work per input (1-byte frames make a big message expensive).
                big_budget = big_budget.saturating_sub(n);
                if big_budget == 0 {
                    continue;
                }
                let pattern: Vec<u8> = (0..7u8)
                    .map(|i| b'a' + (fill.wrapping_add(i) % 26))
                    .collect();
                let data: Vec<u8> = pattern.iter().copied().cycle().take(n).collect();
                let kind = if *text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                p.send(*side, kind, &data, None)
            }
            Op::Ping(side, payload) => p.control(*side, true, &payload[..payload.len().min(127)]),
            Op::Pong(side, payload) => p.control(*side, false, &payload[..payload.len().min(127)]),
            Op::Close { side, code, reason } => {
                let code = CODES[*code as usize % CODES.len()];
                p.close(*side, code, truncate(reason, 125))
            }
            Op::Deliver(side, max) => {
                p.deliver(*side, *max as usize);
            }
            Op::AdvanceTime(ms) => {
                p.now += Duration::from_millis(*ms as u64);
                p.timers();
            }
        }
    }

    // Deliver everything: an open receiver must have got every message.
    p.settle();
    if p.link_up {
        for (side, end, peer) in [(Side::Client, &p.c, &p.s), (Side::Server, &p.s, &p.c)] {
            if !end.ev.closed && !peer.conn.wants_write() {
                assert!(
                    peer.sent.is_empty(),
                    "{side:?} is open, all output delivered, yet {} message(s) never arrived",
                    peer.sent.len()
                );
            }
        }
    }
    // Close both and run the clock out: exactly one Closed each.
    for side in [Side::Client, Side::Server] {
        p.close(side, 1000, "bye");
        p.settle();
    }
    for _ in 0..16 {
        let t = [p.c.conn.poll_timeout(), p.s.conn.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = t else { break };
        p.now = p.now.max(t);
        p.timers();
        p.settle();
    }
    for side in [Side::Client, Side::Server] {
        let now = p.now;
        let (me, _) = p.end(side);
        if !me.conn.is_closed() {
            me.conn.receive_eof(now);
            p.drain(side);
        }
        let (me, _) = p.end(side);
        assert!(me.ev.closed, "{side:?} never reported Closed");
    }
});
