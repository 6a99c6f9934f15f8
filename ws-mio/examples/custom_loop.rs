//! Driving `ws_proto::Connection` from an event loop of your own (here a bare mio loop): the
//! whole adapter contract in one page. It echoes every message.
//!
//! `cargo run -p ws-mio --example custom_loop -- 127.0.0.1:9004`

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use ws_proto::{Accept, Config, Connection, Event, Message};

const LISTENER: Token = Token(0);

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9004".to_owned());
    let mut listener = TcpListener::bind(addr.parse().expect("HOST:PORT"))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("custom loop echo on ws://{}", listener.local_addr()?);

    let mut conns: HashMap<Token, (TcpStream, Connection)> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        // Sleep until a socket is ready or the earliest protocol timer is due.
        let deadline = conns.values().filter_map(|(_, c)| c.poll_timeout()).min();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout)?;
        let now = Instant::now();
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let token = Token(next);
                    next += 1;
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    conns.insert(token, (stream, Connection::server(Config::default(), now)));
                }
                continue;
            }
            let Some((stream, conn)) = conns.get_mut(&event.token()) else {
                continue;
            };
            // 1. Read until WouldBlock, feeding the connection.
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        conn.receive_eof(now);
                        break;
                    }
                    Ok(n) => conn.receive(&buf[..n], now),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        conn.receive_eof(now);
                        break;
                    }
                }
            }
        }
        for (stream, conn) in conns.values_mut() {
            conn.handle_timeout(now);
            // 2. Handle events: decide the handshake, echo messages.
            while let Some(event) = conn.poll_event() {
                match event {
                    Event::Request(_) => conn
                        .accept(Accept::default())
                        .expect("a request is pending"),
                    Event::HttpRequest(_) => {
                        let _ = conn.respond(426, &[], b"WebSocket only\n");
                    }
                    Event::Message(Message::Text(t)) => {
                        let _ = conn.send_text(&t);
                    }
                    Event::Message(Message::Binary(b)) => {
                        let _ = conn.send_binary(&b);
                    }
                    _ => {}
                }
            }
            // 3. Write until WouldBlock; partial writes are normal.
            while conn.wants_write() {
                match stream.write(conn.pending_output()) {
                    Ok(n) => conn.consume_output(n),
                    Err(_) => break,
                }
            }
        }
        // 4. Drop transports the protocol is done with.
        conns.retain(|_, (_, conn)| !conn.should_close_transport());
    }
}
