//! ws-std over real loopback sockets, driven by its own blocking client. Every wait is on an
//! event from a callback or a client, with a timeout, so a failure cannot hang the suite.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ws_proto::{ClientRequest, Config, ConnectionError};
use ws_std::client::{Client, ClientEvent};
use ws_std::{
    Backpressure, Callbacks, ClientId, CloseCode, Closed, ClosedBy, Handle, Message, Server,
    ServerApi, ServerConfig, ServerError,
};

const WAIT: Duration = Duration::from_secs(10);

/// What the callbacks saw.
#[derive(Debug)]
enum Ev {
    New(ClientId, String),
    Left(ClientId, Closed),
    Msg(ClientId, Message),
    Sub(ClientId, String),
    Unsub(ClientId, String),
    Error(Option<ClientId>, ServerError),
}

/// Callbacks that report everything on a channel; `sub:X` / `unsub:X` (un)subscribe the
/// sender, and any other message is echoed.
fn recording() -> (Callbacks, Receiver<Ev>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let send = move |ev: Ev| {
        let _ = tx.lock().unwrap().send(ev);
    };
    let send = std::sync::Arc::new(send);
    let s = send.clone();
    let callbacks = Callbacks::new()
        .on_new_client({
            let s = s.clone();
            move |_, c| s(Ev::New(c.id, c.path.clone()))
        })
        .on_client_left({
            let s = s.clone();
            move |_, c, closed| s(Ev::Left(c.id, closed.clone()))
        })
        .on_message({
            let s = s.clone();
            move |api, c, m| {
                match &m {
                    Message::Text(t) if t.starts_with("sub:") => api.subscribe(c.id, &t[4..]),
                    Message::Text(t) if t.starts_with("unsub:") => api.unsubscribe(c.id, &t[6..]),
                    _ => api.send(c.id, m.clone()),
                }
                s(Ev::Msg(c.id, m));
            }
        })
        .on_subscribed({
            let s = s.clone();
            move |_, c, service| s(Ev::Sub(c.id, service.to_owned()))
        })
        .on_unsubscribed({
            let s = s.clone();
            move |_, c, service| s(Ev::Unsub(c.id, service.to_owned()))
        })
        .on_error(move |_, c, e| send(Ev::Error(c.map(|c| c.id), e.clone())));
    (callbacks, rx)
}

fn start(config: ServerConfig) -> (Handle, String, Receiver<Ev>) {
    let (callbacks, rx) = recording();
    let server = Server::bind(config, callbacks).expect("bind");
    let url = format!("ws://{}/test", server.local_addr());
    let handle = server.run_threaded().expect("run");
    (handle, url, rx)
}

/// The next event matching `pred`, skipping others.
fn expect<T>(rx: &Receiver<Ev>, what: &str, mut pred: impl FnMut(Ev) -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) => {
                if let Some(t) = pred(ev) {
                    return t;
                }
            }
            Err(e) => panic!("waiting for {what}: {e:?}"),
        }
    }
}

/// A client without permessage-deflate, so most tests see frames as sent.
fn plain(url: &str) -> std::io::Result<Client> {
    let mut config = Config::default();
    config.deflate.enabled = false;
    Client::connect_with(url, config, ClientRequest::new("", ""))
}

fn connect(url: &str, rx: &Receiver<Ev>) -> (Client, ClientId) {
    let mut c = plain(url).expect("connect");
    c.set_read_timeout(Some(WAIT)).unwrap();
    let id = expect(rx, "on_new_client", |ev| match ev {
        Ev::New(id, path) => Some((id, path)),
        _ => None,
    });
    assert_eq!(id.1, "/test");
    let id = id.0;
    (c, id)
}

fn recv_message(c: &mut Client) -> Message {
    loop {
        match c.recv().expect("recv") {
            ClientEvent::Message(m) => return m,
            ClientEvent::Closed(closed) => panic!("closed while waiting for a message: {closed:?}"),
            _ => {}
        }
    }
}

fn recv_closed(c: &mut Client) -> Closed {
    loop {
        match c.recv() {
            Ok(ClientEvent::Closed(closed)) => return closed,
            Ok(_) => {}
            Err(e) => panic!("waiting for Closed: {e}"),
        }
    }
}

/// `handle.wait()` with a timeout.
fn wait_stopped(handle: &Handle, within: Duration) {
    let (tx, rx) = mpsc::channel();
    let h = handle.clone();
    std::thread::spawn(move || {
        h.wait();
        let _ = tx.send(());
    });
    rx.recv_timeout(within)
        .expect("server did not stop in time");
    assert!(!handle.is_running());
}

/// Every "left" callback after the server stopped, by client.
fn lefts(rx: &Receiver<Ev>) -> HashMap<ClientId, Vec<Closed>> {
    let mut m: HashMap<ClientId, Vec<Closed>> = HashMap::new();
    while let Ok(ev) = rx.try_recv() {
        if let Ev::Left(id, closed) = ev {
            m.entry(id).or_default().push(closed);
        }
    }
    m
}

#[test]
fn echoes_text_and_binary_and_closes_cleanly() {
    let (handle, url, rx) = start(ServerConfig::new().compression(true));
    let (mut c, id) = connect(&url, &rx);
    c.send_text("héllo").unwrap();
    assert_eq!(recv_message(&mut c), Message::Text("héllo".into()));
    let got = expect(&rx, "on_message", |ev| match ev {
        Ev::Msg(who, m) => Some((who, m)),
        _ => None,
    });
    assert_eq!(got, (id, Message::Text("héllo".into())));
    // Over the per-turn read budget, so the message arrives over several turns.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
    c.send_binary(&big).unwrap();
    assert_eq!(recv_message(&mut c), Message::Binary(big));
    c.ping(b"p").unwrap();
    loop {
        if let ClientEvent::Pong(p) = c.recv().unwrap() {
            assert_eq!(p, b"p");
            break;
        }
    }
    c.close(CloseCode::NORMAL, "bye").unwrap();
    let closed = recv_closed(&mut c);
    assert!(closed.clean, "{closed:?}");
    let left = expect(&rx, "on_client_left", |ev| match ev {
        Ev::Left(who, closed) if who == id => Some(closed),
        _ => None,
    });
    assert_eq!(
        (left.by, left.code, left.reason.as_str()),
        (ClosedBy::Remote, 1000, "bye")
    );
    assert!(matches!(
        c.recv().unwrap_err().kind(),
        std::io::ErrorKind::NotConnected
    ));
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[test]
fn handle_sends_from_another_thread_and_lists_clients() {
    let (handle, url, rx) = start(ServerConfig::new());
    let (mut a, a_id) = connect(&url, &rx);
    let (mut b, b_id) = connect(&url, &rx);

    let clients = handle.clients();
    let ids: Vec<ClientId> = clients.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a_id) && ids.contains(&b_id));
    let ca = clients.iter().find(|c| c.id == a_id).unwrap();
    assert_eq!(ca.addr, a.local_addr().unwrap());
    assert_eq!(ca.path, "/test");

    let h = handle.clone();
    std::thread::spawn(move || {
        h.send_text(a_id, "to a");
        h.send_binary(b_id, b"to b");
    })
    .join()
    .unwrap();
    assert_eq!(recv_message(&mut a), Message::Text("to a".into()));
    assert_eq!(recv_message(&mut b), Message::Binary(b"to b".to_vec()));

    // A server-initiated close from the handle.
    handle.close(b_id, CloseCode::POLICY_VIOLATION, "go away");
    let closed = recv_closed(&mut b);
    assert_eq!((closed.code, closed.reason.as_str()), (1008, "go away"));
    let left = expect(&rx, "left of b", |ev| match ev {
        Ev::Left(id, c) if id == b_id => Some(c),
        _ => None,
    });
    assert_eq!(left.by, ClosedBy::Local);
    assert_eq!(handle.clients().len(), 1);
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[test]
fn closing_a_long_idle_client_still_waits_for_its_close_reply() {
    let close_timeout = Duration::from_millis(100);
    let (handle, url, rx) = start(ServerConfig::new().shutdown_timeout(close_timeout));
    let (mut c, id) = connect(&url, &rx);
    // Idle for longer than the close timeout: the scenario, not a synchronisation.
    std::thread::sleep(close_timeout * 3);
    handle.close(id, CloseCode::NORMAL, "bye");
    let closed = recv_closed(&mut c);
    assert_eq!(
        (closed.code, closed.by),
        (1000, ClosedBy::Remote),
        "{closed:?}"
    );
    let left = expect(&rx, "on_client_left", |ev| match ev {
        Ev::Left(who, closed) if who == id => Some(closed),
        _ => None,
    });
    assert!(left.clean && left.error.is_none(), "{left:?}");
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[test]
fn send_to_all_reaches_every_client() {
    let (handle, url, rx) = start(ServerConfig::new());
    let mut clients: Vec<Client> = (0..3).map(|_| connect(&url, &rx).0).collect();
    handle.send_to_all(Message::Text("everyone".into()));
    for c in &mut clients {
        assert_eq!(recv_message(c), Message::Text("everyone".into()));
    }
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[test]
fn subscribe_publish_unsubscribe() {
    let (handle, url, rx) = start(ServerConfig::new());
    let (mut a, a_id) = connect(&url, &rx);
    let (mut b, b_id) = connect(&url, &rx);
    a.send_text("sub:news").unwrap();
    expect(&rx, "on_subscribed", |ev| match ev {
        Ev::Sub(id, s) if id == a_id && s == "news" => Some(()),
        _ => None,
    });
    handle.publish("news", Message::Text("extra".into()));
    // b is not subscribed: the first thing it gets is what we send it directly afterwards.
    handle.send_text(b_id, "marker");
    assert_eq!(recv_message(&mut a), Message::Text("extra".into()));
    assert_eq!(recv_message(&mut b), Message::Text("marker".into()));

    a.send_text("unsub:news").unwrap();
    expect(&rx, "on_unsubscribed", |ev| match ev {
        Ev::Unsub(id, s) if id == a_id && s == "news" => Some(()),
        _ => None,
    });
    handle.publish("news", Message::Text("nobody".into()));
    handle.send_text(a_id, "marker");
    assert_eq!(recv_message(&mut a), Message::Text("marker".into()));

    // Leaving unsubscribes, with the callback.
    handle.subscribe(b_id, "sport");
    expect(&rx, "on_subscribed", |ev| match ev {
        Ev::Sub(id, s) if id == b_id && s == "sport" => Some(()),
        _ => None,
    });
    drop(b);
    expect(&rx, "on_unsubscribed on leaving", |ev| match ev {
        Ev::Unsub(id, s) if id == b_id && s == "sport" => Some(()),
        _ => None,
    });
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[test]
fn graceful_shutdown_closes_everyone_and_each_leaves_once() {
    let timeout = Duration::from_millis(500);
    let (handle, url, rx) = start(ServerConfig::new().shutdown_timeout(timeout));
    let mut polite = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (c, id) = connect(&url, &rx);
        ids.push(id);
        polite.push(std::thread::spawn(move || {
            let mut c = c;
            recv_closed(&mut c)
        }));
    }
    // This one never reads, so it never answers the close: the timeout ends it.
    let (_silent, silent_id) = connect(&url, &rx);
    ids.push(silent_id);

    let started = Instant::now();
    handle.shutdown_gracefully();
    wait_stopped(&handle, WAIT);
    assert!(started.elapsed() < timeout + Duration::from_secs(3));
    for t in polite {
        let closed = t.join().unwrap();
        assert_eq!(closed.code, 1001, "{closed:?}");
    }
    let lefts = lefts(&rx);
    assert_eq!(lefts.len(), ids.len(), "{lefts:?}");
    for id in &ids {
        assert_eq!(lefts[id].len(), 1, "{id}: {:?}", lefts[id]);
    }
    for id in &ids[..3] {
        assert_eq!(lefts[id][0].code, 1001);
    }
    // Its close timer (an error: no reply) or the shutdown timeout (the abort reports the close
    // we sent), both 500 ms here, whichever came first, ended it; never cleanly.
    let silent = &lefts[&silent_id][0];
    assert!(
        matches!(silent.code, 1001 | 1006) && !silent.clean,
        "{silent:?}"
    );
    assert!(plain(&url).is_err(), "still accepting");
}

#[test]
fn abrupt_shutdown_drops_everyone_and_each_leaves_once() {
    let (handle, url, rx) = start(ServerConfig::new());
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (c, id) = connect(&url, &rx);
        clients.push(c);
        ids.push(id);
    }
    // A socket still in its handshake is dropped too, with no callback.
    let _raw = std::net::TcpStream::connect(handle.local_addr()).unwrap();
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
    for c in &mut clients {
        let closed = recv_closed(c);
        assert_eq!(closed.by, ClosedBy::Transport);
    }
    let lefts = lefts(&rx);
    assert_eq!(lefts.len(), ids.len(), "{lefts:?}");
    for id in &ids {
        assert_eq!(lefts[id].len(), 1);
        assert_eq!(lefts[id][0].code, 1006);
    }
}

#[test]
fn a_client_that_stops_reading_only_loses_its_own_messages() {
    let limit = 256 << 10;
    let config = ServerConfig::new().backpressure(limit, Backpressure::DropMessage);
    let (handle, url, rx) = start(config);
    let (_slow, slow_id) = connect(&url, &rx);
    let (mut fast, fast_id) = connect(&url, &rx);

    let (got_tx, got_rx): (Sender<usize>, Receiver<usize>) = mpsc::channel();
    let reader = std::thread::spawn(move || loop {
        match fast.recv() {
            Ok(ClientEvent::Message(m)) => {
                if got_tx.send(m.as_bytes().len()).is_err() {
                    return;
                }
            }
            Ok(ClientEvent::Closed(_)) | Err(_) => return,
            Ok(_) => {}
        }
    });

    let chunk = vec![7u8; 64 << 10];
    let mut sent = 0;
    let dropped = loop {
        // One message in flight for the fast client, so only the slow one can fall behind.
        handle.send_to_all(Message::Binary(chunk.clone()));
        sent += 1;
        assert_eq!(
            got_rx.recv_timeout(WAIT),
            Ok(chunk.len()),
            "fast client starved"
        );
        match rx.try_recv() {
            Ok(Ev::Error(Some(id), ServerError::MessageDropped(_))) => break id,
            Ok(Ev::Error(who, e)) => panic!("unexpected error for {who:?}: {e}"),
            _ => {}
        }
        // Loopback buffers hold a few MiB; past them the server's bound must show.
        assert!(sent < 2000, "never dropped after {sent} messages");
    };
    assert_eq!(dropped, slow_id);
    // The fast client goes on receiving.
    for _ in 0..10 {
        handle.send_to_all(Message::Binary(chunk.clone()));
        assert_eq!(got_rx.recv_timeout(WAIT), Ok(chunk.len()));
    }
    handle.send_text(fast_id, "still here");
    assert_eq!(got_rx.recv_timeout(WAIT), Ok(10));
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
    reader.join().unwrap();
}

#[test]
fn past_the_connection_limit_the_handshake_gets_503() {
    let (handle, url, rx) = start(ServerConfig::new().max_connections(2));
    let (_a, _) = connect(&url, &rx);
    let (_b, _) = connect(&url, &rx);
    let err = plain(&url).expect_err("third client accepted");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ConnectionError>());
    assert_eq!(
        inner,
        Some(&ConnectionError::Handshake(
            ws_proto::HandshakeError::BadStatus(503)
        ))
    );
    expect(&rx, "on_error ConnectionLimit", |ev| match ev {
        Ev::Error(_, ServerError::ConnectionLimit(2)) => Some(()),
        _ => None,
    });
    handle.shutdown_abruptly();
    wait_stopped(&handle, WAIT);
}

#[cfg(feature = "tls")]
#[test]
fn wss_echo_with_a_private_ca() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let config = ServerConfig::new().tls(format!("{data}/cert.pem"), format!("{data}/key.pem"));
    let (handle, url, rx) = start(config);
    let url = url.replace("ws://127.0.0.1", "wss://localhost");
    let ca = std::fs::read(format!("{data}/ca.pem")).unwrap();
    let mut config = Config::default();
    config.deflate.enabled = false;
    let mut c = Client::connect_with_ca(&url, config, ClientRequest::new("", ""), &ca).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let id = expect(&rx, "on_new_client", |ev| match ev {
        Ev::New(id, _) => Some(id),
        _ => None,
    });
    c.send_text("secret").unwrap();
    assert_eq!(recv_message(&mut c), Message::Text("secret".into()));
    let big = vec![42u8; 1 << 20];
    c.send_binary(&big).unwrap();
    assert_eq!(recv_message(&mut c), Message::Binary(big));
    c.close(CloseCode::NORMAL, "").unwrap();
    assert!(recv_closed(&mut c).clean);
    let left = expect(&rx, "on_client_left", |ev| match ev {
        Ev::Left(who, closed) if who == id => Some(closed),
        _ => None,
    });
    assert!(left.clean, "{left:?}");
    // Without the CA, the certificate is refused before any WebSocket byte.
    let err = Client::connect_with_ca(
        &url,
        Config::default(),
        ClientRequest::new("", ""),
        include_bytes!("data/cert.pem"),
    )
    .expect_err("leaf accepted as its own CA");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    handle.shutdown_gracefully();
    wait_stopped(&handle, WAIT);
}
