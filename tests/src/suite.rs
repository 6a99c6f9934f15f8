//! The behaviour suite: one function per behaviour, generic over the adapter, instantiated for
//! every adapter by [`crate::behaviour_tests!`].
//!
//! Conventions: every server binds 127.0.0.1:0; a test waits for callbacks through
//! [`crate::harness::Events`] and for bytes through [`RawClient`] reads, both bounded by a
//! timeout, and never sleeps to synchronise (the only sleeps pace a deliberately slow client or
//! make a client idle on purpose).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Message as TMessage;
use ws_proto::server::{
    Client, ClientId, Decision, HttpResponse, ServerApi, ServerConfig, ServerError,
};
use ws_proto::{
    Accept, Backpressure, CloseCode, ClosedBy, ConnectionError, Message, ProtocolError,
};

use crate::client_script::letters;
use crate::deflate::{compress_run, Inflater};
use crate::harness::{tungstenite_connect, tungstenite_read, Ev, Probe, TestServer, EVENT_TIMEOUT};
use crate::raw::{
    encode_frame, encode_header, op, upgrade_request, RawClient, ReadEnd, SAMPLE_ACCEPT,
};
use crate::Adapter;

// ------------------------------------------------------------------------------------- helpers

/// Opens a raw client and waits for the server to announce it.
fn open<A: Adapter>(s: &TestServer<A>, path: &str) -> (RawClient, Client) {
    open_with(s, path, &[])
}

/// [`open`] with extra request header lines.
fn open_with<A: Adapter>(s: &TestServer<A>, path: &str, extra: &[&str]) -> (RawClient, Client) {
    let (raw, _) = RawClient::open_with(s.addr, path, extra);
    let local = raw.local_addr();
    let client = s
        .events
        .wait_for(&format!("on_new_client for {local}"), |e| match e {
            Ev::NewClient(c) if c.addr == local => Some(c.clone()),
            _ => None,
        });
    (raw, client)
}

/// Sends a text message and expects it echoed back.
fn assert_echo(c: &mut RawClient, text: &str) {
    c.send_text(text);
    assert_eq!(c.read_text(), text, "echo");
}

fn text(s: &str) -> Message {
    Message::Text(s.to_owned())
}

fn code(c: u16) -> CloseCode {
    CloseCode::new(c).expect("valid close code")
}

/// The ids of announced clients now.
fn ids<A: Adapter>(s: &TestServer<A>) -> BTreeSet<ClientId> {
    s.handle.clients().into_iter().map(|c| c.id).collect()
}

/// One attack on a fresh connection: the server must close it with `close` (a close frame, then
/// TCP closed), report `on_error` and `on_client_left` with `error`, and keep serving `bystander`.
fn check_violation<A: Adapter>(
    s: &TestServer<A>,
    bystander: &mut RawClient,
    what: &str,
    close: u16,
    error: ProtocolError,
    attack: impl FnOnce(&mut RawClient),
) {
    check_violation_offering(s, bystander, what, &[], close, error, attack);
}

/// [`check_violation`] for an attacker whose request has `extra` header lines.
fn check_violation_offering<A: Adapter>(
    s: &TestServer<A>,
    bystander: &mut RawClient,
    what: &str,
    extra: &[&str],
    close: u16,
    error: ProtocolError,
    attack: impl FnOnce(&mut RawClient),
) {
    let (mut attacker, a) = open_with(s, "/attacker", extra);
    attack(&mut attacker);
    let f = attacker.read_frame();
    assert_eq!(
        f.opcode,
        op::CLOSE,
        "{what}: expected a close frame with {close}, got {f:?}"
    );
    let got = f.close_code().map(|(c, _)| c);
    assert_eq!(got, Some(close), "{what}: close code of {f:?}");
    attacker.expect_eof();
    let closed = s.events.left(a.id);
    assert_eq!(closed.by, ClosedBy::Local, "{what}: {closed:?}");
    assert_eq!(closed.code, close, "{what}: {closed:?}");
    assert!(!closed.clean, "{what}: {closed:?}");
    let expected = ConnectionError::Protocol(error);
    assert_eq!(closed.error.as_ref(), Some(&expected), "{what}: {closed:?}");
    let reported = s.events.count(|e| {
        matches!(e, Ev::Error(Some(id), ServerError::Connection(err)) if *id == a.id && *err == expected)
    });
    assert_eq!(
        reported, 1,
        "{what}: on_error(Connection({expected:?})) reports for {}",
        a.id
    );
    assert!(
        !ids(s).contains(&a.id),
        "{what}: failed client still listed"
    );
    assert_echo(bystander, &format!("still here after {what}"));
}

fn violation_server<A: Adapter>(config: ServerConfig) -> (TestServer<A>, RawClient) {
    let s = TestServer::<A>::start(config, Probe::echo());
    let (by, _) = open(&s, "/bystander");
    (s, by)
}

// ----------------------------------------------------------------------- connection and data

/// on_new_client carries the peer's address and the request path; clients() lists the client.
pub fn connect_reports_client_with_peer_address_and_path<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let raw = RawClient::open(s.addr, "/chat?room=1");
    let c = s.events.new_client();
    assert_eq!(c.addr, raw.local_addr());
    assert_eq!(c.path, "/chat?room=1");
    assert_eq!(c.protocol, None);
    assert_eq!(s.handle.clients(), vec![c]);
}

/// Text comes back as text and binary as binary (tungstenite client), and on_message sees both.
pub fn echoes_text_and_binary<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut ws = tungstenite_connect(s.addr, "/");
    let c = s.events.new_client();
    ws.send(TMessage::text("hello κόσμε")).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::text("hello κόσμε"));
    ws.send(TMessage::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(
        tungstenite_read(&mut ws),
        TMessage::binary(vec![0u8, 1, 2, 255])
    );
    assert_eq!(s.events.message(c.id), text("hello κόσμε"));
    assert_eq!(s.events.message(c.id), Message::Binary(vec![0, 1, 2, 255]));
}

/// Whole messages under 4 KiB reach the handler lent (`on_message_ref`: received where they
/// were read, no copy on the way in) and are echoed from there, several from one read included;
/// larger and fragmented ones come owned (`on_message`). Every echo is exact and in order.
pub fn small_messages_come_lent_and_large_or_fragmented_ones_owned<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let lent = probe.lent_counter();
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut c, client) = open(&s, "/");
    let lent_now = || lent.load(std::sync::atomic::Ordering::SeqCst);
    c.send_text("small");
    assert_eq!(c.read_text(), "small");
    assert_eq!(lent_now(), 1, "a small message comes lent");
    let big: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
    c.send_frame(true, 0, 2, &big);
    assert_eq!(c.read_message(), (2, big.clone()));
    c.send_frame(false, 0, 1, b"frag");
    c.send_frame(true, 0, 0, b"mented");
    assert_eq!(c.read_text(), "fragmented");
    assert_eq!(lent_now(), 1, "large and fragmented messages come owned");
    let mut burst = Vec::new();
    for i in 0..5 {
        burst.extend(c.frame(true, 0, 1, format!("burst {i}").as_bytes()));
    }
    burst.extend(c.frame(true, 0, 2, &big));
    burst.extend(c.frame(true, 0, 1, b"last"));
    c.send_raw(&burst);
    for i in 0..5 {
        assert_eq!(c.read_text(), format!("burst {i}"));
    }
    assert_eq!(c.read_message(), (2, big));
    assert_eq!(c.read_text(), "last");
    assert!(lent_now() >= 6, "lent: {}", lent_now());
    let seen: Vec<Message> = (0..10).map(|_| s.events.message(client.id)).collect();
    assert_eq!(seen[0], text("small"));
    assert_eq!(seen[9], text("last"));
}

/// Empty messages and a 1 MiB message (16-bit and 64-bit length forms) are echoed intact.
pub fn echoes_empty_and_large_messages<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut ws = tungstenite_connect(s.addr, "/");
    ws.send(TMessage::text("")).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::text(""));
    ws.send(TMessage::binary(Vec::new())).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::binary(Vec::new()));
    for len in [125usize, 126, 65_535, 65_536, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        ws.send(TMessage::binary(data.clone())).unwrap();
        let back = tungstenite_read(&mut ws).into_data();
        assert!(
            back.as_ref() == data.as_slice(),
            "echo of {len} bytes differs"
        );
    }
}

/// A run of messages of one mid size, one in flight (the pattern a server may read straight
/// into the next message's buffer), interrupted by other sizes, a ping, a fragmented message and
/// two frames in one write, is echoed exactly.
pub fn runs_of_same_size_messages_are_echoed_exactly<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, _) = open(&s, "/");
    same_size_runs(&mut c, 0);
}

/// The same runs on several clients at once, each message on its own client's buffers: a busy
/// server reads them differently (ws-std, for one, only tries a read that does not wait, into
/// the predicted message, while other clients' threads are awake).
pub fn concurrent_runs_of_same_size_messages_are_echoed_exactly<A: Adapter>() {
    let s = TestServer::<A>::echo();
    std::thread::scope(|scope| {
        for client in 0..4 {
            let (mut c, _) = open(&s, "/");
            scope.spawn(move || same_size_runs(&mut c, client * 1000));
        }
    });
}

/// Echoes runs of mid-sized messages and what interrupts them (see
/// [`runs_of_same_size_messages_are_echoed_exactly`]); `seed` varies the payloads.
fn same_size_runs(c: &mut RawClient, mut seed: usize) {
    let payload = |len: usize, seed: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 251) as u8)
            .collect()
    };
    let first = seed + 1;
    let mut run = |c: &mut RawClient, len: usize, n: usize| {
        for _ in 0..n {
            seed += 1;
            let p = payload(len, seed);
            c.send_frame(true, 0, op::BINARY, &p);
            assert_eq!(c.read_message(), (op::BINARY, p), "{len}-byte echo");
        }
    };
    run(c, 8192, 20);
    run(c, 5000, 3);
    c.send_frame(true, 0, op::PING, b"between runs");
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (op::PONG, &b"between runs"[..]));
    run(c, 8192, 5);
    c.send_frame(false, 0, op::BINARY, &payload(8192, first)[..4096]);
    c.send_frame(true, 0, op::CONT, &payload(8192, first)[4096..]);
    assert_eq!(c.read_message(), (op::BINARY, payload(8192, first)));
    run(c, 8192, 5);
    let text = "é".repeat(4096);
    let two = [
        c.frame(true, 0, op::TEXT, text.as_bytes()),
        c.frame(true, 0, op::TEXT, text.as_bytes()),
    ]
    .concat();
    c.send_raw(&two);
    assert_eq!(c.read_text(), text);
    assert_eq!(c.read_text(), text);
    run(c, 8192, 5);
}

/// A message sent in several frames (one of them empty) arrives as one whole message.
pub fn reassembles_fragmented_messages<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_frame(false, 0, op::TEXT, b"Hel");
    c.send_frame(false, 0, op::CONT, b"lo, ");
    c.send_frame(true, 0, op::CONT, b"world");
    assert_eq!(c.read_text(), "Hello, world");
    assert_eq!(s.events.message(client.id), text("Hello, world"));
    c.send_frame(false, 0, op::BINARY, &[1, 2]);
    c.send_frame(false, 0, op::CONT, &[]);
    c.send_frame(true, 0, op::CONT, &[3]);
    assert_eq!(c.read_message(), (op::BINARY, vec![1, 2, 3]));
    assert_eq!(s.events.message(client.id), Message::Binary(vec![1, 2, 3]));
}

/// A ping between the fragments of a message is answered at once, and the message still
/// arrives whole.
pub fn control_frames_between_fragments_are_answered<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_frame(false, 0, op::TEXT, b"first ");
    c.send_frame(true, 0, op::PING, b"in between");
    let pong = c.read_frame();
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (op::PONG, &b"in between"[..])
    );
    c.send_frame(true, 0, op::CONT, b"second");
    assert_eq!(c.read_text(), "first second");
    let ping = s.events.wait_for("on_ping", |e| match e {
        Ev::Ping(id, p) if *id == client.id => Some(p.clone()),
        _ => None,
    });
    assert_eq!(ping, b"in between");
}

/// A multi-byte character split across frames is valid UTF-8 and accepted.
pub fn utf8_character_split_across_fragments_is_accepted<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, _) = open(&s, "/");
    // "a€b" = 61 e2 82 ac 62, split inside the euro sign, then one byte per frame.
    c.send_frame(false, 0, op::TEXT, &[0x61, 0xe2, 0x82]);
    c.send_frame(true, 0, op::CONT, &[0xac, 0x62]);
    assert_eq!(c.read_text(), "a€b");
    let bytes = "€ok".as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        let opcode = if i == 0 { op::TEXT } else { op::CONT };
        c.send_frame(i + 1 == bytes.len(), 0, opcode, &[*b]);
    }
    assert_eq!(c.read_text(), "€ok");
}

/// A ping gets a pong with the same payload (empty and 125 bytes too), and on_ping fires.
pub fn ping_is_answered_with_pong_of_same_payload_and_reported<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    let long = vec![b'p'; 125];
    for payload in [&b"hello ping"[..], &[], &long] {
        c.send_frame(true, 0, op::PING, payload);
        let f = c.read_frame();
        assert_eq!(f.opcode, op::PONG, "{f:?}");
        assert!(f.fin);
        assert_eq!(f.payload, payload);
        let seen = s.events.wait_for("on_ping", |e| match e {
            Ev::Ping(id, p) if *id == client.id => Some(p.clone()),
            _ => None,
        });
        assert_eq!(seen, payload);
    }
}

/// api.ping reaches the client; its pong fires on_pong with the payload.
pub fn server_ping_is_answered_and_on_pong_fires<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    s.handle.ping(client.id, b"from server");
    let f = c.read_frame();
    assert_eq!(
        (f.opcode, f.payload.as_slice()),
        (op::PING, &b"from server"[..])
    );
    c.send_frame(true, 0, op::PONG, &f.payload);
    let pong = s.events.wait_for("on_pong", |e| match e {
        Ev::Pong(id, p) if *id == client.id => Some(p.clone()),
        _ => None,
    });
    assert_eq!(pong, b"from server");
}

/// An unsolicited pong fires on_pong, gets no answer and leaves the connection usable.
pub fn unsolicited_pong_is_reported_and_not_answered<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_frame(true, 0, op::PONG, b"unsolicited");
    let pong = s.events.wait_for("on_pong", |e| match e {
        Ev::Pong(id, p) if *id == client.id => Some(p.clone()),
        _ => None,
    });
    assert_eq!(pong, b"unsolicited");
    // The next thing from the server is the echo: nothing was sent in reply to the pong.
    assert_echo(&mut c, "after pong");
}

/// A frame written one byte per TCP segment is decoded like one written at once.
pub fn frame_delivered_one_byte_at_a_time_is_reassembled<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, _) = open(&s, "/");
    let text = "byte by byte: κόσμε";
    let frame = c.frame(true, 0, op::TEXT, text.as_bytes());
    for b in &frame {
        c.send_raw(&[*b]);
    }
    assert_eq!(c.read_text(), text);
    // A 16-bit length header split right through the length bytes too.
    let long = "x".repeat(300);
    let frame = c.frame(true, 0, op::TEXT, long.as_bytes());
    for chunk in frame.chunks(3) {
        c.send_raw(chunk);
    }
    assert_eq!(c.read_text(), long);
}

/// 200 messages in a single write are all delivered and echoed, in order.
pub fn pipelined_messages_in_one_write_are_all_echoed_in_order<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    let mut bytes = Vec::new();
    for i in 0..200 {
        bytes.extend_from_slice(&c.frame(true, 0, op::TEXT, format!("m{i}").as_bytes()));
    }
    c.send_raw(&bytes);
    for i in 0..200 {
        assert_eq!(c.read_text(), format!("m{i}"));
    }
    for i in 0..200 {
        assert_eq!(s.events.message(client.id), text(&format!("m{i}")));
    }
}

/// ServerConfig::max_frame_size(1000): a 4500-byte message goes out as frames of at most 1000
/// bytes (a first frame and continuations) that reassemble to the message.
pub fn outgoing_messages_are_fragmented_at_max_frame_size<A: Adapter>() {
    let s = TestServer::<A>::start(ServerConfig::new().max_frame_size(1000), Probe::echo());
    let (mut c, client) = open(&s, "/");
    let message = letters(4500, 3);
    s.handle.send_text(client.id, &message);
    let mut got = Vec::new();
    let mut frames = 0;
    loop {
        let f = c.read_frame();
        let want = if frames == 0 { op::TEXT } else { op::CONT };
        assert_eq!(f.opcode, want, "frame {frames}: {f:?}");
        assert!(
            f.payload.len() <= 1000,
            "frame of {} bytes",
            f.payload.len()
        );
        got.extend_from_slice(&f.payload);
        frames += 1;
        if f.fin {
            break;
        }
        assert!(frames < 100);
    }
    assert_eq!(String::from_utf8(got).unwrap(), message);
    assert!(frames >= 5, "{frames} frames for 4500 bytes");
}

// ------------------------------------------------------------------------------ close handshake

/// A client whose last frame and FIN arrive together (no close frame) gets that frame echoed,
/// then its connection closed, and is reported gone with 1006: the FIN must not be left unread
/// because the read that brought the frame did not fill its buffer.
pub fn a_fin_arriving_with_the_last_frame_ends_the_session<A: Adapter>() {
    let s = TestServer::<A>::start(ServerConfig::new(), Probe::echo());
    for i in 0..10 {
        let (mut c, client) = open(&s, "/fin");
        let payload = format!("last words {i}").into_bytes();
        let mask = c.next_mask();
        // One write with the FIN right behind it: both are in before the server looks.
        c.try_send_raw(&encode_frame(true, 0, op::BINARY, Some(mask), &payload))
            .unwrap();
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.read_message(), (op::BINARY, payload), "round {i}");
        c.expect_eof();
        let closed = s.events.wait_for("on_client_left", |e| match e {
            Ev::Left(left, closed) if left.id == client.id => Some(closed.clone()),
            _ => None,
        });
        assert_eq!((closed.code, closed.clean), (1006, false), "round {i}");
    }
}

/// Client closes 1000 "bye": the server echoes 1000, closes TCP, and on_client_left fires once
/// with (1000, "bye", Remote, clean).
pub fn client_close_is_echoed_and_reported_once_as_remote<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_close(1000, "bye");
    c.expect_close(1000);
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(closed.by, ClosedBy::Remote, "{closed:?}");
    assert_eq!((closed.code, closed.reason.as_str()), (1000, "bye"));
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.error, None);
    assert!(s.handle.clients().is_empty());
    s.stop();
    let lefts = s
        .events
        .count(|e| matches!(e, Ev::Left(c, _) if c.id == client.id));
    assert_eq!(lefts, 1, "on_client_left count");
}

/// Every code a client may send (1000–1003, 1007–1014, 3000–4999) is echoed and reported.
pub fn valid_close_codes_are_echoed<A: Adapter>() {
    let s = TestServer::<A>::echo();
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let (mut c, client) = open(&s, "/");
        c.send_close(code, "reason");
        c.expect_close(code);
        c.expect_eof();
        let closed = s.events.left(client.id);
        assert_eq!(
            (closed.by, closed.code, closed.reason.as_str()),
            (ClosedBy::Remote, code, "reason")
        );
        assert!(closed.clean, "{closed:?}");
    }
}

/// A close frame without payload is answered with a close frame and reported as 1005.
pub fn empty_close_is_answered_and_reported_as_1005<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_frame(true, 0, op::CLOSE, &[]);
    let f = c.read_frame();
    assert_eq!(f.opcode, op::CLOSE, "{f:?}");
    if let Some((code, _)) = f.close_code() {
        assert_eq!(
            code, 1000,
            "an empty close may be answered empty or with 1000"
        );
    }
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(
        (closed.by, closed.code),
        (ClosedBy::Remote, 1005),
        "{closed:?}"
    );
    assert!(closed.clean);
}

/// api.close(id, 4000, "kicked"): the client sees 4000 "kicked"; after its reply the server
/// closes TCP and on_client_left fires with (4000, "kicked", Local, clean).
pub fn server_close_reaches_client_and_is_reported_as_local<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    s.handle.close(client.id, code(4000), "kicked");
    assert_eq!(c.expect_close(4000), "kicked");
    c.send_close(4000, "");
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(closed.by, ClosedBy::Local, "{closed:?}");
    assert_eq!((closed.code, closed.reason.as_str()), (4000, "kicked"));
    assert!(closed.clean, "{closed:?}");
    assert_eq!(closed.error, None);
    s.stop();
    assert_eq!(
        s.events
            .count(|e| matches!(e, Ev::Left(c, _) if c.id == client.id)),
        1
    );
}

/// Close codes that may not be sent (0–999, 1004–1006, 1015, 1016–2999, 5000+) get 1002.
pub fn invalid_close_codes_are_answered_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        check_violation(
            &s,
            &mut by,
            &format!("close code {code}"),
            1002,
            ProtocolError::InvalidCloseCode(code),
            |c| c.send_close(code, ""),
        );
    }
}

/// A close payload of one byte gets 1002.
pub fn one_byte_close_payload_is_answered_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "1-byte close",
        1002,
        ProtocolError::CloseOneByte,
        |c| c.send_frame(true, 0, op::CLOSE, &[0x03]),
    );
}

/// A close reason that is not UTF-8 gets 1007.
pub fn close_reason_with_invalid_utf8_is_answered_with_1007<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "bad close reason",
        1007,
        ProtocolError::InvalidCloseReason,
        |c| {
            let mut p = 1000u16.to_be_bytes().to_vec();
            p.extend_from_slice(&[b'o', b'k', 0xed, 0xa0, 0x80]); // a UTF-16 surrogate
            c.send_frame(true, 0, op::CLOSE, &p);
        },
    );
}

/// A close frame whose deadline counts from the close, not from the last input: a client idle
/// longer than the close timeout still gets the whole timeout to answer.
pub fn close_deadline_counts_from_the_close_not_from_last_input<A: Adapter>() {
    let timeout = Duration::from_millis(300);
    let s = TestServer::<A>::start(ServerConfig::new().shutdown_timeout(timeout), Probe::echo());
    let (mut c, client) = open(&s, "/");
    // Precondition, not synchronisation: the client stays idle past the close timeout.
    std::thread::sleep(timeout * 2);
    s.handle.close(client.id, code(4000), "kicked");
    assert_eq!(c.expect_close(4000), "kicked");
    c.send_close(4000, "");
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(
        closed.error, None,
        "the reply came at once, well within the close timeout: {closed:?}"
    );
    assert!(closed.clean, "{closed:?}");
}

/// api.close with a reason over 123 bytes sends a valid close frame: the reason cut at a
/// character boundary to at most 123 bytes.
pub fn server_close_reason_is_truncated_to_a_valid_close_frame<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    let long = "é".repeat(100); // 200 bytes
    s.handle.close(client.id, code(4001), &long);
    let reason = c.expect_close(4001);
    assert!(reason.len() <= 123, "reason of {} bytes", reason.len());
    assert!(
        reason.len() >= 120,
        "reason cut too short: {} bytes",
        reason.len()
    );
    assert!(long.starts_with(&reason));
    c.send_close(4001, "");
    c.expect_eof();
}

/// After api.close, messages the client sent before seeing the close frame are still
/// delivered to on_message, and the handshake then completes cleanly.
pub fn messages_arriving_after_server_close_are_still_delivered<A: Adapter>() {
    let s = TestServer::<A>::start(ServerConfig::new(), Probe::new());
    let (mut c, client) = open(&s, "/");
    s.handle.close(client.id, code(4000), "closing");
    assert_eq!(c.expect_close(4000), "closing");
    c.send_text("late but welcome");
    c.send_close(4000, "");
    c.expect_eof();
    assert_eq!(s.events.message(client.id), text("late but welcome"));
    let closed = s.events.left(client.id);
    assert!(closed.clean, "{closed:?}");
}

/// A close frame between the fragments of a message (a control frame, so allowed there) ends
/// the connection normally; the unfinished message is not delivered.
pub fn close_in_the_middle_of_a_fragmented_message_is_accepted<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    c.send_frame(false, 0, op::TEXT, b"never ");
    c.send_close(1000, "mid-message");
    c.expect_close(1000);
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(
        (closed.by, closed.code, closed.clean),
        (ClosedBy::Remote, 1000, true),
        "{closed:?}"
    );
    s.stop();
    assert_eq!(s.events.count(|e| matches!(e, Ev::Message(..))), 0);
}

// ------------------------------------------------------------ limits and protocol violations

/// A frame header declaring more than max_incoming_frame_size is refused with 1009 at once:
/// the payload is never sent.
pub fn frame_over_size_limit_is_closed_with_1009_before_its_payload<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new().max_incoming_frame_size(1024));
    assert_echo(&mut by, &"x".repeat(1024)); // exactly the limit is fine
    check_violation(
        &s,
        &mut by,
        "2048-byte frame header",
        1009,
        ProtocolError::FrameTooLarge {
            size: 2048,
            limit: 1024,
        },
        |c| {
            let mask = c.next_mask();
            c.send_raw(&encode_header(true, 0, op::BINARY, Some(mask), 2048));
        },
    );
    check_violation(
        &s,
        &mut by,
        "2^40-byte frame header",
        1009,
        ProtocolError::FrameTooLarge {
            size: 1 << 40,
            limit: 1024,
        },
        |c| {
            let mask = c.next_mask();
            c.send_raw(&encode_header(true, 0, op::BINARY, Some(mask), 1 << 40));
        },
    );
}

/// Fragments that together exceed max_message_size are refused with 1009 at the header of the
/// fragment that crosses the limit.
pub fn message_over_size_limit_across_fragments_is_closed_with_1009<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new().max_message_size(1000));
    // Exactly the limit, in three fragments, is fine.
    by.send_frame(false, 0, op::BINARY, &[1; 400]);
    by.send_frame(false, 0, op::CONT, &[2; 400]);
    by.send_frame(true, 0, op::CONT, &[3; 200]);
    let (_, got) = by.read_message();
    assert_eq!(got.len(), 1000);
    check_violation(
        &s,
        &mut by,
        "1200 bytes in 3 fragments",
        1009,
        ProtocolError::MessageTooLarge { limit: 1000 },
        |c| {
            c.send_frame(false, 0, op::BINARY, &[1; 400]);
            c.send_frame(false, 0, op::CONT, &[2; 400]);
            let mask = c.next_mask();
            c.send_raw(&encode_header(true, 0, op::CONT, Some(mask), 400));
        },
    );
}

/// Text that is not UTF-8 gets 1007 (an invalid byte; a sequence cut at the end of the message).
pub fn invalid_utf8_text_is_closed_with_1007<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "0xff in text",
        1007,
        ProtocolError::InvalidUtf8,
        |c| c.send_frame(true, 0, op::TEXT, &[b'H', 0xff, b'i']),
    );
    check_violation(
        &s,
        &mut by,
        "truncated sequence",
        1007,
        ProtocolError::InvalidUtf8,
        |c| c.send_frame(true, 0, op::TEXT, &[b'a', 0xe2, 0x82]),
    );
}

/// A sequence started in one fragment and broken in the next gets 1007.
pub fn invalid_utf8_split_across_fragments_is_closed_with_1007<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "broken split sequence",
        1007,
        ProtocolError::InvalidUtf8,
        |c| {
            c.send_frame(false, 0, op::TEXT, &[b'a', 0xe2, 0x82]);
            c.send_frame(true, 0, op::CONT, b"A");
        },
    );
}

/// An impossible sequence in the first fragment fails at once, without waiting for the rest of
/// the message (which never comes).
pub fn invalid_utf8_in_first_fragment_fails_fast_with_1007<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "overlong in first fragment",
        1007,
        ProtocolError::InvalidUtf8,
        |c| {
            c.send_frame(false, 0, op::TEXT, &[b'o', b'k', 0xc0, 0xaf]);
        },
    );
    check_violation(
        &s,
        &mut by,
        "surrogate in first fragment",
        1007,
        ProtocolError::InvalidUtf8,
        |c| {
            c.send_frame(false, 0, op::TEXT, &[0xed, 0xa0, 0x80]);
        },
    );
}

/// An unmasked client frame gets 1002.
pub fn unmasked_client_frame_is_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "unmasked text",
        1002,
        ProtocolError::UnmaskedFrame,
        |c| c.send_raw(&encode_frame(true, 0, op::TEXT, None, b"hi")),
    );
}

/// RSV1/RSV2/RSV3 without a negotiated extension get 1002.
pub fn reserved_bits_are_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    for rsv in [4u8, 2, 1, 7] {
        check_violation(
            &s,
            &mut by,
            &format!("rsv {rsv:03b}"),
            1002,
            ProtocolError::ReservedBits,
            |c| c.send_frame(true, rsv, op::TEXT, b"hi"),
        );
    }
}

/// Opcodes 3–7 and 11–15 get 1002.
pub fn reserved_opcodes_are_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    for opcode in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        check_violation(
            &s,
            &mut by,
            &format!("opcode {opcode:#x}"),
            1002,
            ProtocolError::ReservedOpcode(opcode),
            |c| c.send_frame(true, 0, opcode, b"x"),
        );
    }
}

/// A continuation frame with no message in progress gets 1002.
pub fn continuation_without_start_is_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "lone continuation",
        1002,
        ProtocolError::UnexpectedContinuation,
        |c| c.send_frame(true, 0, op::CONT, b"x"),
    );
}

/// A new text frame while a fragmented message is in progress gets 1002.
pub fn new_message_inside_fragmented_message_is_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "text inside text",
        1002,
        ProtocolError::ExpectedContinuation,
        |c| {
            c.send_frame(false, 0, op::TEXT, b"a");
            c.send_frame(true, 0, op::TEXT, b"b");
        },
    );
}

/// A control frame with more than 125 bytes of payload gets 1002.
pub fn control_frame_over_125_bytes_is_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    for opcode in [op::PING, op::PONG, op::CLOSE] {
        check_violation(
            &s,
            &mut by,
            &format!("126-byte control {opcode:#x}"),
            1002,
            ProtocolError::ControlFrameTooLong,
            |c| {
                let mut p = 1000u16.to_be_bytes().to_vec();
                p.resize(126, b'x');
                c.send_frame(true, 0, opcode, &p);
            },
        );
    }
}

/// A ping without FIN gets 1002.
pub fn fragmented_ping_is_closed_with_1002<A: Adapter>() {
    let (s, mut by) = violation_server::<A>(ServerConfig::new());
    check_violation(
        &s,
        &mut by,
        "fragmented ping",
        1002,
        ProtocolError::FragmentedControlFrame,
        |c| c.send_frame(false, 0, op::PING, b"x"),
    );
}

// --------------------------------------------------------------------------- permessage-deflate

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";

fn deflate_server<A: Adapter>(config: ServerConfig) -> TestServer<A> {
    TestServer::<A>::start(config.compression(true), Probe::echo())
}

/// Parameters of the permessage-deflate agreement in a 101 head (`None`: declined).
fn agreed(head: &crate::raw::HttpHead) -> Option<Vec<(String, Option<String>)>> {
    let value = head.header("Sec-WebSocket-Extensions")?;
    let mut parts = value.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("permessage-deflate"), "{head:?}");
    Some(
        parts
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (
                    k.trim().to_owned(),
                    Some(v.trim().trim_matches('"').to_owned()),
                ),
                None => (p.to_owned(), None),
            })
            .collect(),
    )
}

/// Reads an echo of `want`: inflated with `inflater` when RSV1 is set; returns whether it was
/// compressed.
fn read_deflated_text(c: &mut RawClient, inflater: &mut Inflater, want: &str) -> bool {
    let (opcode, rsv, data) = c.read_message_rsv();
    assert_eq!(opcode, op::TEXT);
    assert_eq!(rsv & 3, 0, "RSV2/RSV3 set");
    let compressed = rsv & 4 != 0;
    let text = if compressed {
        inflater
            .message(&data)
            .unwrap_or_else(|e| panic!("server's compressed message does not inflate: {e}"))
    } else {
        data
    };
    assert!(
        text == want.as_bytes(),
        "echo differs ({} bytes, want {})",
        text.len(),
        want.len()
    );
    compressed
}

/// Offered permessage-deflate is accepted; compressed messages (whole and fragmented) and
/// uncompressed ones arrive intact, and a compressible echo comes back compressed.
pub fn deflate_is_negotiated_and_compressed_messages_round_trip<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new());
    let (mut c, head) = RawClient::open_with(s.addr, "/", &[OFFER]);
    assert!(
        agreed(&head).is_some(),
        "permessage-deflate declined: {head:?}"
    );
    let client = s.events.new_client();
    let mut inflater = Inflater::new();
    let want = "a".repeat(10_000);
    c.send_frame(true, 4, op::TEXT, &compress_run(b'a', 10_000));
    assert_eq!(s.events.message(client.id), text(&want));
    assert!(
        read_deflated_text(&mut c, &mut inflater, &want),
        "10000 × 'a' echoed uncompressed"
    );
    let payload = compress_run(b'b', 5000);
    let (x, y) = payload.split_at(payload.len() / 2);
    c.send_frame(false, 4, op::TEXT, x);
    c.send_frame(true, 0, op::CONT, y);
    read_deflated_text(&mut c, &mut inflater, &"b".repeat(5000));
    c.send_text("not compressed");
    read_deflated_text(&mut c, &mut inflater, "not compressed");
}

/// An offer with server_max_window_bits=N (8, 9, 12) is declined, or accepted with at most N
/// in the response and then honoured: no back-reference in the server's messages is farther
/// than 2^N bytes, across messages too.
pub fn deflate_honours_requested_server_window_bits<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new());
    for bits in [8u32, 9, 12] {
        let offer =
            format!("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits={bits}");
        let (mut c, head) = RawClient::open_with(s.addr, "/", &[&offer]);
        let Some(params) = agreed(&head) else {
            eprintln!("{}: server_max_window_bits={bits} declined", A::NAME);
            continue;
        };
        let window: u32 = params
            .iter()
            .find(|(k, _)| k == "server_max_window_bits")
            .and_then(|(_, v)| v.as_deref())
            .unwrap_or_else(|| {
                panic!("accepted without server_max_window_bits (RFC 7692 §7.1.2.1): {head:?}")
            })
            .parse()
            .expect("window bits value");
        assert!(
            (8..=bits).contains(&window),
            "server_max_window_bits={window} for an offer of {bits}"
        );
        let block = letters(3000, bits);
        let message = format!("{block}{block}");
        let mut inflater = Inflater::new();
        let mut compressed = 0;
        for _ in 0..2 {
            c.send_text(&message);
            compressed += usize::from(read_deflated_text(&mut c, &mut inflater, &message));
        }
        assert!(
            compressed > 0,
            "window {window}: 6000 bytes of letters never compressed"
        );
        assert!(
            inflater.max_distance <= 1 << window,
            "window bits {window}: a back-reference reaches {} bytes back",
            inflater.max_distance
        );
    }
}

/// server_no_context_takeover requested: the response says so and every server message
/// inflates on its own, without the previous messages.
pub fn deflate_honours_server_no_context_takeover<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new());
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover";
    let (mut c, head) = RawClient::open_with(s.addr, "/", &[offer]);
    let params = agreed(&head).unwrap_or_else(|| panic!("declined: {head:?}"));
    assert!(
        params
            .iter()
            .any(|(k, _)| k == "server_no_context_takeover"),
        "accepted without server_no_context_takeover (RFC 7692 §7.1.1.1): {head:?}"
    );
    let message = letters(2000, 7);
    for i in 0..3 {
        c.send_text(&message);
        let mut fresh = Inflater::new();
        read_deflated_text(&mut c, &mut fresh, &message);
        assert!(
            fresh.max_distance <= 2000,
            "message {i} refers to an earlier message"
        );
    }
}

/// A compressed message that inflates past max_message_size (a 6 KiB bomb of 1 MiB) gets 1009
/// while inflating.
pub fn compressed_message_inflating_past_limit_is_closed_with_1009<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new().max_message_size(64 << 10));
    let (mut by, _) = open(&s, "/bystander");
    let bomb = compress_run(b'a', 1 << 20);
    assert!(bomb.len() < 8 << 10);
    check_violation_offering(
        &s,
        &mut by,
        "deflate bomb",
        &[OFFER],
        1009,
        ProtocolError::MessageTooLarge { limit: 64 << 10 },
        |c| c.send_frame(true, 4, op::BINARY, &bomb),
    );
}

/// RSV1 data that is not a valid DEFLATE stream fails the connection with 1002.
pub fn invalid_compressed_data_is_closed_with_1002<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new());
    let (mut by, _) = open(&s, "/bystander");
    check_violation_offering(
        &s,
        &mut by,
        "invalid deflate data",
        &[OFFER],
        1002,
        ProtocolError::InvalidCompressedData,
        // BFINAL=1, BTYPE=11: a reserved block type.
        |c| c.send_frame(true, 4, op::BINARY, &[0xff, 0xff, 0xff, 0xff]),
    );
}

/// With deflate agreed, RSV1 is still forbidden on continuation and control frames (1002).
pub fn compression_bit_on_continuation_or_control_frame_is_closed_with_1002<A: Adapter>() {
    let s = deflate_server::<A>(ServerConfig::new());
    let (mut by, _) = open(&s, "/bystander");
    let err = ProtocolError::CompressedControlOrContinuation;
    check_violation_offering(
        &s,
        &mut by,
        "RSV1 on continuation",
        &[OFFER],
        1002,
        err.clone(),
        |c| {
            c.send_frame(false, 4, op::TEXT, &compress_run(b'x', 100));
            c.send_frame(true, 4, op::CONT, &compress_run(b'y', 100));
        },
    );
    check_violation_offering(&s, &mut by, "RSV1 on ping", &[OFFER], 1002, err, |c| {
        c.send_frame(true, 4, op::PING, b"p")
    });
}

/// Our blocking client (ws_std::client) against the server: plain, with deflate, with no
/// context takeover and a 9-bit server window.
pub fn ws_std_client_converses_with_and_without_deflate<A: Adapter>() {
    use crate::client_script::{run, ScriptOptions};
    let s = deflate_server::<A>(ServerConfig::new());
    let url = s.url("/echo");
    let plain = ScriptOptions::default();
    let deflate = ScriptOptions {
        deflate: true,
        require_deflate: true,
        ..ScriptOptions::default()
    };
    let tight = ScriptOptions {
        no_context_takeover: true,
        server_max_window_bits: Some(9),
        ..deflate.clone()
    };
    for opts in [plain, deflate, tight] {
        if let Err(e) = run(&url, &opts) {
            panic!("{opts:?}: {e}");
        }
    }
}

// ------------------------------------------------------------------------------------ handshake

/// The 101 answer has Upgrade, Connection and the RFC 6455 §1.3 accept value, and nothing that
/// was not asked for.
pub fn handshake_accept_key_follows_rfc<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut c = RawClient::connect(s.addr);
    c.send_raw(upgrade_request(s.addr, "/", &[]).as_bytes());
    let head = c.read_head();
    assert_eq!(head.status, 101, "{head:?}");
    assert!(
        head.header("Upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head:?}"
    );
    assert!(
        head.header("Connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{head:?}"
    );
    assert_eq!(head.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(head.header("Sec-WebSocket-Protocol"), None);
    assert_eq!(head.header("Sec-WebSocket-Extensions"), None);
    assert_echo(&mut c, "after handshake");
}

fn expect_rejection<A: Adapter>(
    s: &TestServer<A>,
    request: &[u8],
    status: u16,
) -> crate::raw::HttpHead {
    let mut c = RawClient::connect(s.addr);
    let _ = c.try_send_raw(request); // the server may close before reading everything
    let head = c.read_head();
    assert_eq!(head.status, status, "{head:?}");
    c.expect_eof();
    head
}

fn assert_no_client_announced<A: Adapter>(s: &mut TestServer<A>) {
    s.stop();
    let announced = s.events.count(|e| matches!(e, Ev::NewClient(_)));
    assert_eq!(
        announced,
        0,
        "on_new_client fired: {:#?}",
        s.events.history()
    );
}

/// Sec-WebSocket-Version other than 13 gets 426 with `Sec-WebSocket-Version: 13`.
pub fn bad_version_gets_426_with_supported_version<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let req = upgrade_request(s.addr, "/", &[])
        .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let head = expect_rejection(&s, req.as_bytes(), 426);
    assert_eq!(head.header("Sec-WebSocket-Version"), Some("13"), "{head:?}");
    assert_no_client_announced(&mut s);
}

/// An upgrade without Sec-WebSocket-Key gets 400.
pub fn missing_key_gets_400<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let req = upgrade_request(s.addr, "/", &[])
        .replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(!req.contains("Key"));
    expect_rejection(&s, req.as_bytes(), 400);
    assert_no_client_announced(&mut s);
}

/// A request head past max_handshake_bytes (16 KiB by default) gets 431 without waiting for
/// its end.
pub fn oversized_headers_get_431<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let mut req = upgrade_request(s.addr, "/", &[]);
    req.truncate(req.len() - 2); // keep the head open
    req.push_str("X-Filler: ");
    req.push_str(&"a".repeat(17 << 10));
    expect_rejection(&s, req.as_bytes(), 431);
    assert_no_client_announced(&mut s);
}

/// More header fields than max_handshake_headers (64 by default) gets 431.
pub fn too_many_headers_get_431<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let extra: Vec<String> = (0..70).map(|i| format!("X-Header-{i}: {i}")).collect();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    expect_rejection(&s, upgrade_request(s.addr, "/", &extra).as_bytes(), 431);
    assert_no_client_announced(&mut s);
}

/// A plain GET (no upgrade) gets 426 Upgrade Required by default.
pub fn plain_get_gets_426_by_default<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let req = format!("GET /index.html HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    let head = expect_rejection(&s, req.as_bytes(), 426);
    assert_eq!(head.header("Sec-WebSocket-Version"), Some("13"), "{head:?}");
    assert_no_client_announced(&mut s);
}

/// With on_http set, a plain GET gets the handler's response (status, headers, body).
pub fn plain_get_is_served_by_on_http<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_http(|req| {
        if req.path == "/index.html" {
            HttpResponse::new(200, "text/html; charset=utf-8", "<h1>chat</h1>")
        } else {
            HttpResponse::new(404, "text/plain", format!("no {}", req.path))
        }
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let head = expect_rejection(
        &s,
        format!("GET /index.html HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).as_bytes(),
        200,
    );
    assert_eq!(
        head.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(head.body, b"<h1>chat</h1>");
    let head = expect_rejection(
        &s,
        format!("GET /nope HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).as_bytes(),
        404,
    );
    assert_eq!(head.body, b"no /nope");
}

/// The handshake hook refuses /private with 403 (and its body) and accepts /public; only the
/// accepted client is announced.
pub fn handshake_hook_rejects_with_403<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_handshake(|req, _peer| {
        if req.path == "/private" {
            Decision::Reject {
                status: 403,
                body: b"go away".to_vec(),
            }
        } else {
            Decision::Accept(Accept::default())
        }
    });
    let mut s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let head = expect_rejection(&s, upgrade_request(s.addr, "/private", &[]).as_bytes(), 403);
    assert_eq!(head.body, b"go away");
    let (mut c, client) = open(&s, "/public");
    assert_eq!(client.path, "/public");
    assert_echo(&mut c, "public");
    s.stop();
    assert_eq!(
        s.events.count(|e| matches!(e, Ev::NewClient(_))),
        1,
        "{:#?}",
        s.events.history()
    );
}

/// The hook picks "superchat" from the offered "chat, superchat" and adds a header; the client
/// sees both, and the server's Client carries the protocol.
pub fn handshake_hook_selects_an_offered_subprotocol<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_handshake(|req, _peer| {
        Decision::Accept(Accept {
            protocol: req.protocols.iter().find(|p| *p == "superchat").cloned(),
            headers: vec![("X-Test".to_owned(), "yes".to_owned())],
        })
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let mut c = RawClient::connect(s.addr);
    c.send_raw(
        upgrade_request(s.addr, "/", &["Sec-WebSocket-Protocol: chat, superchat"]).as_bytes(),
    );
    let head = c.read_head();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(
        head.header("Sec-WebSocket-Protocol"),
        Some("superchat"),
        "{head:?}"
    );
    assert_eq!(head.header("X-Test"), Some("yes"), "{head:?}");
    let client = s.events.new_client();
    assert_eq!(client.protocol.as_deref(), Some("superchat"));
    assert_echo(&mut c, "with protocol");
    // tungstenite agrees with the selection.
    let stream = TcpStream::connect(s.addr).unwrap();
    stream.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    let mut req =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{}/", s.addr))
            .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "superchat".parse().unwrap());
    let (_ws, resp) = tungstenite::client(req, stream).expect("tungstenite handshake");
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "superchat"
    );
}

/// Frames written in the same write as the request are kept and processed after the accept.
pub fn frame_in_same_write_as_handshake_is_not_lost<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut c = RawClient::connect(s.addr);
    let mut bytes = upgrade_request(s.addr, "/", &[]).into_bytes();
    let f1 = c.frame(true, 0, op::TEXT, b"early");
    let f2 = c.frame(true, 0, op::TEXT, b"bird");
    bytes.extend_from_slice(&f1);
    bytes.extend_from_slice(&f2);
    c.send_raw(&bytes);
    let head = c.read_head();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(c.read_text(), "early");
    assert_eq!(c.read_text(), "bird");
}

/// Real browsers' requests: `Connection: keep-alive, Upgrade` (Firefox), lower-case field
/// names, `Upgrade: WebSocket`, an Origin, and an extension we do not know (ignored).
pub fn handshake_accepts_browser_style_headers<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut c = RawClient::connect(s.addr);
    let req = format!(
        "GET /chat HTTP/1.1\r\nhost: {}\r\nuser-agent: Mozilla/5.0\r\naccept: */*\r\n\
         sec-websocket-version: 13\r\norigin: http://127.0.0.1\r\n\
         sec-websocket-extensions: x-unknown-extension; foo=1\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nconnection: keep-alive, Upgrade\r\n\
         pragma: no-cache\r\nupgrade: WebSocket\r\n\r\n",
        s.addr
    );
    c.send_raw(req.as_bytes());
    let head = c.read_head();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(
        head.header("Sec-WebSocket-Extensions"),
        None,
        "an unknown extension was accepted"
    );
    assert_echo(&mut c, "browser");
}

/// Broken upgrade requests get the documented statuses and are never announced: POST → 405,
/// no Host → 400, a key that is not base64 of 16 bytes → 400, two keys → 400, HTTP/1.0 → 400,
/// garbage → 400.
pub fn malformed_upgrades_get_4xx<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let good = upgrade_request(s.addr, "/", &[]);
    let host_line = format!("Host: {}\r\n", s.addr);
    let cases: Vec<(&str, String, u16)> = vec![
        ("POST", good.replacen("GET", "POST", 1), 405),
        ("no Host", good.replace(&host_line, ""), 400),
        (
            "short key",
            good.replace(crate::raw::SAMPLE_KEY, "c2hvcnQ="),
            400,
        ),
        (
            "two keys",
            good.replace(
                "\r\n\r\n",
                "\r\nSec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n",
            ),
            400,
        ),
        ("HTTP/1.0", good.replace("HTTP/1.1", "HTTP/1.0"), 400),
        (
            "garbage",
            "\x01\x02 not http at all\r\n\r\n".to_owned(),
            400,
        ),
    ];
    for (what, req, status) in cases {
        let mut c = RawClient::connect(s.addr);
        let _ = c.try_send_raw(req.as_bytes());
        let head = c.read_head();
        assert_eq!(head.status, status, "{what}: {head:?}");
        c.expect_eof();
    }
    assert_no_client_announced(&mut s);
}

/// Bytes that cannot start an HTTP request get their 400 as soon as the server has seen them,
/// not after the end of a head that will never come: the handshake timeout here is far longer
/// than the client waits for an answer.
pub fn non_http_bytes_get_400_without_waiting_for_the_end_of_the_head<A: Adapter>() {
    let mut config = ServerConfig::new();
    config.connection.handshake_timeout = Some(crate::raw::READ_TIMEOUT * 12);
    let mut s = TestServer::<A>::start(config, Probe::echo());
    let noise: Vec<u8> = (0..200u32).map(|i| (i * 149 + 99) as u8).collect();
    let cases: [(&str, &[u8]); 5] = [
        // The start of a TLS ClientHello, as a client configured for wss sends to a plain port.
        ("TLS hello", b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"),
        ("200 bytes of noise", &noise),
        ("another protocol", b"SSH-2.0-OpenSSH_9.2\r\n"),
        (
            "a broken request line",
            b"GET / HTTP/1.1 trailing\r\nHost: a\r\n",
        ),
        ("a bare LF", b"GET / HTTP/1.1\nHost: a\n"),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::connect(s.addr);
        let _ = c.try_send_raw(bytes);
        let head = c
            .try_read_head()
            .unwrap_or_else(|e| panic!("{what}: no answer before the end of the head: {e:?}"));
        assert_eq!(head.status, 400, "{what}: {head:?}");
        c.expect_eof();
    }
    assert_no_client_announced(&mut s);
}

/// A hook that selects a subprotocol the client did not offer cannot complete the handshake:
/// the client gets an error status, not a 101 with a protocol it never asked for.
pub fn handshake_hook_choosing_an_unoffered_subprotocol_fails_the_handshake<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_handshake(|_req, _peer| {
        Decision::Accept(Accept {
            protocol: Some("never-offered".to_owned()),
            headers: Vec::new(),
        })
    });
    let mut s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let mut c = RawClient::connect(s.addr);
    c.send_raw(upgrade_request(s.addr, "/", &["Sec-WebSocket-Protocol: chat"]).as_bytes());
    let head = c.read_head();
    assert!(head.status >= 400, "{head:?}");
    c.expect_eof();
    assert_no_client_announced(&mut s);
}

// ----------------------------------------------------------------------------------- server API

/// clients() lists every connected client with its id and peer address.
pub fn clients_lists_ids_and_peer_addresses<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let opened: Vec<(RawClient, Client)> = (0..3).map(|i| open(&s, &format!("/c{i}"))).collect();
    let listed = s.handle.clients();
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (raw, client) in &opened {
        let l = listed
            .iter()
            .find(|c| c.id == client.id)
            .expect("client listed");
        assert_eq!(l.addr, raw.local_addr());
        assert_eq!(l.path, client.path);
    }
    let distinct: BTreeSet<ClientId> = listed.iter().map(|c| c.id).collect();
    assert_eq!(distinct.len(), 3);
}

/// send(id) reaches that client only; the other's first message is a later broadcast.
pub fn send_reaches_only_the_addressed_client<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut a, ca) = open(&s, "/a");
    let (mut b, cb) = open(&s, "/b");
    s.handle.send(ca.id, text("for a"));
    s.handle.send_to_all(text("everyone"));
    s.handle.send_binary(cb.id, &[1, 2, 3]);
    assert_eq!(a.read_text(), "for a");
    assert_eq!(a.read_text(), "everyone");
    assert_eq!(b.read_text(), "everyone");
    assert_eq!(b.read_message(), (op::BINARY, vec![1, 2, 3]));
}

/// send_to_all delivers each message exactly once to each client, in order.
pub fn send_to_all_delivers_once_to_every_client<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut clients: Vec<(RawClient, Client)> = (0..3).map(|_| open(&s, "/")).collect();
    s.handle.send_to_all(text("one"));
    s.handle.send_to_all(Message::Binary(vec![2; 300]));
    for (_, c) in &clients {
        s.handle.send_text(c.id, "end");
    }
    for (raw, c) in &mut clients {
        assert_eq!(raw.read_text(), "one", "{}", c.id);
        assert_eq!(raw.read_message(), (op::BINARY, vec![2; 300]), "{}", c.id);
        assert_eq!(
            raw.read_text(),
            "end",
            "{}: a broadcast arrived twice?",
            c.id
        );
    }
}

/// subscribe/unsubscribe fire their callbacks once; publish reaches the subscribers only.
pub fn publish_reaches_subscribers_only_and_subscription_callbacks_fire<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let (mut a, ca) = open(&s, "/a");
    let (mut b, cb) = open(&s, "/b");
    let (mut c, cc) = open(&s, "/c");
    s.handle.subscribe(ca.id, "news");
    s.handle.subscribe(cb.id, "news");
    s.handle.subscribe(ca.id, "news"); // already subscribed: no second callback
    for id in [ca.id, cb.id] {
        s.events.seen_or_wait("on_subscribed", |e| {
            matches!(e, Ev::Subscribed(i, svc) if *i == id && svc == "news").then_some(())
        });
    }
    s.handle.publish("news", text("n1"));
    s.handle.send_to_all(text("m1"));
    assert_eq!(a.read_text(), "n1");
    assert_eq!(b.read_text(), "n1");
    for r in [&mut a, &mut b, &mut c] {
        assert_eq!(r.read_text(), "m1");
    }
    s.handle.unsubscribe(cb.id, "news");
    s.handle.unsubscribe(cc.id, "news"); // not subscribed: no callback
    s.events.seen_or_wait("on_unsubscribed", |e| {
        matches!(e, Ev::Unsubscribed(i, svc) if *i == cb.id && svc == "news").then_some(())
    });
    s.handle.publish("news", text("n2"));
    s.handle.publish("nobody-listens", text("lost"));
    s.handle.send_to_all(text("m2"));
    assert_eq!(a.read_text(), "n2");
    for r in [&mut a, &mut b, &mut c] {
        assert_eq!(r.read_text(), "m2");
    }
    s.stop();
    let subs = s
        .events
        .count(|e| matches!(e, Ev::Subscribed(i, _) if *i == ca.id));
    assert_eq!(subs, 1, "on_subscribed for a double subscribe");
    let unsub_c = s
        .events
        .count(|e| matches!(e, Ev::Unsubscribed(i, _) if *i == cc.id));
    assert_eq!(
        unsub_c, 0,
        "on_unsubscribed for a client that was not subscribed"
    );
}

/// A subscribed client that leaves gets on_unsubscribed for each service before
/// on_client_left, and publishing afterwards reaches the remaining subscribers only.
pub fn leaving_subscriber_is_unsubscribed_before_it_leaves<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut a, ca) = open(&s, "/a");
    let (mut b, cb) = open(&s, "/b");
    for svc in ["s1", "s2"] {
        s.handle.subscribe(ca.id, svc);
    }
    s.handle.subscribe(cb.id, "s1");
    for (id, svc) in [(ca.id, "s1"), (ca.id, "s2"), (cb.id, "s1")] {
        s.events.seen_or_wait("on_subscribed", |e| {
            matches!(e, Ev::Subscribed(i, v) if *i == id && v == svc).then_some(())
        });
    }
    a.send_close(1000, "");
    a.expect_close(1000);
    s.events.left(ca.id);
    let h = s.events.history();
    let left_at = h
        .iter()
        .position(|e| matches!(e, Ev::Left(c, _) if c.id == ca.id))
        .unwrap();
    for svc in ["s1", "s2"] {
        let at = h
            .iter()
            .position(|e| matches!(e, Ev::Unsubscribed(i, v) if *i == ca.id && v == svc))
            .unwrap_or_else(|| panic!("no on_unsubscribed({svc}) before on_client_left: {h:#?}"));
        assert!(
            at < left_at,
            "on_unsubscribed({svc}) after on_client_left: {h:#?}"
        );
    }
    s.handle.publish("s1", text("after a left"));
    assert_eq!(b.read_text(), "after a left");
}

/// The handle sends from other threads; each thread's messages arrive complete and in order.
pub fn handle_sends_from_another_thread<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut c, client) = open(&s, "/");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = s.handle.clone();
            let id = client.id;
            std::thread::spawn(move || {
                for i in 0..25 {
                    h.send_text(id, &format!("{t}:{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender thread");
    }
    let mut next = [0u32; 4];
    for _ in 0..100 {
        let m = c.read_text();
        let (t, i) = m.split_once(':').expect("t:i");
        let (t, i): (usize, u32) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[t], "thread {t}'s messages out of order");
        next[t] += 1;
    }
    assert_eq!(next, [25; 4]);
}

/// Connect 3, disconnect 1, connect another: ids are distinct while alive, and a message to the
/// departed id reaches nobody (not the newcomer in its slot).
pub fn ids_are_unique_while_alive_and_stale_ids_reach_nobody<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let (mut a, ca) = open(&s, "/a");
    let (mut b, cb) = open(&s, "/b");
    let (mut c, cc) = open(&s, "/c");
    b.send_close(1000, "");
    b.expect_close(1000);
    s.events.left(cb.id);
    let (mut d, cd) = open(&s, "/d");
    let alive: BTreeSet<ClientId> = [ca.id, cc.id, cd.id].into();
    assert_eq!(alive.len(), 3, "ids of live clients collide: {alive:?}");
    assert_ne!(cd.id, cb.id, "the departed id was reused");
    assert_eq!(ids(&s), alive);
    s.handle.send_text(cb.id, "stale");
    s.handle.send_text(cd.id, "fresh");
    s.handle.send_to_all(text("marker"));
    assert_eq!(
        d.read_text(),
        "fresh",
        "a message to the departed id reached the newcomer"
    );
    assert_eq!(d.read_text(), "marker");
    assert_eq!(a.read_text(), "marker");
    assert_eq!(c.read_text(), "marker");
}

/// Callbacks use the API like an application does: a welcome from on_new_client, subscribe
/// there, publish from on_message, clients() inside a callback, and a broadcast from
/// on_client_left to those who remain.
pub fn callbacks_use_the_api_on_their_own_and_other_clients<A: Adapter>() {
    let (probe, events) = Probe::new();
    let probe = probe.with_action(|api, ev| match ev {
        Ev::NewClient(c) => {
            api.send_text(c.id, &format!("welcome {}", c.path));
            api.subscribe(c.id, "room");
        }
        Ev::Message(id, Message::Text(t)) if t == "who" => {
            api.send_text(*id, &format!("{} here", api.clients().len()));
        }
        Ev::Message(_, m) => api.publish("room", m.clone()),
        Ev::Left(c, _) => api.send_to_all(text(&format!("{} left", c.path))),
        _ => {}
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut a, ca) = open(&s, "/a");
    assert_eq!(a.read_text(), "welcome /a");
    let (mut b, cb) = open(&s, "/b");
    assert_eq!(b.read_text(), "welcome /b");
    for id in [ca.id, cb.id] {
        s.events.seen_or_wait("on_subscribed", |e| {
            matches!(e, Ev::Subscribed(i, _) if *i == id).then_some(())
        });
    }
    a.send_text("who");
    assert_eq!(a.read_text(), "2 here");
    a.send_text("hello room");
    assert_eq!(a.read_text(), "hello room");
    assert_eq!(b.read_text(), "hello room");
    a.send_close(1000, "");
    a.expect_close(1000);
    assert_eq!(b.read_text(), "/a left");
    b.send_text("alone");
    assert_eq!(b.read_text(), "alone");
}

/// What one callback sends reaches a client in the order it was issued, whether it goes to that
/// client alone or to everyone, and whichever comes first (an adapter may run some sends at once
/// and queue others).
pub fn a_callbacks_sends_arrive_in_the_order_issued<A: Adapter>() {
    let (probe, events) = Probe::new();
    let probe = probe.with_action(|api, ev| match ev {
        Ev::NewClient(c) => api.subscribe(c.id, "room"),
        Ev::Message(id, Message::Text(t)) if t == "queued first" => {
            api.send_to_all(text("1"));
            api.send_text(*id, "2");
            api.publish("room", text("3"));
            api.send_text(*id, "4");
        }
        Ev::Message(id, Message::Text(t)) if t == "direct first" => {
            api.send_text(*id, "a");
            api.send_text(*id, "b");
            api.send_to_all(text("c"));
            api.send_text(*id, "d");
        }
        _ => {}
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut a, ca) = open(&s, "/a");
    s.events.seen_or_wait("on_subscribed", |e| {
        matches!(e, Ev::Subscribed(i, _) if *i == ca.id).then_some(())
    });
    for _ in 0..3 {
        a.send_text("queued first");
        a.send_text("direct first");
        let got: Vec<String> = (0..8).map(|_| a.read_text()).collect();
        assert_eq!(got, ["1", "2", "3", "4", "a", "b", "c", "d"]);
    }
}

/// One callback queues 80 messages for its client, broadcast frames (shared, one chunk each)
/// alternating with its own sends: more chunks than one vectored write takes. All arrive, in
/// the order issued.
pub fn more_queued_chunks_than_one_write_takes_arrive_in_order<A: Adapter>() {
    let (probe, events) = Probe::new();
    let probe = probe.with_action(|api, ev| {
        if let Ev::Message(id, Message::Text(t)) = ev {
            if t == "burst" {
                for i in 0..40 {
                    api.send_to_all(text(&format!("all {i}")));
                    api.send_text(*id, &format!("own {i}"));
                }
            }
        }
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut a, _) = open(&s, "/a");
    for _ in 0..2 {
        a.send_text("burst");
        for i in 0..40 {
            assert_eq!(a.read_text(), format!("all {i}"));
            assert_eq!(a.read_text(), format!("own {i}"));
        }
    }
}

/// A callback closes its own client (on a "kick me" message): the client gets the close frame
/// with the callback's code and reason.
pub fn callback_can_close_its_own_client<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_action(|api, ev| {
        if let Ev::Message(id, Message::Text(t)) = ev {
            if t == "kick me" {
                api.close(*id, code(4002), "as you wish");
            }
        }
    });
    let s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut c, client) = open(&s, "/");
    c.send_text("kick me");
    assert_eq!(c.read_text(), "kick me"); // the echo was queued before the close
    assert_eq!(c.expect_close(4002), "as you wish");
    c.send_close(4002, "");
    c.expect_eof();
    let closed = s.events.left(client.id);
    assert_eq!(
        (closed.by, closed.code, closed.clean),
        (ClosedBy::Local, 4002, true),
        "{closed:?}"
    );
}

// ------------------------------------------------------------------------------------- shutdown

/// Graceful shutdown: every client gets 1001, the server waits for their replies, closes TCP,
/// reports each client once, wait() returns, and nothing is accepted any more.
pub fn graceful_shutdown_closes_with_1001_and_waits_for_replies<A: Adapter>() {
    let mut s = TestServer::<A>::start(
        ServerConfig::new().shutdown_timeout(Duration::from_secs(10)),
        Probe::echo(),
    );
    let mut clients: Vec<(RawClient, Client)> = (0..3).map(|_| open(&s, "/")).collect();
    s.handle.shutdown_gracefully();
    for (raw, _) in &mut clients {
        raw.expect_close(1001);
    }
    for (raw, _) in &mut clients {
        raw.send_close(1001, "");
        raw.expect_eof();
    }
    s.wait_stopped(EVENT_TIMEOUT);
    for (_, c) in &clients {
        let lefts: Vec<_> = s
            .events
            .history()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Left(l, closed) if l.id == c.id => Some(closed),
                _ => None,
            })
            .collect();
        assert_eq!(lefts.len(), 1, "on_client_left for {}: {lefts:?}", c.id);
        let closed = &lefts[0];
        assert_eq!(
            (closed.by, closed.code),
            (ClosedBy::Local, 1001),
            "{closed:?}"
        );
        assert!(closed.clean, "the client answered: {closed:?}");
    }
    assert_not_accepting(s.addr);
}

/// A graceful shutdown that finds a client's reader waiting for the next of a run of mid-sized
/// messages (which ws-std reads straight into a buffer of its own, without the session's lock
/// while it waits): the message that then arrives after the server's Close, and the client's
/// Close behind it in the same write, are taken in, and the close completes cleanly rather than
/// at the shutdown timeout.
pub fn graceful_shutdown_while_waiting_for_a_predicted_message_closes_cleanly<A: Adapter>() {
    let mut s = TestServer::<A>::start(
        ServerConfig::new().shutdown_timeout(Duration::from_secs(30)),
        Probe::echo(),
    );
    let (mut c, client) = open(&s, "/");
    let p = vec![5u8; 8192];
    for _ in 0..3 {
        c.send_frame(true, 0, op::BINARY, &p);
        assert_eq!(c.read_message(), (op::BINARY, p.clone()));
    }
    s.handle.shutdown_gracefully();
    c.expect_close(1001);
    let late = [
        c.frame(true, 0, op::BINARY, &p),
        c.frame(true, 0, op::CLOSE, &1001u16.to_be_bytes()),
    ]
    .concat();
    c.send_raw(&late);
    c.expect_eof();
    s.wait_stopped(EVENT_TIMEOUT);
    let closed = s.events.left(client.id);
    assert_eq!(
        (closed.by, closed.code, closed.clean),
        (ClosedBy::Local, 1001, true),
        "{closed:?}"
    );
}

/// After the server stopped, a new connection is refused or closed without a 101.
fn assert_not_accepting(addr: SocketAddr) {
    if let Ok(stream) = TcpStream::connect(addr) {
        stream.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
        let mut c = RawClient::from_stream(stream);
        let _ = c.try_send_raw(upgrade_request(addr, "/", &[]).as_bytes());
        match c.try_read_head() {
            Err(ReadEnd::Closed(_)) => {}
            Err(ReadEnd::Timeout) => panic!("a stopped server left a connection open"),
            Ok(head) => assert_ne!(head.status, 101, "a stopped server upgraded a connection"),
        }
    }
}

/// A client that never answers the 1001 is dropped at the shutdown timeout (not before), while
/// one that answers closes cleanly; both are reported once and wait() returns.
pub fn graceful_shutdown_drops_unresponsive_client_at_timeout<A: Adapter>() {
    let timeout = Duration::from_millis(500);
    let mut s =
        TestServer::<A>::start(ServerConfig::new().shutdown_timeout(timeout), Probe::echo());
    let (mut good, cg) = open(&s, "/good");
    let (mut mute, cm) = open(&s, "/mute");
    let start = Instant::now();
    s.handle.shutdown_gracefully();
    good.expect_close(1001);
    good.send_close(1001, "");
    good.expect_eof();
    mute.expect_close(1001);
    mute.expect_eof();
    let dropped_after = start.elapsed();
    assert!(
        dropped_after >= timeout - Duration::from_millis(50),
        "unresponsive client dropped after {dropped_after:?}, before the {timeout:?} shutdown timeout"
    );
    assert!(
        dropped_after < Duration::from_secs(5),
        "dropped only after {dropped_after:?}"
    );
    s.wait_stopped(EVENT_TIMEOUT);
    let left = |id: ClientId| -> Vec<_> {
        s.events
            .history()
            .into_iter()
            .filter_map(|e| match e {
                Ev::Left(l, closed) if l.id == id => Some(closed),
                _ => None,
            })
            .collect()
    };
    let (lg, lm) = (left(cg.id), left(cm.id));
    assert_eq!(
        (lg.len(), lm.len()),
        (1, 1),
        "on_client_left counts: {lg:?} {lm:?}"
    );
    assert!(lg[0].clean, "{:?}", lg[0]);
    assert!(!lm[0].clean, "{:?}", lm[0]);
}

/// The shutdown timeout counts from the shutdown: clients that were idle for longer than it
/// still get the whole timeout to answer their 1001, and close cleanly.
pub fn graceful_shutdown_waits_for_replies_of_long_idle_clients<A: Adapter>() {
    let timeout = Duration::from_millis(300);
    let mut s =
        TestServer::<A>::start(ServerConfig::new().shutdown_timeout(timeout), Probe::echo());
    let mut clients: Vec<(RawClient, Client)> = (0..2).map(|_| open(&s, "/")).collect();
    // Precondition, not synchronisation: the clients stay idle past the shutdown timeout.
    std::thread::sleep(timeout * 2);
    s.handle.shutdown_gracefully();
    for (raw, _) in &mut clients {
        raw.expect_close(1001);
        raw.send_close(1001, "");
    }
    for (raw, _) in &mut clients {
        raw.expect_eof();
    }
    s.wait_stopped(EVENT_TIMEOUT);
    for (_, c) in &clients {
        let closed = s.events.left(c.id);
        assert!(
            closed.clean && closed.error.is_none(),
            "{}: answered at once, yet {closed:?}",
            c.id
        );
    }
}

/// Abrupt shutdown closes every socket at once (no close frames), reports each client once and
/// wait() returns.
pub fn abrupt_shutdown_closes_every_socket_and_reports_each_client_once<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let mut clients: Vec<(RawClient, Client)> = (0..3).map(|_| open(&s, "/")).collect();
    s.handle.shutdown_abruptly();
    for (raw, c) in &mut clients {
        match raw.try_read_frame() {
            Err(ReadEnd::Closed(_)) => {}
            Err(ReadEnd::Timeout) => panic!("{}: socket still open after abrupt shutdown", c.id),
            Ok(f) => panic!("{}: got {f:?}, expected the socket closed", c.id),
        }
    }
    s.wait_stopped(EVENT_TIMEOUT);
    for (_, c) in &clients {
        let n = s
            .events
            .count(|e| matches!(e, Ev::Left(l, _) if l.id == c.id));
        assert_eq!(
            n,
            1,
            "on_client_left for {}: {:#?}",
            c.id,
            s.events.history()
        );
    }
    assert_not_accepting(s.addr);
}

/// An abrupt shutdown while a graceful one waits for replies ends it at once: the clients that
/// got 1001 and never answered are dropped, reported once, and wait() returns.
pub fn abrupt_shutdown_during_graceful_shutdown_ends_it_at_once<A: Adapter>() {
    let mut s = TestServer::<A>::start(
        ServerConfig::new().shutdown_timeout(Duration::from_secs(60)),
        Probe::echo(),
    );
    let mut clients: Vec<(RawClient, Client)> = (0..2).map(|_| open(&s, "/")).collect();
    s.handle.shutdown_gracefully();
    for (raw, _) in &mut clients {
        raw.expect_close(1001);
    }
    s.handle.shutdown_abruptly();
    for (raw, _) in &mut clients {
        raw.expect_eof();
    }
    s.wait_stopped(EVENT_TIMEOUT);
    for (_, c) in &clients {
        assert_eq!(
            s.events
                .count(|e| matches!(e, Ev::Left(l, _) if l.id == c.id)),
            1
        );
    }
}

/// A graceful shutdown does not wait for connections still in their handshake: they are
/// dropped, and the server stops as soon as the open clients answered (long before the 60 s
/// shutdown timeout).
pub fn graceful_shutdown_does_not_wait_for_unfinished_handshakes<A: Adapter>() {
    let mut s = TestServer::<A>::start(
        ServerConfig::new().shutdown_timeout(Duration::from_secs(60)),
        Probe::echo(),
    );
    let mut half = RawClient::connect(s.addr);
    half.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n"); // and never the rest
    let (mut c, _) = open(&s, "/");
    s.handle.shutdown_gracefully();
    c.expect_close(1001);
    c.send_close(1001, "");
    c.expect_eof();
    s.wait_stopped(EVENT_TIMEOUT);
    let got = half.read_to_eof(Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&got).contains(" 101 "), "{got:?}");
}

/// A callback that asks for a graceful shutdown (on a "shutdown" message) gets one: every
/// client receives 1001 and wait() returns once they answered.
pub fn shutdown_requested_from_a_callback_completes<A: Adapter>() {
    let (probe, events) = Probe::echo();
    let probe = probe.with_action(|api, ev| {
        if matches!(ev, Ev::Message(_, Message::Text(t)) if t == "shutdown") {
            api.shutdown_gracefully();
        }
    });
    let mut s = TestServer::<A>::start(ServerConfig::new(), (probe, events));
    let (mut a, _) = open(&s, "/a");
    let (mut b, _) = open(&s, "/b");
    a.send_text("shutdown");
    let f = a.read_frame();
    // The echo may or may not precede the close, depending on the order of the two sends.
    let f = if f.opcode == op::TEXT {
        a.read_frame()
    } else {
        f
    };
    assert_eq!(f.close_code().map(|(c, _)| c), Some(1001), "{f:?}");
    b.expect_close(1001);
    for c in [&mut a, &mut b] {
        c.send_close(1001, "");
        c.expect_eof();
    }
    s.wait_stopped(EVENT_TIMEOUT);
    assert_eq!(s.events.count(|e| matches!(e, Ev::Left(..))), 2);
}

/// After the server stopped, the handle still answers: clients() is empty, sends and another
/// shutdown do nothing, and wait() returns at once.
pub fn handle_is_harmless_after_the_server_stopped<A: Adapter>() {
    let mut s = TestServer::<A>::echo();
    let (_c, client) = open(&s, "/");
    s.stop();
    assert!(s.handle.clients().is_empty(), "{:?}", s.handle.clients());
    s.handle.send_text(client.id, "nobody");
    s.handle.send_to_all(text("nobody"));
    s.handle.publish("x", text("nobody"));
    s.handle.shutdown_gracefully();
    s.handle.shutdown_abruptly();
    s.wait_stopped(Duration::from_secs(2));
    assert_not_accepting(s.addr);
}

// ------------------------------------------------------ connection limit, timeouts, slow peers

/// max_connections(2): the third upgrade gets 503; once a client leaves a new one is accepted.
pub fn connection_limit_answers_503_until_a_client_leaves<A: Adapter>() {
    let s = TestServer::<A>::start(ServerConfig::new().max_connections(2), Probe::echo());
    let (mut a, ca) = open(&s, "/a");
    let (mut b, _) = open(&s, "/b");
    expect_rejection(&s, upgrade_request(s.addr, "/c", &[]).as_bytes(), 503);
    s.events.wait_for("on_error(ConnectionLimit)", |e| {
        matches!(e, Ev::Error(_, ServerError::ConnectionLimit(2))).then_some(())
    });

    assert_echo(&mut b, "b is fine");
    a.send_close(1000, "");
    a.expect_close(1000);
    s.events.left(ca.id);
    let (mut d, _) = open(&s, "/d");
    assert_echo(&mut d, "d got in");
}

/// Past the connection limit plus 64 open sockets, a new socket is closed at once, unanswered
/// (clients up to there get their 503); the clients being served are unaffected.
pub fn sockets_far_past_the_limit_are_closed_unanswered<A: Adapter>() {
    let mut config = ServerConfig::new().max_connections(1);
    // Only the drop can close the silent socket within the test.
    config.connection.handshake_timeout = Some(Duration::from_secs(600));
    let s = TestServer::<A>::start(config, Probe::echo());
    let (mut a, _) = open(&s, "/a");
    // 64 silent sockets (in their handshakes) make 65 open.
    let silent: Vec<RawClient> = (0..64).map(|_| RawClient::connect(s.addr)).collect();
    // Accepted in order, so this one comes after them all.
    let mut dropped = RawClient::connect(s.addr);
    let got = dropped.read_to_eof(Duration::from_secs(20));
    assert!(
        got.is_empty(),
        "a dropped socket got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_echo(&mut a, "a is fine");
    drop(silent);
}

/// A client that trickles its request one byte every 100 ms is dropped by the handshake timeout
/// (500 ms), is never announced, and does not hold up other clients.
pub fn slowloris_handshake_is_dropped_by_handshake_timeout<A: Adapter>() {
    let mut config = ServerConfig::new();
    config.connection.handshake_timeout = Some(Duration::from_millis(500));
    let mut s = TestServer::<A>::start(config, Probe::echo());
    let mut slow = RawClient::connect(s.addr);
    let request = upgrade_request(s.addr, "/slow", &[]).into_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = slow.stream.try_clone().unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            for b in request {
                if stop.load(Ordering::Relaxed) || stream.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100)); // pacing the slow client
            }
        })
    };
    let mut silent = RawClient::connect(s.addr);
    let start = Instant::now();
    // Others are served meanwhile.
    let (mut ok, _) = open(&s, "/ok");
    assert_echo(&mut ok, "not blocked by the slow client");
    let got = slow.read_to_eof(Duration::from_secs(5));
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains(" 101 "),
        "slow client was upgraded: {got:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(400),
        "dropped after {elapsed:?}, before the timeout"
    );
    // A connection that never sends a byte is dropped by the same timeout.
    let got = silent.read_to_eof(Duration::from_secs(5));
    assert!(got.is_empty(), "silent connection got {got:?}");
    s.stop();
    let slow_announced = s
        .events
        .count(|e| matches!(e, Ev::NewClient(c) if c.path == "/slow"));
    assert_eq!(slow_announced, 0);
}

/// keepalive(200 ms, 200 ms): a client that never answers pings is dropped and reported with
/// KeepaliveTimeout.
pub fn keepalive_drops_client_that_never_answers_pings<A: Adapter>() {
    let iv = Duration::from_millis(200);
    let s = TestServer::<A>::start(ServerConfig::new().keepalive(iv, iv), Probe::echo());
    let (mut c, client) = open(&s, "/");
    let start = Instant::now();
    let closed = s.events.left(client.id);
    assert_eq!(
        closed.error,
        Some(ConnectionError::KeepaliveTimeout),
        "{closed:?}"
    );
    assert_eq!(closed.by, ClosedBy::Local);
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "dropped after {:?}",
        start.elapsed()
    );
    let f = c.read_frame();
    assert_eq!(f.opcode, op::PING, "the server pings first: {f:?}");
    loop {
        match c.try_read_frame() {
            Ok(f) if f.opcode == op::PING => {}
            Ok(f) if f.opcode == op::CLOSE => {
                assert_eq!(f.close_code().map(|(c, _)| c), Some(1011), "{f:?}");
            }
            Ok(f) => panic!("unexpected frame {f:?}"),
            Err(ReadEnd::Closed(_)) => break,
            Err(ReadEnd::Timeout) => panic!("socket of the dropped client still open"),
        }
    }
}

/// keepalive(200 ms, 200 ms): a client that answers every ping stays connected and its pongs
/// fire on_pong.
pub fn keepalive_keeps_client_that_answers_pings<A: Adapter>() {
    let iv = Duration::from_millis(200);
    let s = TestServer::<A>::start(ServerConfig::new().keepalive(iv, iv), Probe::echo());
    let (mut c, client) = open(&s, "/");
    for _ in 0..3 {
        let f = c.read_frame();
        assert_eq!(f.opcode, op::PING, "{f:?}");
        c.send_frame(true, 0, op::PONG, &f.payload);
        let p = f.payload.clone();
        s.events.wait_for("on_pong", |e| {
            matches!(e, Ev::Pong(i, q) if *i == client.id && *q == p).then_some(())
        });
    }
    assert_echo(&mut c, "still alive");
    assert!(ids(&s).contains(&client.id));
    assert_eq!(s.events.count(|e| matches!(e, Ev::Left(..))), 0);
}

/// Rounds of one 48 KiB broadcast, each read in full by `fast` before the next: returns the
/// round at which `until` held, failing after `max_rounds`.
fn broadcast_rounds<A: Adapter>(
    s: &TestServer<A>,
    fast: &mut RawClient,
    max_rounds: u32,
    mut until: impl FnMut(&TestServer<A>) -> bool,
) -> u32 {
    for round in 0..max_rounds {
        let mut payload = vec![(round % 251) as u8; 48 << 10];
        payload[..4].copy_from_slice(&round.to_be_bytes());
        s.handle.send_to_all(Message::Binary(payload.clone()));
        let (opcode, got) = fast.read_message();
        assert_eq!(opcode, op::BINARY);
        assert!(
            got == payload,
            "fast client: round {round} garbled or missing"
        );
        s.events.drain();
        if until(s) {
            return round;
        }
    }
    panic!(
        "condition not reached after {max_rounds} rounds of 48 KiB; callbacks: {:#?}",
        s.events.history()
    );
}

/// backpressure(64 KiB, DropMessage): broadcasts to a client that never reads are dropped and
/// reported with on_error(MessageDropped); a reading client gets everything; nobody is closed.
pub fn slow_consumer_messages_are_dropped_and_reported<A: Adapter>() {
    let s = TestServer::<A>::start(
        ServerConfig::new().backpressure(64 << 10, Backpressure::DropMessage),
        Probe::echo(),
    );
    let (_slow, cs) = open(&s, "/slow");
    let (mut fast, cf) = open(&s, "/fast");
    broadcast_rounds(&s, &mut fast, 4000, |s| {
        s.events.count(
            |e| matches!(e, Ev::Error(Some(id), ServerError::MessageDropped(_)) if *id == cs.id),
        ) > 0
    });
    let mut n = 0;
    broadcast_rounds(&s, &mut fast, 30, |_| {
        n += 1;
        n == 20
    });
    s.events.drain();
    let fast_errors = s
        .events
        .count(|e| matches!(e, Ev::Error(Some(id), _) if *id == cf.id));
    assert_eq!(fast_errors, 0, "{:#?}", s.events.history());
    assert_eq!(
        s.events.count(|e| matches!(e, Ev::Left(..))),
        0,
        "{:#?}",
        s.events.history()
    );
    assert_eq!(ids(&s), [cs.id, cf.id].into());
    assert_echo(&mut fast, "fast is fine");
}

/// backpressure(64 KiB, DropMessage): what a callback sends straight to a client that never
/// reads is dropped once that client's output is full, each drop is reported with
/// on_error(MessageDropped), and the sender's own replies are unaffected.
pub fn a_callbacks_sends_to_a_client_that_never_reads_are_dropped_and_reported<A: Adapter>() {
    let (probe, events) = Probe::new();
    let probe = probe.with_action(|api, ev| {
        if let Ev::Message(id, Message::Text(t)) = ev {
            if t == "feed" {
                for c in api.clients().iter().filter(|c| c.path == "/slow") {
                    api.send(c.id, Message::Binary(vec![7; 16 << 10]));
                }
                api.send_text(*id, "fed");
            }
        }
    });
    let s = TestServer::<A>::start(
        ServerConfig::new().backpressure(64 << 10, Backpressure::DropMessage),
        (probe, events),
    );
    let (_slow, cs) = open(&s, "/slow");
    let (mut fast, cf) = open(&s, "/fast");
    // The kernel's buffers take a few MiB first; 4000 rounds of 16 KiB are far more. Once the
    // queue is full, sends are dropped, though not each one: the kernel's buffers for the
    // sleeping client may still grow a little and take some queued bytes meanwhile.
    let dropped = |s: &TestServer<A>| {
        s.events.drain();
        s.events.count(
            |e| matches!(e, Ev::Error(Some(id), ServerError::MessageDropped(_)) if *id == cs.id),
        )
    };
    let mut rounds = 0;
    while dropped(&s) < 5 {
        rounds += 1;
        assert!(
            rounds <= 4000,
            "fewer than 5 drops reported: {:#?}",
            s.events.history()
        );
        fast.send_text("feed");
        assert_eq!(fast.read_text(), "fed", "the sender is unaffected");
    }
    assert_eq!(
        s.events
            .count(|e| matches!(e, Ev::Error(Some(id), _) if *id == cf.id)),
        0,
        "{:#?}",
        s.events.history()
    );
    assert_eq!(ids(&s), [cs.id, cf.id].into(), "nobody is closed");
}

/// backpressure(64 KiB, Close): a client that never reads is closed (on_client_left with
/// OutputOverflow, at once: it cannot take its close frame, so its socket may linger until the
/// close timeout, here 30 s, but the application hears at once that it is gone) and the others
/// go on receiving everything.
pub fn slow_consumer_is_closed_with_close_policy<A: Adapter>() {
    let mut config = ServerConfig::new().backpressure(64 << 10, Backpressure::Close);
    config.connection.close_timeout = Duration::from_secs(30);
    let s = TestServer::<A>::start(config, Probe::echo());
    let (_slow, cs) = open(&s, "/slow");
    let (mut fast, cf) = open(&s, "/fast");
    let overflow_round = broadcast_rounds(&s, &mut fast, 4000, |s| {
        s.events.count(|e| {
            matches!(e, Ev::Left(c, _) if c.id == cs.id)
                || matches!(e, Ev::Error(Some(id), _) if *id == cs.id)
        }) > 0
    });
    let closed = s.events.left(cs.id);
    assert_eq!(
        closed.error,
        Some(ConnectionError::OutputOverflow),
        "{closed:?}"
    );
    assert_eq!(
        (closed.by, closed.code),
        (ClosedBy::Local, 1008),
        "{closed:?}"
    );
    assert!(!ids(&s).contains(&cs.id), "closed slow client still listed");
    let mut n = 0;
    broadcast_rounds(&s, &mut fast, 30, |_| {
        n += 1;
        n == 20
    });
    assert_eq!(ids(&s), [cf.id].into());
    assert_echo(
        &mut fast,
        &format!("fast is fine after round {overflow_round}"),
    );
}

/// A message and a close frame in one write: the echo of the message comes before the close
/// reply (RFC 6455 §5.5.1: the endpoint answers the close after the data it was sending).
pub fn echo_precedes_the_close_reply_sent_in_the_same_write<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut c = RawClient::open(s.addr, "/");
    let mut bytes = c.frame(true, 0, op::TEXT, b"last words");
    bytes.extend(c.frame(true, 0, op::CLOSE, &crate::raw::close_payload(1000, b"")));
    c.send_raw(&bytes);
    assert_eq!(c.read_message(), (op::TEXT, b"last words".to_vec()));
    assert_eq!(c.expect_close(1000), "");
}

/// A message, then a protocol violation, in one write: the message is echoed before the 1002.
pub fn echo_precedes_the_error_close_of_a_later_frame_in_the_same_write<A: Adapter>() {
    let s = TestServer::<A>::echo();
    let mut c = RawClient::open(s.addr, "/");
    let mut bytes = c.frame(true, 0, op::TEXT, b"fine");
    bytes.extend(c.frame(true, 2, op::TEXT, b"bad rsv"));
    c.send_raw(&bytes);
    assert_eq!(c.read_message(), (op::TEXT, b"fine".to_vec()));
    c.expect_close(1002);
}
