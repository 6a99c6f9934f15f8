//! Real peers against our echo server (compression on, 64 MiB limits), for each adapter:
//! Python `websockets` and `websocket-client`, Node `ws`, and tungstenite. Instantiated by
//! [`crate::interop_tests!`].

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message as TMessage;
use ws_proto::server::ServerConfig;

use crate::harness::{tungstenite_connect, tungstenite_read, Ev, Probe, TestServer};
use crate::peers::{self, PeerRun};
use crate::Adapter;

/// The echo server every peer talks to.
fn echo_server<A: Adapter>() -> TestServer<A> {
    let config = ServerConfig::new()
        .compression(true)
        .max_incoming_frame_size(64 << 20)
        .max_message_size(64 << 20);
    TestServer::start(config, Probe::echo())
}

/// What the server reported, for failure messages.
fn server_story<A: Adapter>(s: &TestServer<A>) -> String {
    s.events.drain();
    let interesting: Vec<String> = s
        .events
        .history()
        .into_iter()
        .filter(|e| matches!(e, Ev::Error(..) | Ev::Left(..) | Ev::NewClient(..)))
        .map(|e| format!("{e:?}"))
        .collect();
    format!(
        "server ({}) callbacks:\n  {}",
        A::NAME,
        interesting.join("\n  ")
    )
}

fn assert_peer_ok<A: Adapter>(s: &TestServer<A>, run: &PeerRun) {
    assert!(
        run.ok(),
        "peer failed against {}:\n{}\n{}",
        A::NAME,
        run.report(),
        server_story(s)
    );
}

/// Python websockets, no compression offered.
pub fn python_websockets_echo<A: Adapter>() {
    let Some(py) = peers::python() else { return };
    let s = echo_server::<A>();
    let run = peers::py_client(&py, &s.url("/echo"), &[]);
    assert_peer_ok(&s, &run);
}

/// Python websockets with permessage-deflate, which the server must accept.
pub fn python_websockets_echo_with_deflate<A: Adapter>() {
    let Some(py) = peers::python() else { return };
    let s = echo_server::<A>();
    let run = peers::py_client(&py, &s.url("/echo"), &["--deflate"]);
    assert_peer_ok(&s, &run);
    assert!(run.step_ok("deflate-negotiated"), "{}", run.report());
}

/// Python websocket-client (no extensions).
pub fn python_websocket_client_echo<A: Adapter>() {
    let Some(py) = peers::python() else { return };
    let s = echo_server::<A>();
    let run = peers::py_client(&py, &s.url("/echo"), &["--websocket-client"]);
    assert_peer_ok(&s, &run);
}

/// Node ws without perMessageDeflate.
pub fn node_ws_echo<A: Adapter>() {
    let Some(dir) = peers::node_dir() else { return };
    let s = echo_server::<A>();
    let run = peers::node_client(&dir, &s.url("/echo"), &[]);
    assert_peer_ok(&s, &run);
}

/// Node ws with perMessageDeflate (every message compressed), which the server must accept.
pub fn node_ws_echo_with_deflate<A: Adapter>() {
    let Some(dir) = peers::node_dir() else { return };
    let s = echo_server::<A>();
    let run = peers::node_client(&dir, &s.url("/echo"), &["--deflate"]);
    assert_peer_ok(&s, &run);
    assert!(run.step_ok("deflate-negotiated"), "{}", run.report());
}

/// Node ws asking for no context takeover on both sides (must be accepted), and for a 10-bit
/// server window (accepted and honoured, or declined).
pub fn node_ws_echo_with_deflate_no_context_takeover_and_window_bits<A: Adapter>() {
    let Some(dir) = peers::node_dir() else { return };
    let s = echo_server::<A>();
    let run = peers::node_client(&dir, &s.url("/echo"), &["--no-context-takeover", "both"]);
    assert_peer_ok(&s, &run);
    assert!(run.step_ok("deflate-negotiated"), "{}", run.report());
    let run = peers::node_client(
        &dir,
        &s.url("/echo"),
        &["--window-bits", "10", "--deflate-optional"],
    );
    assert_peer_ok(&s, &run);
}

/// tungstenite: text, binary, a message in three frames, ping/pong and the close handshake.
pub fn tungstenite_echo_text_binary_and_fragmented<A: Adapter>() {
    let s = echo_server::<A>();
    let mut ws = tungstenite_connect(s.addr, "/echo");
    ws.send(TMessage::text("hello")).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::text("hello"));
    let bin: Vec<u8> = (0..=255).collect();
    ws.send(TMessage::binary(bin.clone())).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::binary(bin));
    let big = "abc".repeat(100_000);
    ws.send(TMessage::text(big.clone())).unwrap();
    assert_eq!(tungstenite_read(&mut ws), TMessage::text(big));
    for (data, opcode, fin) in [
        ("frag", OpCode::Data(Data::Text), false),
        ("mented ", OpCode::Data(Data::Continue), false),
        ("message", OpCode::Data(Data::Continue), true),
    ] {
        ws.write(TMessage::Frame(Frame::message(
            data.as_bytes().to_vec(),
            opcode,
            fin,
        )))
        .unwrap();
    }
    ws.flush().unwrap();
    assert_eq!(
        tungstenite_read(&mut ws),
        TMessage::text("fragmented message")
    );
    ws.send(TMessage::Ping(b"tung".to_vec().into())).unwrap();
    match ws.read().expect("pong") {
        TMessage::Pong(p) => assert_eq!(p.as_ref(), b"tung"),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    loop {
        match ws.read() {
            Ok(TMessage::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
            Ok(TMessage::Close(None)) => panic!("close reply without a code"),
            Ok(other) => panic!("unexpected {other:?} after close"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake failed: {e}"),
        }
    }
}

/// Python websockets against our server with server_max_window_bits = `bits` and every
/// no_context_takeover combination, run concurrently. The server must accept a 15-bit offer; a
/// smaller window may be declined (ws-proto's design allows that) but, if accepted, must be
/// honoured (the client's inflater has only that window).
fn python_deflate_matrix<A: Adapter>(bits: u8) {
    let Some(py) = peers::python() else { return };
    let s = echo_server::<A>();
    let url = s.url("/echo");
    let bits_arg = bits.to_string();
    let runs: Vec<(String, PeerRun)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["none", "server", "client", "both"]
            .into_iter()
            .map(|nct| {
                let (py, url, bits_arg) = (&py, &url, &bits_arg);
                scope.spawn(move || {
                    let mut args = vec![
                        "--window-bits",
                        bits_arg.as_str(),
                        "--no-context-takeover",
                        nct,
                    ];
                    if bits < 15 {
                        args.push("--deflate-optional");
                    }
                    (nct.to_owned(), peers::py_client(py, url, &args))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("peer thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for (nct, run) in &runs {
        let declined = run.step_ok("deflate-declined");
        eprintln!(
            "{} window_bits={bits} no_context_takeover={nct}: {}",
            A::NAME,
            if !run.ok() {
                "FAILED"
            } else if declined {
                "ok (declined)"
            } else {
                "ok (compressed)"
            }
        );
        if !run.ok() || (bits == 15 && !run.step_ok("deflate-negotiated")) {
            failures.push(run.report());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 4 deflate combinations failed with window bits {bits}:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        server_story(&s)
    );
}

/// Deflate matrix, window bits 8.
pub fn python_deflate_matrix_window_bits_8<A: Adapter>() {
    python_deflate_matrix::<A>(8);
}
/// Deflate matrix, window bits 9.
pub fn python_deflate_matrix_window_bits_9<A: Adapter>() {
    python_deflate_matrix::<A>(9);
}
/// Deflate matrix, window bits 10.
pub fn python_deflate_matrix_window_bits_10<A: Adapter>() {
    python_deflate_matrix::<A>(10);
}
/// Deflate matrix, window bits 11.
pub fn python_deflate_matrix_window_bits_11<A: Adapter>() {
    python_deflate_matrix::<A>(11);
}
/// Deflate matrix, window bits 12.
pub fn python_deflate_matrix_window_bits_12<A: Adapter>() {
    python_deflate_matrix::<A>(12);
}
/// Deflate matrix, window bits 13.
pub fn python_deflate_matrix_window_bits_13<A: Adapter>() {
    python_deflate_matrix::<A>(13);
}
/// Deflate matrix, window bits 14.
pub fn python_deflate_matrix_window_bits_14<A: Adapter>() {
    python_deflate_matrix::<A>(14);
}
/// Deflate matrix, window bits 15.
pub fn python_deflate_matrix_window_bits_15<A: Adapter>() {
    python_deflate_matrix::<A>(15);
}
