//! wss: both adapters with a certificate made by rcgen, our client trusting only that
//! certificate. Built with the `tls` feature (scripts/test.sh builds with --all-features).

use std::time::Duration;

use ws_proto::server::ServerConfig;
use ws_proto::{ClientRequest, CloseCode, ClosedBy, Config, Message};
use ws_std::client::{Client, ClientEvent};

use crate::harness::{Probe, TestServer};
use crate::peers::TempDir;
use crate::raw::{upgrade_request, RawClient};
use crate::Adapter;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("rcgen");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

fn recv_message(ws: &mut Client) -> Message {
    loop {
        match ws.recv().expect("recv over wss") {
            ClientEvent::Message(m) => return m,
            ClientEvent::Closed(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// A wss echo server: our client (trusting only the test certificate) exchanges text and a
/// 300 KiB binary message (many TLS records) and closes cleanly; a client trusting another
/// certificate is refused; a plaintext request on the TLS port is never upgraded, and the
/// server goes on serving TLS clients.
pub fn wss_echo_with_generated_certificate<A: Adapter>() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed();
    let (cert_path, key_path) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let s = TestServer::<A>::start(
        ServerConfig::new().tls(&cert_path, &key_path),
        Probe::echo(),
    );
    let url = format!("wss://127.0.0.1:{}/tls", s.addr.port());

    let mut ws = Client::connect_with_ca(
        &url,
        Config::default(),
        ClientRequest::new("", ""),
        cert.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{}: wss connect to {url}: {e}", A::NAME));
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let client = s.events.new_client();
    assert_eq!(client.path, "/tls");
    ws.send_text("over tls").unwrap();
    assert_eq!(recv_message(&mut ws), Message::Text("over tls".into()));
    let big: Vec<u8> = (0..300 << 10).map(|i| (i % 253) as u8).collect();
    ws.send_binary(&big).unwrap();
    assert!(
        recv_message(&mut ws) == Message::Binary(big),
        "300 KiB echo differs"
    );

    // Plaintext on the TLS port: never a 101.
    let mut plain = RawClient::connect(s.addr);
    let _ = plain.try_send_raw(upgrade_request(s.addr, "/", &[]).as_bytes());
    let answer = plain.read_to_eof(Duration::from_secs(10));
    assert!(
        !String::from_utf8_lossy(&answer).contains("101"),
        "plaintext upgraded on the TLS port: {answer:?}"
    );

    // A client that trusts another certificate does not get in.
    let (other, _) = self_signed();
    let refused = Client::connect_with_ca(
        &url,
        Config::default(),
        ClientRequest::new("", ""),
        other.as_bytes(),
    );
    assert!(
        refused.is_err(),
        "connected while trusting another certificate"
    );

    // The first client is still served, and closes cleanly.
    ws.send_text("still here").unwrap();
    assert_eq!(recv_message(&mut ws), Message::Text("still here".into()));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    loop {
        match ws.recv().expect("close over wss") {
            ClientEvent::Closed(c) => {
                assert_eq!(
                    (c.by, c.code, c.clean),
                    (ClosedBy::Local, 1000, true),
                    "{c:?}"
                );
                break;
            }
            ClientEvent::Message(m) => panic!("message after close: {m:?}"),
            _ => {}
        }
    }
    let closed = s.events.left(client.id);
    assert_eq!(
        (closed.by, closed.code, closed.clean),
        (ClosedBy::Remote, 1000, true),
        "{closed:?}"
    );
}
