//! State-machine tests, named for the RFC 6455 rule they check. Frame-level tests start from
//! [`Connection::from_upgraded`]; handshake tests drive a real client/server pair.
#![allow(clippy::field_reassign_with_default)]

use super::*;
use crate::frame::{FrameHeader, OpCode};
use proptest::prelude::*;
use std::time::Duration;

use crate::test_clock::t0;

fn server() -> Connection {
    Connection::from_upgraded(Role::Server, Config::default(), None, [0; 32], t0())
}

fn server_with(config: Config) -> Connection {
    Connection::from_upgraded(Role::Server, config, None, [0; 32], t0())
}

fn client() -> Connection {
    Connection::from_upgraded(Role::Client, Config::default(), None, [7; 32], t0())
}

/// Encodes a frame as a client would (masked with a fixed key) or as a server (unmasked).
fn frame(op: u8, fin: bool, rsv: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | op];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(m | len as u8);
    } else if len <= 65535 {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mut p = payload.to_vec();
    if let Some(k) = mask {
        out.extend_from_slice(&k);
        crate::mask::apply_mask_naive(&mut p, k, 0);
    }
    out.extend_from_slice(&p);
    out
}

const K: Option<[u8; 4]> = Some([0x12, 0x34, 0x56, 0x78]);

fn cframe(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame(op, fin, 0, payload, K)
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn drain_output(c: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while c.wants_write() {
        let chunk = c.pending_output().to_vec();
        out.extend_from_slice(&chunk);
        c.consume_output(chunk.len());
    }
    out
}

/// Decodes unmasked server output into (opcode, fin, payload) triples.
fn decode_all(mut bytes: &[u8]) -> Vec<(OpCode, bool, Vec<u8>)> {
    let mut frames = Vec::new();
    while let Some((h, n)) = FrameHeader::decode(bytes).unwrap() {
        let end = n + h.payload_len as usize;
        let mut p = bytes[n..end].to_vec();
        if let Some(k) = h.mask {
            crate::mask::apply_mask_naive(&mut p, k, 0);
        }
        frames.push((h.opcode, h.fin, p));
        bytes = &bytes[end..];
    }
    assert!(bytes.is_empty(), "trailing partial frame");
    frames
}

fn closed_event(evs: &[Event]) -> &Closed {
    let closed: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Closed(c) = e {
                Some(c)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(closed.len(), 1, "exactly one Closed event: {evs:?}");
    closed[0]
}

/// Feeds `input` to a server and asserts it fails with `code`, sending a close frame with it.
fn assert_fails_with(input: &[u8], code: u16) {
    let mut s = server();
    s.receive(input, t0());
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(c.code, code, "{evs:?}");
    assert_eq!(c.by, ClosedBy::Local);
    assert!(c.error.is_some());
    let out = drain_output(&mut s);
    let frames = decode_all(&out);
    let last = frames.last().expect("a close frame was sent");
    assert_eq!(last.0, OpCode::Close);
    assert_eq!(u16::from_be_bytes([last.2[0], last.2[1]]), code);
    assert!(s.should_close_transport());
    assert!(s.is_closed());
}

// ----- §5.1, §5.3: masking -----

#[test]
fn s5_1_server_fails_unmasked_client_frame() {
    assert_fails_with(&frame(1, true, 0, b"hi", None), 1002);
}

#[test]
fn s5_1_client_fails_masked_server_frame() {
    let mut c = client();
    c.receive(&frame(1, true, 0, b"hi", K), t0());
    let evs = events(&mut c);
    assert_eq!(closed_event(&evs).code, 1002);
}

#[test]
fn s5_3_client_masks_every_frame_with_fresh_keys() {
    let mut c = client();
    c.send_text("hello").unwrap();
    c.send_text("hello").unwrap();
    let out = drain_output(&mut c);
    let (h1, n1) = FrameHeader::decode(&out).unwrap().unwrap();
    let (h2, _) = FrameHeader::decode(&out[n1 + 5..]).unwrap().unwrap();
    assert!(h1.mask.is_some() && h2.mask.is_some());
    assert_ne!(h1.mask, h2.mask);
    assert_ne!(&out[n1..n1 + 5], b"hello");
    assert_eq!(
        decode_all(&out),
        vec![
            (OpCode::Text, true, b"hello".to_vec()),
            (OpCode::Text, true, b"hello".to_vec())
        ]
    );
}

#[test]
fn s5_1_server_frames_are_unmasked() {
    let mut s = server();
    s.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(drain_output(&mut s), vec![0x82, 3, 1, 2, 3]);
}

// ----- §5.2: base framing -----

#[test]
fn s5_2_rsv_bits_without_extension_fail() {
    for rsv in 1..8u8 {
        assert_fails_with(&frame(1, true, rsv, b"x", K), 1002);
    }
}

#[test]
fn s5_2_reserved_opcodes_fail() {
    for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        assert_fails_with(&frame(op, true, 0, b"", K), 1002);
    }
}

#[test]
fn s5_2_64bit_length_with_msb_set_fails() {
    let mut f = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(&[1, 2, 3, 4]);
    assert_fails_with(&f, 1002);
}

#[test]
fn s5_2_all_length_encodings_are_received() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut s = server();
        s.receive(&cframe(2, true, &payload), t0());
        assert_eq!(
            events(&mut s),
            vec![Event::Message(Message::Binary(payload))],
            "len {len}"
        );
    }
}

// ----- §5.4: fragmentation -----

#[test]
fn s5_4_fragments_are_reassembled() {
    let mut s = server();
    let mut input = cframe(1, false, b"Hel");
    input.extend(cframe(0, false, b"lo, "));
    input.extend(cframe(0, true, b"world"));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("Hello, world".into()))]
    );
}

#[test]
fn s5_4_control_frames_between_fragments_are_handled() {
    let mut s = server();
    let mut input = cframe(1, false, b"a");
    input.extend(cframe(9, true, b"ping!"));
    input.extend(cframe(0, true, b"b"));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![
            Event::Ping(b"ping!".to_vec()),
            Event::Message(Message::Text("ab".into()))
        ]
    );
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        vec![(OpCode::Pong, true, b"ping!".to_vec())]
    );
}

#[test]
fn s5_4_continuation_without_start_fails() {
    assert_fails_with(&cframe(0, true, b"x"), 1002);
}

#[test]
fn s5_4_new_data_frame_inside_fragmented_message_fails() {
    let mut input = cframe(1, false, b"a");
    input.extend(cframe(2, true, b"b"));
    assert_fails_with(&input, 1002);
}

#[test]
fn s5_4_empty_fragments_are_valid() {
    let mut s = server();
    let mut input = cframe(1, false, b"");
    input.extend(cframe(0, false, b""));
    input.extend(cframe(0, true, b""));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text(String::new()))]
    );
}

#[test]
fn s5_4_outgoing_messages_fragment_at_configured_size() {
    let mut cfg = Config::default();
    cfg.outgoing_frame_size = 4;
    let mut s = server_with(cfg);
    s.send_text("abcdefghij").unwrap();
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(
        frames,
        vec![
            (OpCode::Text, false, b"abcd".to_vec()),
            (OpCode::Continuation, false, b"efgh".to_vec()),
            (OpCode::Continuation, true, b"ij".to_vec())
        ]
    );
}

#[test]
fn s5_4_streamed_send_with_ping_between_fragments() {
    let mut s = server();
    s.send_fragment(DataKind::Binary, b"ab", false).unwrap();
    assert_eq!(s.send_text("no"), Err(Error::StreamState));
    s.ping(b"p").unwrap();
    s.send_fragment(DataKind::Binary, b"cd", true).unwrap();
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        vec![
            (OpCode::Binary, false, b"ab".to_vec()),
            (OpCode::Ping, true, b"p".to_vec()),
            (OpCode::Continuation, true, b"cd".to_vec())
        ]
    );
    s.send_text("yes").unwrap();
}

#[test]
fn streaming_mode_delivers_fragments() {
    let mut cfg = Config::default();
    cfg.streaming = true;
    let mut s = server_with(cfg);
    let mut input = cframe(2, false, b"ab");
    input.extend(cframe(0, true, b"cd"));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![
            Event::Fragment {
                kind: DataKind::Binary,
                data: b"ab".to_vec(),
                fin: false
            },
            Event::Fragment {
                kind: DataKind::Binary,
                data: b"cd".to_vec(),
                fin: true
            }
        ]
    );
}

// ----- §5.5: control frames -----

#[test]
fn s5_5_control_payload_over_125_fails() {
    assert_fails_with(&cframe(9, true, &[0; 126]), 1002);
}

#[test]
fn s5_5_fragmented_control_frame_fails() {
    assert_fails_with(&cframe(9, false, b"x"), 1002);
}

#[test]
fn s5_5_2_ping_is_answered_with_same_payload() {
    let mut s = server();
    s.receive(&cframe(9, true, &[7; 125]), t0());
    assert_eq!(events(&mut s), vec![Event::Ping(vec![7; 125])]);
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        vec![(OpCode::Pong, true, vec![7; 125])]
    );
}

#[test]
fn s5_5_2_auto_pong_can_be_disabled() {
    let mut cfg = Config::default();
    cfg.auto_pong = false;
    let mut s = server_with(cfg);
    s.receive(&cframe(9, true, b"x"), t0());
    assert_eq!(events(&mut s), vec![Event::Ping(b"x".to_vec())]);
    assert!(!s.wants_write());
    s.pong(b"x").unwrap();
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        vec![(OpCode::Pong, true, b"x".to_vec())]
    );
}

#[test]
fn s5_5_3_unsolicited_pong_is_reported_not_answered() {
    let mut s = server();
    s.receive(&cframe(10, true, b"u"), t0());
    assert_eq!(events(&mut s), vec![Event::Pong(b"u".to_vec())]);
    assert!(!s.wants_write());
}

#[test]
fn s5_5_control_payload_limit_on_send() {
    let mut s = server();
    assert_eq!(s.ping(&[0; 126]), Err(Error::ControlPayloadTooLong));
    assert!(s.ping(&[0; 125]).is_ok());
}

// ----- §5.5.1, §7: close -----

#[test]
fn s5_5_1_close_is_echoed_and_reported_once() {
    let mut s = server();
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    s.receive(&cframe(8, true, &payload), t0());
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(
        (c.by, c.code, c.reason.as_str(), c.clean),
        (ClosedBy::Remote, 1000, "bye", true)
    );
    let out = drain_output(&mut s);
    assert_eq!(
        decode_all(&out),
        vec![(OpCode::Close, true, 1000u16.to_be_bytes().to_vec())]
    );
    assert!(
        s.should_close_transport(),
        "server drops TCP after the close handshake"
    );
    // Nothing more is processed or produced.
    s.receive(&cframe(1, true, b"late"), t0());
    s.receive_eof(t0());
    assert!(events(&mut s).is_empty());
    assert_eq!(s.send_text("x"), Err(Error::NotOpen));
}

#[test]
fn s5_5_1_empty_close_is_answered_empty_and_reported_1005() {
    let mut s = server();
    s.receive(&cframe(8, true, b""), t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1005);
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        vec![(OpCode::Close, true, vec![])]
    );
}

#[test]
fn s5_5_1_one_byte_close_payload_fails_1002() {
    assert_fails_with(&cframe(8, true, &[0x03]), 1002);
}

#[test]
fn s7_4_invalid_close_codes_fail_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_fails_with(&cframe(8, true, &code.to_be_bytes()), 1002);
    }
}

#[test]
fn s7_4_valid_close_codes_are_echoed() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut s = server();
        s.receive(&cframe(8, true, &code.to_be_bytes()), t0());
        let evs = events(&mut s);
        assert_eq!(closed_event(&evs).code, code);
        assert_eq!(
            decode_all(&drain_output(&mut s)),
            vec![(OpCode::Close, true, code.to_be_bytes().to_vec())]
        );
    }
}

#[test]
fn s8_1_close_reason_with_invalid_utf8_fails_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65,
    ]);
    assert_fails_with(&cframe(8, true, &payload), 1007);
}

#[test]
fn s7_1_local_close_waits_for_reply_and_sends_nothing_after() {
    let mut s = server();
    s.close(CloseCode::new(4000).unwrap(), "kicked").unwrap();
    assert_eq!(s.send_text("x"), Err(Error::AlreadyClosing));
    assert_eq!(s.ping(b""), Err(Error::AlreadyClosing));
    assert_eq!(s.close(CloseCode::NORMAL, ""), Err(Error::AlreadyClosing));
    let out = drain_output(&mut s);
    let mut expect = 4000u16.to_be_bytes().to_vec();
    expect.extend_from_slice(b"kicked");
    assert_eq!(decode_all(&out), vec![(OpCode::Close, true, expect)]);
    assert!(!s.should_close_transport());
    // Data still arriving before the peer's close is delivered; pings are not answered.
    s.receive(&cframe(1, true, b"in flight"), t0());
    s.receive(&cframe(9, true, b"p"), t0());
    assert!(!s.wants_write());
    s.receive(&cframe(8, true, &4000u16.to_be_bytes()), t0());
    let evs = events(&mut s);
    assert_eq!(evs[0], Event::Message(Message::Text("in flight".into())));
    let c = closed_event(&evs);
    assert_eq!(
        (c.by, c.code, c.reason.as_str(), c.clean),
        (ClosedBy::Local, 4000, "kicked", true)
    );
    assert!(s.should_close_transport());
}

#[test]
fn close_deadline_counts_from_the_time_of_the_close() {
    let mut s = server();
    s.receive(&cframe(1, true, b"x"), t0());
    events(&mut s);
    let later = t0() + Duration::from_secs(60);
    s.set_time(later);
    s.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(
        s.poll_timeout(),
        Some(later + Config::default().close_timeout)
    );
}

#[test]
fn s7_1_close_times_out_without_reply() {
    let mut s = server();
    s.close(CloseCode::NORMAL, "").unwrap();
    drain_output(&mut s);
    let deadline = s.poll_timeout().expect("close deadline");
    assert_eq!(deadline, t0() + Config::default().close_timeout);
    s.handle_timeout(deadline - Duration::from_millis(1));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(deadline);
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(c.error, Some(ConnectionError::CloseTimeout));
    assert!(!c.clean);
    assert!(s.should_close_transport());
}

#[test]
fn s7_1_1_client_waits_for_server_to_drop_tcp_then_times_out() {
    let mut c = client();
    c.receive(&frame(8, true, 0, &1000u16.to_be_bytes(), None), t0());
    let evs = events(&mut c);
    assert_eq!(closed_event(&evs).by, ClosedBy::Remote);
    drain_output(&mut c);
    assert!(
        !c.should_close_transport(),
        "the client lets the server close TCP first"
    );
    let d = c
        .poll_timeout()
        .expect("a deadline for the server's TCP close");
    c.handle_timeout(d);
    assert!(c.should_close_transport());
    assert!(events(&mut c).is_empty(), "no second Closed event");
}

#[test]
fn s7_1_1_client_closes_tcp_on_server_eof() {
    let mut c = client();
    c.receive(&frame(8, true, 0, &1000u16.to_be_bytes(), None), t0());
    events(&mut c);
    drain_output(&mut c);
    c.receive_eof(t0());
    assert!(c.should_close_transport());
    assert!(events(&mut c).is_empty());
}

#[test]
fn s7_1_5_eof_without_close_is_abnormal_1006() {
    let mut s = server();
    s.receive_eof(t0());
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!((c.by, c.code, c.clean), (ClosedBy::Transport, 1006, false));
}

#[test]
fn close_reason_over_123_bytes_is_refused() {
    let mut s = server();
    assert_eq!(
        s.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(Error::ReasonTooLong)
    );
    assert!(s.close(CloseCode::NORMAL, &"x".repeat(123)).is_ok());
}

#[test]
fn abort_emits_one_closed_and_drops_output() {
    let mut s = server();
    s.send_text("pending").unwrap();
    s.abort();
    let evs = events(&mut s);
    closed_event(&evs);
    assert!(!s.wants_write());
    assert!(s.should_close_transport());
    s.abort();
    assert!(events(&mut s).is_empty());
}

// ----- §5.6, §8.1: UTF-8 -----

#[test]
fn s8_1_invalid_utf8_text_fails_1007() {
    assert_fails_with(
        &cframe(
            1,
            true,
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
                0x65,
            ],
        ),
        1007,
    );
}

#[test]
fn s8_1_code_point_split_across_fragments_is_valid() {
    let euro = "€".as_bytes();
    let mut s = server();
    let mut input = cframe(1, false, &euro[..1]);
    input.extend(cframe(0, false, &euro[1..2]));
    input.extend(cframe(0, true, &euro[2..]));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("€".into()))]
    );
}

#[test]
fn s8_1_invalid_utf8_fails_fast_in_first_fragment() {
    // The first fragment already holds an impossible sequence: fail before the message ends.
    let mut s = server();
    s.receive(&cframe(1, false, &[b'a', 0xf4, 0x90]), t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1007);
}

#[test]
fn s8_1_invalid_utf8_fails_fast_inside_partial_frame() {
    // Only part of a frame has arrived, and it is already invalid.
    let f = cframe(
        1,
        true,
        &[b'o', b'k', 0xff, b'x', b'x', b'x', b'x', b'x', b'x'],
    );
    let mut s = server();
    s.receive(&f[..f.len() - 5], t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1007);
}

#[test]
fn s8_1_incomplete_code_point_at_message_end_fails_1007() {
    assert_fails_with(&cframe(1, true, &[0xe2, 0x82]), 1007);
}

#[test]
fn binary_messages_are_not_utf8_checked() {
    let mut s = server();
    s.receive(&cframe(2, true, &[0xff, 0xfe]), t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Binary(vec![0xff, 0xfe]))]
    );
}

// ----- limits -----

#[test]
fn frame_over_limit_fails_1009_from_header_alone() {
    let mut cfg = Config::default();
    cfg.max_frame_size = 100;
    let mut s = server_with(cfg);
    // Only the header of a 101-byte frame: the limit is enforced before any payload arrives.
    let f = cframe(2, true, &[0; 101]);
    s.receive(&f[..8], t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1009);
}

/// The header of a masked binary frame declaring a 64-bit payload length, with no payload.
fn header64(len: u64) -> Vec<u8> {
    let mut h = vec![0x82, 0xff];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[1, 2, 3, 4]);
    h
}

#[test]
fn huge_declared_length_does_not_allocate() {
    let mut s = server();
    s.receive(&header64(1 << 62), t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1009);
    assert!(s.buffer_capacity() < 1024);
}

#[test]
fn message_over_limit_across_fragments_fails_1009() {
    let mut cfg = Config::default();
    cfg.max_message_size = 10;
    let mut s = server_with(cfg);
    let mut input = cframe(2, false, &[0; 6]);
    input.extend(cframe(0, true, &[0; 5]));
    s.receive(&input, t0());
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1009);
}

#[test]
fn message_at_limit_is_accepted() {
    let mut cfg = Config::default();
    cfg.max_message_size = 10;
    let mut s = server_with(cfg);
    let mut input = cframe(2, false, &[0; 6]);
    input.extend(cframe(0, true, &[0; 4]));
    s.receive(&input, t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Binary(vec![0; 10]))]
    );
}

#[test]
fn backpressure_drop_policy_drops_data_not_control() {
    let mut cfg = Config::default();
    cfg.max_buffered_output = 100;
    cfg.backpressure = Backpressure::DropMessage;
    let mut s = server_with(cfg);
    s.send_binary(&[0; 80]).unwrap();
    assert_eq!(s.send_binary(&[0; 80]), Err(Error::BufferFull));
    s.ping(b"still").unwrap();
    assert!(s.is_open());
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].0, OpCode::Ping);
}

#[test]
fn backpressure_close_policy_closes_with_1008() {
    let mut cfg = Config::default();
    cfg.max_buffered_output = 100;
    cfg.backpressure = Backpressure::Close;
    let mut s = server_with(cfg);
    s.send_binary(&[0; 80]).unwrap();
    assert_eq!(s.send_binary(&[0; 80]), Err(Error::BufferFull));
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(
        (c.code, c.error.clone()),
        (1008, Some(ConnectionError::OutputOverflow))
    );
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(frames.last().unwrap().0, OpCode::Close);
}

#[test]
fn output_bound_closes_even_if_peer_never_reads() {
    let mut cfg = Config::default();
    cfg.max_buffered_output = 100;
    let mut s = server_with(cfg);
    s.send_binary(&[0; 80]).unwrap();
    let _ = s.send_binary(&[0; 80]);
    assert!(
        !s.should_close_transport(),
        "waits to flush the close frame"
    );
    let d = s.poll_timeout().unwrap();
    s.handle_timeout(d);
    assert!(s.should_close_transport(), "but not forever");
}

#[test]
fn shared_frames_are_queued_without_copy_and_refused_for_clients() {
    let f = SharedFrame::text("hi all");
    let mut s = server();
    s.send_shared(&f).unwrap();
    assert_eq!(drain_output(&mut s), f.as_bytes());
    assert_eq!(client().send_shared(&f), Err(Error::SharedFrameFromClient));
}

// ----- timers -----

#[test]
fn keepalive_pings_when_idle_and_times_out_without_answer() {
    let mut cfg = Config::default();
    cfg.keepalive_interval = Some(Duration::from_secs(10));
    cfg.keepalive_timeout = Duration::from_secs(5);
    let mut s = server_with(cfg);
    assert_eq!(s.poll_timeout(), Some(t0() + Duration::from_secs(10)));
    // Traffic pushes the ping back.
    s.receive(&cframe(1, true, b"x"), t0() + Duration::from_secs(4));
    events(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0() + Duration::from_secs(14)));
    s.handle_timeout(t0() + Duration::from_secs(14));
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(frames[0].0, OpCode::Ping);
    assert_eq!(s.poll_timeout(), Some(t0() + Duration::from_secs(19)));
    s.handle_timeout(t0() + Duration::from_secs(19));
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(c.error, Some(ConnectionError::KeepaliveTimeout));
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(
        frames.last().map(|f| (f.0, f.2[..2].to_vec())),
        Some((OpCode::Close, 1011u16.to_be_bytes().to_vec()))
    );
    assert!(s.should_close_transport());
}

#[test]
fn keepalive_answered_by_pong_keeps_connection() {
    let mut cfg = Config::default();
    cfg.keepalive_interval = Some(Duration::from_secs(10));
    let mut s = server_with(cfg);
    s.handle_timeout(t0() + Duration::from_secs(10));
    let ping = decode_all(&drain_output(&mut s)).remove(0);
    s.receive(&cframe(10, true, &ping.2), t0() + Duration::from_secs(11));
    assert_eq!(events(&mut s), vec![Event::Pong(ping.2)]);
    assert!(s.is_open());
    assert_eq!(s.poll_timeout(), Some(t0() + Duration::from_secs(21)));
}

// ----- properties -----

fn arb_client_stream() -> impl Strategy<Value = Vec<u8>> {
    let msg = prop_oneof![
        ("[a-zé€😀]{0,40}", any::<bool>()).prop_map(|(s, frag)| {
            if frag && s.len() > 1 {
                let b = s.as_bytes();
                let mut v = cframe(1, false, &b[..1]);
                v.extend(cframe(9, true, b"pp"));
                v.extend(cframe(0, true, &b[1..]));
                v
            } else {
                cframe(1, true, s.as_bytes())
            }
        }),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| cframe(2, true, &b)),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|b| cframe(9, true, &b)),
        // Text that is mostly invalid UTF-8: the whole-frame path and the incremental one must
        // fail alike.
        proptest::collection::vec(any::<u8>(), 1..12).prop_map(|b| cframe(1, true, &b)),
    ];
    proptest::collection::vec(msg, 0..8).prop_map(|v| v.concat())
}

fn run_split(input: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<u8>) {
    let mut s = server();
    let mut start = 0;
    for &c in cuts {
        let c = c.clamp(start, input.len());
        s.receive(&input[start..c], t0());
        start = c;
    }
    s.receive(&input[start..], t0());
    let evs = events(&mut s);
    (evs, drain_output(&mut s))
}

proptest! {
    #[test]
    fn any_split_gives_same_events_and_output(input in arb_client_stream(),
                                              cuts in proptest::collection::vec(0usize..4000, 0..10),
                                              garbage in proptest::collection::vec(any::<u8>(), 0..20)) {
        let mut input = input;
        input.extend(garbage);
        let mut cuts = cuts;
        cuts.sort_unstable();
        let whole = run_split(&input, &[]);
        let split = run_split(&input, &cuts);
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&whole, &run_split(&input, &bytewise));
    }

    #[test]
    fn messages_round_trip_between_roles(msgs in proptest::collection::vec(
            prop_oneof!["\\PC{0,50}".prop_map(Message::Text),
                        proptest::collection::vec(any::<u8>(), 0..70_000).prop_map(Message::Binary)], 0..6),
            frame_size in 1usize..100_000) {
        let mut cfg = Config::default();
        cfg.outgoing_frame_size = frame_size;
        let mut c = Connection::from_upgraded(Role::Client, cfg.clone(), None, [3; 32], t0());
        let mut s = Connection::from_upgraded(Role::Server, cfg, None, [0; 32], t0());
        for m in &msgs {
            c.send(m).unwrap();
            s.send(m).unwrap();
        }
        let c_out = drain_output(&mut c);
        let s_out = drain_output(&mut s);
        s.receive(&c_out, t0());
        c.receive(&s_out, t0());
        let expect: Vec<Event> = msgs.iter().cloned().map(Event::Message).collect();
        prop_assert_eq!(events(&mut s), expect.clone());
        prop_assert_eq!(events(&mut c), expect);
    }
}

// ----- §4: the opening handshake, through a real client/server pair -----

/// Moves bytes both ways until neither side has output.
fn pump(c: &mut Connection, s: &mut Connection, now: Instant) {
    for _ in 0..16 {
        let a = drain_output(c);
        let b = drain_output(s);
        if a.is_empty() && b.is_empty() {
            return;
        }
        if !a.is_empty() {
            s.receive(&a, now);
        }
        if !b.is_empty() {
            c.receive(&b, now);
        }
    }
}

fn pair_with(protocols: &[&str]) -> (Connection, Connection) {
    let mut req = ClientRequest::new("example.com", "/chat");
    req.protocols = protocols.iter().map(|p| p.to_string()).collect();
    let c = Connection::client(Config::default(), req, [9; 32], t0());
    let s = Connection::server(Config::default(), t0());
    (c, s)
}

#[test]
fn s4_handshake_completes_and_messages_flow() {
    let (mut c, mut s) = pair_with(&["chat", "superchat"]);
    pump(&mut c, &mut s, t0());
    let Some(Event::Request(req)) = s.poll_event() else {
        panic!("expected a request")
    };
    assert_eq!(req.path, "/chat");
    assert_eq!(req.host(), Some("example.com"));
    assert_eq!(
        req.protocols,
        vec!["chat".to_string(), "superchat".to_string()]
    );
    s.accept(Accept {
        protocol: Some("superchat".into()),
        headers: vec![],
    })
    .unwrap();
    pump(&mut c, &mut s, t0());
    let Some(Event::Connected(resp)) = c.poll_event() else {
        panic!("expected Connected")
    };
    assert_eq!(resp.status, 101);
    assert_eq!(c.protocol(), Some("superchat"));
    assert_eq!(s.protocol(), Some("superchat"));
    c.send_text("hi").unwrap();
    pump(&mut c, &mut s, t0());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("hi".into()))]
    );
    c.close(CloseCode::NORMAL, "done").unwrap();
    pump(&mut c, &mut s, t0());
    assert_eq!(closed_event(&events(&mut s)).by, ClosedBy::Remote);
    let evs = events(&mut c);
    let closed = closed_event(&evs);
    assert_eq!(
        (closed.by, closed.code, closed.clean),
        (ClosedBy::Local, 1000, true)
    );
    assert!(s.should_close_transport());
}

#[test]
fn s4_2_2_server_may_not_select_an_unoffered_protocol() {
    let (mut c, mut s) = pair_with(&["a"]);
    pump(&mut c, &mut s, t0());
    events(&mut s);
    assert_eq!(
        s.accept(Accept {
            protocol: Some("b".into()),
            headers: vec![]
        }),
        Err(Error::UnofferedProtocol)
    );
    assert!(s.accept(Accept::default()).is_ok());
}

#[test]
fn s4_2_1_frames_behind_the_request_are_kept() {
    let (mut c, mut s) = pair_with(&[]);
    let mut bytes = drain_output(&mut c);
    bytes.extend(cframe(1, true, b"early"));
    s.receive(&bytes, t0());
    assert!(matches!(s.poll_event(), Some(Event::Request(_))));
    s.accept(Accept::default()).unwrap();
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("early".into()))]
    );
}

#[test]
fn s4_1_frames_behind_the_101_are_kept() {
    let (mut c, mut s) = pair_with(&[]);
    pump(&mut c, &mut s, t0());
    events(&mut s);
    s.accept(Accept::default()).unwrap();
    s.send_text("welcome").unwrap();
    let bytes = drain_output(&mut s);
    c.receive(&bytes, t0());
    let evs = events(&mut c);
    assert!(matches!(evs[0], Event::Connected(_)));
    assert_eq!(evs[1], Event::Message(Message::Text("welcome".into())));
}

#[test]
fn s4_2_1_bad_version_is_answered_426_and_closed() {
    let mut s = Connection::server(Config::default(), t0());
    s.receive(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        t0(),
    );
    let out = String::from_utf8(drain_output(&mut s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 426"), "{out}");
    assert!(out.contains("Sec-WebSocket-Version: 13"));
    let evs = events(&mut s);
    assert!(matches!(
        closed_event(&evs).error,
        Some(ConnectionError::Handshake(
            HandshakeError::UnsupportedVersion
        ))
    ));
    assert!(s.should_close_transport());
}

#[test]
fn s4_2_1_oversized_head_is_431() {
    let mut s = Connection::server(Config::default(), t0());
    let mut req = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 20_000));
    s.receive(&req, t0());
    let out = String::from_utf8(drain_output(&mut s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[test]
fn plain_http_request_is_reported_and_answered() {
    let mut s = Connection::server(Config::default(), t0());
    s.receive(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", t0());
    let Some(Event::HttpRequest(req)) = s.poll_event() else {
        panic!("expected a plain request")
    };
    assert_eq!(req.path, "/index.html");
    s.respond(
        200,
        &[("Content-Type".into(), "text/html".into())],
        b"<p>hi</p>",
    )
    .unwrap();
    let out = String::from_utf8(drain_output(&mut s)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"));
    assert!(out.ends_with("<p>hi</p>"));
    assert!(s.should_close_transport());
}

#[test]
fn handshake_times_out_for_a_slow_client() {
    let mut s = Connection::server(Config::default(), t0());
    s.receive(b"GET / HTTP/1.1\r\n", t0());
    let d = s.poll_timeout().expect("handshake deadline");
    assert_eq!(d, t0() + Duration::from_secs(10));
    s.handle_timeout(d);
    let evs = events(&mut s);
    assert!(matches!(
        closed_event(&evs).error,
        Some(ConnectionError::Handshake(HandshakeError::Timeout))
    ));
    assert!(s.should_close_transport());
}

#[test]
fn s4_1_client_fails_on_bad_accept_key() {
    let req = ClientRequest::new("x", "/");
    let mut c = Connection::client(Config::default(), req, [1; 32], t0());
    drain_output(&mut c);
    c.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        t0(),
    );
    let evs = events(&mut c);
    assert!(matches!(
        closed_event(&evs).error,
        Some(ConnectionError::Handshake(HandshakeError::BadAccept))
    ));
    assert!(c.should_close_transport());
}

#[test]
fn s4_1_client_handshake_keys_are_not_constant() {
    let mut a = Connection::client(
        Config::default(),
        ClientRequest::new("x", "/"),
        [1; 32],
        t0(),
    );
    let mut b = Connection::client(
        Config::default(),
        ClientRequest::new("x", "/"),
        [2; 32],
        t0(),
    );
    assert_ne!(drain_output(&mut a), drain_output(&mut b));
}

#[test]
fn messages_before_accept_are_not_processed_until_accept() {
    let (mut c, mut s) = pair_with(&[]);
    pump(&mut c, &mut s, t0());
    s.receive(&cframe(1, true, b"x"), t0());
    assert!(matches!(s.poll_event(), Some(Event::Request(_))));
    assert!(s.poll_event().is_none());
    assert_eq!(s.send_text("too early"), Err(Error::NotOpen));
}

// ----- ordering: replies come out in the order of the input that caused them -----

/// An echo application: answers each message before looking at the next event.
fn echo_all(s: &mut Connection) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(e) = s.poll_event() {
        if let Event::Message(m) = &e {
            let _ = s.send(m);
        }
        seen.push(e);
    }
    seen
}

#[test]
fn echo_of_a_message_precedes_the_close_reply_read_with_it() {
    let mut s = server();
    let mut input = cframe(1, true, b"last words");
    input.extend(cframe(8, true, &1000u16.to_be_bytes()));
    s.receive(&input, t0());
    echo_all(&mut s);
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(
        frames,
        vec![
            (OpCode::Text, true, b"last words".to_vec()),
            (OpCode::Close, true, 1000u16.to_be_bytes().to_vec())
        ]
    );
}

#[test]
fn echo_of_a_message_precedes_the_error_close_of_a_later_frame() {
    let mut s = server();
    let mut input = cframe(1, true, b"fine");
    input.extend(frame(1, true, 2, b"bad rsv", K));
    s.receive(&input, t0());
    echo_all(&mut s);
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(frames[0], (OpCode::Text, true, b"fine".to_vec()));
    assert_eq!(frames[1].0, OpCode::Close);
    assert_eq!(&frames[1].2[..2], &1002u16.to_be_bytes());
}

#[test]
fn pipelined_messages_are_decoded_one_event_at_a_time() {
    let mut s = server();
    let input: Vec<u8> = (0..100u8).flat_map(|i| cframe(2, true, &[i; 3])).collect();
    s.receive(&input, t0());
    for i in 0..100u8 {
        assert_eq!(
            s.poll_event(),
            Some(Event::Message(Message::Binary(vec![i; 3])))
        );
    }
    assert_eq!(s.poll_event(), None);
    assert_eq!(s.buffer_capacity(), 0, "drained input holds no buffer");
}

/// Whole messages received together are decoded a few at a time (at most AHEAD_MAX queued),
/// yet a local close drops those the application has not taken, as if they had never been
/// decoded: it sees exactly what one-at-a-time decoding would have shown it.
#[test]
fn messages_decoded_ahead_are_bounded_and_dropped_by_a_local_close() {
    let mut input = Vec::new();
    for i in 0..20u8 {
        input.extend(cframe(2, true, &[i; 3]));
    }
    let msg = |i: u8| Event::Message(Message::Binary(vec![i; 3]));
    let mut s = server();
    s.receive(&input, t0());
    assert!(s.events.len() > 1, "decoded ahead");
    assert!(s.events.len() <= AHEAD_MAX, "{} queued", s.events.len());
    for i in 0..20 {
        assert_eq!(s.poll_event(), Some(msg(i)));
        assert!(s.events.len() <= AHEAD_MAX);
    }
    assert_eq!(s.poll_event(), None);

    // One taken, then aborted: the messages decoded with it never reach the application.
    let mut s = server();
    s.receive(&input, t0());
    assert_eq!(s.poll_event(), Some(msg(0)));
    s.abort();
    let evs = events(&mut s);
    assert!(matches!(evs.as_slice(), [Event::Closed(_)]), "{evs:?}");

    // None taken: the first was decoded as ever, and comes before the close.
    let mut s = server();
    s.receive(&input, t0());
    s.abort();
    let evs = events(&mut s);
    assert!(
        matches!(evs.as_slice(), [e, Event::Closed(_)] if *e == msg(0)),
        "{evs:?}"
    );

    // Three taken, then a failure of our own (the output bound): the same.
    let mut cfg = Config::default();
    cfg.max_buffered_output = 16;
    cfg.backpressure = Backpressure::Close;
    let mut s = server_with(cfg);
    s.receive(&input, t0());
    for i in 0..3 {
        assert_eq!(s.poll_event(), Some(msg(i)));
    }
    s.send_binary(&[0; 64]).unwrap();
    assert_eq!(s.send_binary(&[0; 64]), Err(Error::BufferFull));
    let evs = events(&mut s);
    assert!(matches!(evs.as_slice(), [Event::Closed(_)]), "{evs:?}");
}

/// A server holds one `Connection` per client, most of them idle: its inline size is what an
/// idle client costs (buffers, queues and rare state live out of line, and only while used).
#[test]
fn idle_connection_is_small() {
    if cfg!(target_pointer_width = "64") {
        assert!(
            std::mem::size_of::<Connection>() <= 248,
            "{} bytes",
            std::mem::size_of::<Connection>()
        );
        // Moved several times per message on its way to a callback: the rare, large events
        // carry their payload boxed.
        assert!(
            std::mem::size_of::<Event>() <= 40,
            "Event: {} bytes",
            std::mem::size_of::<Event>()
        );
        assert!(
            std::mem::size_of::<crate::server::Notice>() <= 40,
            "Notice: {} bytes",
            std::mem::size_of::<crate::server::Notice>()
        );
    }
    let mut s = server();
    s.receive(&cframe(1, true, b"hello"), t0());
    let Some(Event::Message(m)) = s.poll_event() else {
        panic!("no message")
    };
    s.send(&m).unwrap();
    let n = s.pending_output().len();
    s.consume_output(n);
    assert!(s.poll_event().is_none() && !s.wants_write());
    assert_eq!(s.buffer_capacity(), 0);
}

/// Growing a message buffer by doubling copies it at every step (and ends up to twice too
/// big): once a quarter of a frame has arrived, the rest is reserved in one go.
#[test]
fn a_large_frame_is_received_into_one_exact_allocation() {
    let len = 768 << 10;
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let wire = cframe(2, true, &payload);
    let mut s = server();
    let mut seen = Vec::new();
    for chunk in wire.chunks(64 << 10) {
        s.receive(chunk, t0());
        seen.push(s.buffer_capacity());
    }
    assert!(
        seen[1] < len,
        "committed before a quarter arrived: {seen:?}"
    );
    assert_eq!(seen.iter().max(), Some(&len), "{seen:?}");
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Binary(payload)))
    );
}

#[test]
fn declared_frame_size_is_not_reserved_up_front() {
    let mut s = server();
    s.receive(&header64(15 << 20), t0());
    assert!(s.poll_event().is_none());
    assert!(s.is_open());
    assert!(
        s.buffer_capacity() <= 512 << 10,
        "reserved {}",
        s.buffer_capacity()
    );
}

#[test]
fn ping_flood_from_a_peer_that_never_reads_is_bounded() {
    for policy in [Backpressure::DropMessage, Backpressure::Close] {
        let mut cfg = Config::default();
        cfg.max_buffered_output = 10_000;
        cfg.backpressure = policy;
        let mut s = server_with(cfg);
        let ping = cframe(9, true, &[0; 125]);
        for _ in 0..1000 {
            s.receive(&ping, t0());
            while s.poll_event().is_some() {}
        }
        assert!(
            s.buffered_amount() <= 10_000 + 200,
            "{policy:?}: {}",
            s.buffered_amount()
        );
        assert!(
            s.is_closed(),
            "{policy:?}: pongs are never dropped, so the flooder is closed"
        );
        let frames = decode_all(&drain_output(&mut s));
        assert!(frames
            .iter()
            .all(|f| f.0 == OpCode::Pong || f.0 == OpCode::Close));
        assert_eq!(
            frames.last().map(|f| f.2[..2].to_vec()),
            Some(1008u16.to_be_bytes().to_vec())
        );
    }
}

#[test]
fn abort_during_our_close_reports_our_close_code() {
    let mut s = server();
    s.close(CloseCode::GOING_AWAY, "shutting down").unwrap();
    s.abort();
    let evs = events(&mut s);
    let c = closed_event(&evs);
    assert_eq!(
        (c.code, c.reason.as_str(), c.clean),
        (1001, "shutting down", false)
    );
}

#[test]
fn fragmented_send_respects_max_buffered_output() {
    let mut config = Config::default();
    config.outgoing_frame_size = 1;
    config.max_buffered_output = 100;
    config.backpressure = Backpressure::DropMessage;
    let mut c = Connection::from_upgraded(Role::Server, config, None, [1; 32], t0());
    c.send_binary(b"a").unwrap();
    let r = c.send_binary(&[0u8; 80]);
    assert!(
        r.is_err() || c.buffered_amount() <= 100,
        "buffered {}",
        c.buffered_amount()
    );
}

#[test]
fn send_owned_queues_large_payloads_without_copy_and_in_order() {
    let mut s = server();
    let big = vec![7u8; 100_000];
    s.send_text("before").unwrap();
    s.send_owned(Message::Binary(big.clone())).unwrap();
    s.send_text("after").unwrap();
    let frames = decode_all(&drain_output(&mut s));
    assert_eq!(
        frames,
        vec![
            (OpCode::Text, true, b"before".to_vec()),
            (OpCode::Binary, true, big),
            (OpCode::Text, true, b"after".to_vec())
        ]
    );
}

// ----- direct reads into the message buffer -----

/// Puts a buffer of an earlier large message (initialised memory) where the next large message
/// takes it from; unit tests get a pool per thread.
fn seed_pool(len: usize) {
    crate::reuse::give(vec![0xaa; len]);
}

/// Feeds `wire` to `s` the way an adapter reads a socket that returns at most `step` bytes a
/// read: straight into the message whenever the connection offers, else through a buffer.
/// Returns how many reads went direct.
fn feed_reading(s: &mut Connection, mut wire: &[u8], step: usize) -> usize {
    use std::io::Read;
    let mut direct = 0;
    while !wire.is_empty() {
        let mut socket = &wire[..step.min(wire.len())];
        let n = match s.receive_direct(t0(), |space| socket.read(space)) {
            Some(r) => {
                direct += 1;
                r.unwrap()
            }
            None => {
                let mut buf = vec![0; step];
                let n = socket.read(&mut buf).unwrap();
                s.receive(&buf[..n], t0());
                n
            }
        };
        wire = &wire[n..];
    }
    direct
}

#[test]
fn large_payloads_are_read_straight_into_the_message_with_the_same_events() {
    let big: String = "añ€😀".repeat(120_000); // 1.2 MB of text, multibyte throughout
    let mut wire = cframe(1, true, big.as_bytes());
    wire.extend(cframe(9, true, b"p"));
    wire.extend(cframe(2, false, &[7; 100_000]));
    wire.extend(cframe(0, true, &[8; 1_200_000]));
    wire.extend(cframe(1, true, b"tail"));
    let mut whole = vec![7u8; 100_000];
    whole.extend_from_slice(&[8; 1_200_000]);
    let expected = vec![
        Event::Message(Message::Text(big)),
        Event::Ping(b"p".to_vec()),
        Event::Message(Message::Binary(whole)),
        Event::Message(Message::Text("tail".into())),
    ];
    for step in [1000, 4096, 65_536, 300_000, 4 << 20] {
        seed_pool(2 << 20);
        let mut s = server();
        let mut evs = Vec::new();
        let mut direct = 0;
        // Events are taken as they come, as an adapter does after every read.
        for part in wire.chunks(step) {
            direct += feed_reading(&mut s, part, step);
            evs.extend(events(&mut s));
        }
        assert_eq!(evs, expected, "step {step}");
        // One read of everything leaves nothing to read directly.
        assert_eq!(
            direct > 0,
            step < wire.len(),
            "step {step}: {direct} direct reads"
        );
        assert!(s.is_open());
    }
}

#[test]
fn a_direct_read_lands_half_a_page_from_where_its_bytes_likely_lie() {
    for (payload_len, header_len) in [(60_000u64, 8), (16 << 20, 14)] {
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some([1, 2, 3, 4]),
            payload_len,
        };
        assert_eq!(h.encoded_len(), header_len);
        for end_addr in [
            0x7f00_0000_0010usize,
            0x5555_0000_0abc,
            0x1000,
            4096 * 7 + 4095,
        ] {
            for offset in [0, 1, 65_536, 1_000_003] {
                let lead = super::direct_lead(end_addr, offset, &h);
                assert!((256..4096 + 256).contains(&lead), "{lead}");
                // The byte at payload offset `offset` lay `header_len + offset` into the
                // sender's pages; it lands 2048 bytes further along in its page.
                let distance = (end_addr + lead).wrapping_sub(header_len + offset) % 4096;
                assert_eq!(distance, 2048, "end {end_addr:#x} offset {offset}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Large messages, whole or in fragments, text or binary, read straight into recycled
    /// buffers (some exactly the message's size, so that a read near the end has no room to be
    /// placed further on) with reads of any size, give the events of one plain `receive`.
    #[test]
    fn direct_reads_give_the_events_of_plain_ones(
        messages in proptest::collection::vec(
            (1usize << 20..2_500_000, 1usize..4, any::<bool>(), 0usize..3000), 1..3),
        steps in proptest::collection::vec(1usize..400_000, 1..12),
    ) {
        let mut wire = Vec::new();
        for &(len, parts, text, _) in &messages {
            let payload: Vec<u8> = if text {
                "añ€😀xyz".bytes().cycle().take(len).collect()
            } else {
                (0..len).map(|i| (i * 31 % 251) as u8).collect()
            };
            let cut = len / parts;
            for part in 0..parts {
                let end = if part + 1 == parts { len } else { (part + 1) * cut };
                let op = if part > 0 { 0 } else if text { 1 } else { 2 };
                wire.extend(cframe(op, part + 1 == parts, &payload[part * cut..end]));
            }
        }
        let mut plain = server();
        plain.receive(&wire, t0());
        let expected = events(&mut plain);
        for &(len, _, _, extra) in messages.iter().rev() {
            seed_pool(len + extra);
        }
        let mut s = server();
        let mut evs = Vec::new();
        let mut rest = &wire[..];
        for step in steps.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*step).min(rest.len());
            feed_reading(&mut s, &rest[..n], n);
            evs.extend(events(&mut s));
            rest = &rest[n..];
        }
        prop_assert_eq!(evs, expected);
    }
}

#[test]
fn without_reusable_space_nothing_is_read_directly() {
    let wire = cframe(2, true, &[3; 1_500_000]);
    let mut s = server();
    assert_eq!(feed_reading(&mut s, &wire, 100_000), 0);
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Binary(vec![3; 1_500_000])))
    );
}

#[test]
fn invalid_utf8_read_directly_fails_1007() {
    let mut payload = "x".repeat(1_500_000).into_bytes();
    payload[1_400_000] = 0xff;
    let wire = cframe(1, true, &payload);
    seed_pool(2 << 20);
    let mut s = server();
    let direct = feed_reading(&mut s, &wire, 70_000);
    assert!(direct > 0);
    let evs = events(&mut s);
    assert_eq!(closed_event(&evs).code, 1007, "{evs:?}");
}

#[test]
fn no_direct_read_while_other_input_waits() {
    seed_pool(2 << 20);
    let mut s = server();
    assert!(s.receive_direct(t0(), |_| unreachable!()).is_none(), "idle");
    // A large frame is under way, but a message is waiting to be polled.
    let mut wire = cframe(2, true, b"first");
    let big = cframe(2, true, &[1; 1_300_000]);
    wire.extend_from_slice(&big[..1000]);
    s.receive(&wire, t0());
    assert!(s.receive_direct(t0(), |_| unreachable!()).is_none());
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Binary(b"first".to_vec())))
    );
    assert!(s.poll_event().is_none());
    // Now the rest of the big frame may go straight in; a would-block read takes nothing.
    let r = s.receive_direct(t0(), |_| Err(std::io::ErrorKind::WouldBlock.into()));
    assert_eq!(
        r.unwrap().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    // All of it direct, 256 KiB a read at most (unmasked while still in cache).
    assert_eq!(
        feed_reading(&mut s, &big[1000..], 4 << 20),
        (big.len() - 1000).div_ceil(256 << 10),
    );
    assert_eq!(
        s.poll_event(),
        Some(Event::Message(Message::Binary(vec![1; 1_300_000])))
    );
}

#[test]
fn a_small_message_echoed_gives_its_buffer_to_the_next_message() {
    let mut s = server();
    s.receive(&cframe(1, true, b"first"), t0());
    let Some(Event::Message(first)) = s.poll_event() else {
        panic!("a message")
    };
    let buffer = first.as_bytes().as_ptr();
    s.send_owned(first).unwrap();
    s.receive(&cframe(2, true, b"second"), t0());
    let Some(Event::Message(second)) = s.poll_event() else {
        panic!("a message")
    };
    assert_eq!(second, Message::Binary(b"second".to_vec()));
    assert_eq!(
        second.as_bytes().as_ptr(),
        buffer,
        "the echoed message's buffer was reused"
    );
    assert_eq!(
        drain_output(&mut s),
        [&[0x81, 5][..], b"first"].concat(),
        "the echo was copied out before its buffer was reused"
    );
}

/// Feeds `input` as an adapter reading with [`Connection::receive_predicted`] would: a planned
/// read whenever it applies, a plain one of up to 40,000 bytes otherwise, each read bringing at
/// most the next of `limits` bytes, events drained after every read. Returns the events, the
/// output, and how many reads were planned.
fn run_predicted(input: &[u8], limits: &[usize]) -> (Vec<Event>, Vec<u8>, usize) {
    let mut s = server();
    let (mut pos, mut reads, mut planned) = (0, 0, 0);
    let mut evs = Vec::new();
    while pos < input.len() {
        let limit = limits.get(reads).copied().unwrap_or(usize::MAX).max(1);
        reads += 1;
        let src = &input[pos..];
        let r = s.receive_predicted(t0(), |buf| {
            let k = buf.len().min(src.len()).min(limit);
            buf[..k].copy_from_slice(&src[..k]);
            Ok(k)
        });
        match r {
            Some(r) => {
                pos += r.unwrap();
                planned += 1;
            }
            None => {
                let n = src.len().min(limit).min(40_000);
                s.receive(&src[..n], t0());
                pos += n;
            }
        }
        evs.extend(events(&mut s));
    }
    (evs, drain_output(&mut s), planned)
}

/// Writes of a peer: mostly runs of messages of one mid size.
fn arb_same_size_writes() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let msg = prop_oneof![
        // Runs of one mid size, so that each message predicts the next.
        4 => (prop_oneof![Just(4096usize), Just(5000), Just(16384)], any::<u8>(), any::<bool>())
            .prop_map(|(n, b, text)| if text {
                cframe(1, true, &vec![b'a' + b % 26; n])
            } else {
                cframe(2, true, &vec![b; n])
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| cframe(9, true, &b)),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| cframe(2, true, &b)),
        // Text that is not UTF-8, and a fragmented message.
        1 => Just([cframe(1, true, &[b'x'; 4999]), vec![0xff]].concat()),
        1 => Just([cframe(2, false, &[1; 5000]), cframe(0, true, &[2; 5000])].concat()),
    ];
    proptest::collection::vec(msg, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn planned_reads_give_the_same_events_and_output(writes in arb_same_size_writes(),
            limits in proptest::collection::vec(1usize..40_000, 0..20)) {
        let input = writes.concat();
        let whole = run_split(&input, &[]);
        // Reads of any size: mostly the prediction misses or the frame is cut.
        let (evs, out, _) = run_predicted(&input, &limits);
        prop_assert_eq!(&whole, &(evs.clone(), out.clone()));
        // A read per write, as a peer with one message in flight: mostly hits.
        let per_write: Vec<usize> = writes.iter().map(Vec::len).collect();
        let (evs, out, _) = run_predicted(&input, &per_write);
        prop_assert_eq!(&whole, &(evs, out));
        // Two writes per read: a hit with the next frame behind it.
        let per_two: Vec<usize> = per_write.chunks(2).map(|c| c.iter().sum()).collect();
        let (evs, out, _) = run_predicted(&input, &per_two);
        prop_assert_eq!(&whole, &(evs, out));
    }
}

#[test]
fn a_run_of_same_size_messages_is_read_in_place() {
    let input: Vec<u8> = (0..6u8)
        .flat_map(|i| cframe(2, true, &[i; 16384]))
        .collect();
    // One frame per read, as a peer with one message in flight sends them.
    let (evs, _, planned) = run_predicted(&input, &[16384 + 8; 6]);
    let expect: Vec<Event> = (0..6u8)
        .map(|i| Event::Message(Message::Binary(vec![i; 16384])))
        .collect();
    assert_eq!(evs, expect);
    // The first read is plain (nothing predicted yet); its message predicts the rest.
    assert_eq!(planned, 5);
    let mut s = server();
    assert!(
        s.receive_predicted(t0(), |_| unreachable!()).is_none(),
        "no prediction before any message"
    );
}

#[test]
fn invalid_utf8_read_in_place_is_closed_with_1007() {
    let mut input = cframe(1, true, &[b'a'; 8000]);
    let mut bad = vec![b'a'; 8000];
    bad[4000] = 0xc3;
    input.extend(cframe(1, true, &bad));
    let (evs, out, planned) = run_predicted(&input, &[8000 + 8]);
    assert_eq!(planned, 1);
    assert!(
        matches!(&evs[..], [Event::Message(_), Event::Closed(c)] if c.code == 1007),
        "{evs:?}"
    );
    assert_eq!((out[0], &out[2..4]), (0x88, &[0x03, 0xef][..]), "{out:?}");
}

// ----- messages lent in place (`receive_in_place`) -----

/// An application that echoes every message, fed `input` in the chunks `cuts` make, taking
/// whole small messages in place first (as the adapters do) when `in_place`. Returns what it
/// saw, the output, and how many messages it took in place.
fn run_echo(input: &[u8], cuts: &[usize], in_place: bool) -> (Vec<Event>, Vec<u8>, usize) {
    fn echo(s: &mut Connection, m: Message, seen: &mut Vec<Event>) {
        let _ = s.send(&m);
        seen.push(Event::Message(m));
    }
    let mut s = server();
    let (mut seen, mut lent) = (Vec::new(), 0);
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    bounds.push(input.len());
    let mut start = 0;
    for end in bounds {
        let end = end.max(start);
        let mut chunk = input[start..end].to_vec();
        start = end;
        let mut pos = 0;
        while let Some((m, used)) = in_place
            .then(|| s.receive_in_place(&mut chunk[pos..], t0()))
            .flatten()
        {
            let m = m.to_message();
            pos += used;
            lent += 1;
            echo(&mut s, m, &mut seen);
        }
        s.receive(&chunk[pos..], t0());
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::Message(m) => echo(&mut s, m, &mut seen),
                other => seen.push(other),
            }
        }
    }
    let out = drain_output(&mut s);
    (seen, out, lent)
}

proptest! {
    #[test]
    fn messages_taken_in_place_give_the_same_callbacks_and_output(
            input in arb_client_stream(),
            close in any::<bool>(),
            after in arb_client_stream(),
            cuts in proptest::collection::vec(0usize..4000, 0..10),
            garbage in proptest::collection::vec(any::<u8>(), 0..20)) {
        let mut input = input;
        if close {
            input.extend(cframe(8, true, &[0x03, 0xe8]));
        }
        input.extend(after);
        input.extend(garbage);
        let mut cuts = cuts;
        cuts.sort_unstable();
        let (evs, out, _) = run_echo(&input, &[], false);
        let (evs_lent, out_lent, _) = run_echo(&input, &cuts, true);
        prop_assert_eq!(&evs, &evs_lent);
        prop_assert_eq!(&out, &out_lent);
        let bytewise: Vec<usize> = (0..input.len()).collect();
        let (evs_lent, out_lent, _) = run_echo(&input, &bytewise, true);
        prop_assert_eq!(&evs, &evs_lent);
        prop_assert_eq!(&out, &out_lent);
    }
}

#[test]
fn whole_small_messages_are_lent_from_the_input_unmasked_in_place() {
    let mut input = cframe(2, true, b"one");
    input.extend(cframe(1, true, "twö".as_bytes()));
    input.extend(cframe(2, true, b""));
    input.extend(cframe(9, true, b"p"));
    input.extend(cframe(2, true, b"after the ping"));
    let mut s = server();
    let range = input.as_ptr_range();
    let mut pos = 0;
    let mut lent = Vec::new();
    while let Some((m, used)) = s.receive_in_place(&mut input[pos..], t0()) {
        // The payload is the input itself, not a copy.
        assert!(m.as_bytes().is_empty() || range.contains(&m.as_bytes().as_ptr()));
        lent.push(m.to_message());
        pos += used;
    }
    assert_eq!(
        lent,
        [
            Message::Binary(b"one".to_vec()),
            Message::Text("twö".into()),
            Message::Binary(Vec::new())
        ]
    );
    assert_eq!(pos, 9 + 10 + 6, "stops at the ping");
    assert_eq!(&input[6..9], b"one", "unmasked where it lies");
    s.receive(&input[pos..], t0());
    assert_eq!(
        events(&mut s),
        [
            Event::Ping(b"p".to_vec()),
            Event::Message(Message::Binary(b"after the ping".to_vec()))
        ]
    );
    assert_eq!(
        decode_all(&drain_output(&mut s)),
        [(OpCode::Pong, true, b"p".to_vec())]
    );
}

#[test]
fn nothing_is_lent_while_earlier_input_waits_or_a_frame_needs_the_general_path() {
    let large = vec![7u8; ZERO_COPY_MIN];
    let cases: [(&str, Vec<u8>); 5] = [
        ("fragment", cframe(2, false, b"a")),
        ("compressed bit", frame(2, true, 4, b"a", K)),
        ("unmasked from a client", frame(2, true, 0, b"a", None)),
        ("large", cframe(2, true, &large)),
        ("partial", cframe(2, true, b"abc")[..7].to_vec()),
    ];
    for (what, mut input) in cases {
        let copy = input.clone();
        assert!(
            server().receive_in_place(&mut input, t0()).is_none(),
            "{what}"
        );
        assert_eq!(input, copy, "{what}: left as it was");
    }
    // Input that waits in the connection comes first: nothing may overtake it.
    let mut s = server();
    let first = cframe(2, true, b"first");
    s.receive(&first[..4], t0());
    let mut next = cframe(2, true, b"next");
    assert!(s.receive_in_place(&mut next, t0()).is_none());
    // So does an event not yet polled.
    let mut s = server();
    s.receive(&cframe(9, true, b""), t0());
    assert!(s.receive_in_place(&mut next, t0()).is_none());
    // Over the message limit: the general path fails it with 1009.
    let mut cfg = Config::default();
    cfg.max_message_size = 2;
    let mut s = server_with(cfg);
    let mut big = cframe(2, true, b"abc");
    assert!(s.receive_in_place(&mut big, t0()).is_none());
    s.receive(&big, t0());
    assert!(matches!(&events(&mut s)[..], [Event::Closed(c)] if c.code == 1009));
}

#[test]
fn invalid_utf8_lent_in_place_fails_with_1007_and_nothing_after_it_is_decoded() {
    let mut input = cframe(1, true, b"ok");
    input.extend(cframe(1, true, &[b'a', 0xff]));
    input.extend(cframe(1, true, b"never"));
    let mut s = server();
    let (m, used) = s.receive_in_place(&mut input, t0()).unwrap();
    assert_eq!(m, MessageRef::Text("ok"));
    assert!(s.receive_in_place(&mut input[used..], t0()).is_none());
    s.receive(&input[used..], t0());
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(c)] if c.code == 1007),
        "only the close"
    );
    let out = decode_all(&drain_output(&mut s));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, OpCode::Close);
    assert_eq!(&out[0].2[..2], &[0x03, 0xef]);
}

/// A server that has taken one 16 KiB binary message, so that it predicts another.
fn predicting_server() -> Connection {
    let mut s = server();
    s.receive(&cframe(2, true, &[7; 16384]), t0());
    assert_eq!(events(&mut s).len(), 1);
    s
}

/// Reads `src` into a planned read's buffer, as a socket would.
fn fill(plan: &mut PredictedRead, src: &[u8]) -> usize {
    let buf = plan.buffer();
    let n = buf.len().min(src.len());
    buf[..n].copy_from_slice(&src[..n]);
    n
}

#[test]
fn a_planned_read_takes_the_predicted_message() {
    let mut s = predicting_server();
    let mut plan = s.plan_predicted().expect("predicted");
    // The message, then the start of the next frame.
    let input = [cframe(2, true, &[9; 16384]), vec![0x82, 0x80]].concat();
    let n = fill(&mut plan, &input);
    assert_eq!(n, input.len());
    s.finish_predicted(plan, &Ok(n), t0());
    assert_eq!(
        events(&mut s),
        [Event::Message(Message::Binary(vec![9; 16384]))]
    );
    // The two bytes after it wait for the rest of their frame.
    s.receive(&[0, 0, 0, 0], t0());
    assert_eq!(events(&mut s), [Event::Message(Message::Binary(vec![]))]);
}

#[test]
fn a_planned_read_asks_for_the_predicted_frame_and_a_little_more() {
    let mut s = predicting_server();
    // A recycled buffer longer than the read needs: the read is still planned to its size, or a
    // read that comes back less than full would not show that the socket was emptied.
    crate::reuse::give_message(vec![1; 30_000]);
    let mut plan = s.plan_predicted().expect("predicted");
    let asked = plan.buffer().len();
    assert!(asked > 16384 + 8 && asked <= 16384 + 8 + 64, "{asked}");
    // The peer sent more: the message and a whole other one behind it.
    let input = [cframe(2, true, &[9; 16384]), cframe(2, true, &[8; 16384])].concat();
    let n = fill(&mut plan, &input);
    assert_eq!(n, asked);
    s.finish_predicted(plan, &Ok(n), t0());
    s.receive(&input[n..], t0());
    assert_eq!(
        events(&mut s),
        [
            Event::Message(Message::Binary(vec![9; 16384])),
            Event::Message(Message::Binary(vec![8; 16384]))
        ]
    );
}

#[test]
fn a_planned_read_that_brought_nothing_changes_nothing() {
    for result in [
        Ok(0),
        Err(std::io::ErrorKind::WouldBlock.into()),
        Err(std::io::ErrorKind::ConnectionReset.into()),
    ] {
        let mut s = predicting_server();
        let plan = s.plan_predicted().expect("predicted");
        s.finish_predicted(plan, &result, t0());
        assert!(events(&mut s).is_empty());
        assert!(!s.is_closed(), "the caller, not the read, ends the input");
        assert!(s.plan_predicted().is_some(), "still predicted");
    }
}

/// The connection may change while a planned read runs without it (a blocking read, the
/// connection behind a lock another thread took to close it): what the read brought must then
/// be taken in exactly as `receive` would take it in that state.
#[test]
fn a_connection_changed_during_a_planned_read_takes_the_bytes_as_receive_would() {
    let input = [cframe(2, true, &[9; 16384]), cframe(9, true, b"p")].concat();
    let changes: [fn(&mut Connection); 2] = [
        |c| c.close(CloseCode::NORMAL, "bye").unwrap(),
        |c| c.abort(),
    ];
    for change in changes {
        let mut reference = predicting_server();
        change(&mut reference);
        reference.receive(&input, t0());
        let mut s = predicting_server();
        let mut plan = s.plan_predicted().expect("predicted");
        let n = fill(&mut plan, &input);
        assert_eq!(n, input.len(), "the read brought all of it");
        change(&mut s);
        s.finish_predicted(plan, &Ok(n), t0());
        assert_eq!(events(&mut s), events(&mut reference));
        assert_eq!(drain_output(&mut s), drain_output(&mut reference));
        assert_eq!(s.is_closed(), reference.is_closed());
    }
}
