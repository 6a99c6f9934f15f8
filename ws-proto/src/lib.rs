//! # ws-proto: a sans-IO WebSocket protocol core
//!
//! Bytes in, events and bytes out: RFC 6455 (handshake, framing, masking, fragmentation, control
//! frames, close codes, UTF-8) and RFC 7692 (permessage-deflate), with no sockets, threads or
//! clock inside. Time is an argument (`now`), so the same [`Connection`] runs under mio, threads,
//! an async runtime or a test with a virtual clock.
//!
//! The loop an adapter runs: feed received bytes with [`Connection::receive`], drain
//! [`Connection::poll_event`], write [`Connection::pending_output`] and report what was written
//! with [`Connection::consume_output`], and wake up at [`Connection::poll_timeout`] to call
//! [`Connection::handle_timeout`].
//!
//! ## A tiny blocking echo server, driven by hand
//!
//! The server below runs on a thread over a `std::net::TcpStream`; the main thread talks to it
//! with a client-role [`Connection`], also driven by hand. Both loops are the whole adapter
//! contract: feed bytes in, act on events, write what is pending.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Instant;
//! use ws_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Message};
//!
//! /// Writes everything the connection has queued.
//! fn flush(conn: &mut Connection, tcp: &mut TcpStream) -> std::io::Result<()> {
//!     while conn.wants_write() {
//!         let n = tcp.write(conn.pending_output())?;
//!         conn.consume_output(n);
//!     }
//!     Ok(())
//! }
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//!
//! // The echo server: one client, then done.
//! let server = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut tcp, _) = listener.accept()?;
//!     let mut conn = Connection::server(Config::default(), Instant::now());
//!     let mut buf = [0u8; 4096];
//!     while !conn.should_close_transport() {
//!         let n = tcp.read(&mut buf)?;
//!         if n == 0 {
//!             conn.receive_eof(Instant::now());
//!         } else {
//!             conn.receive(&buf[..n], Instant::now());
//!         }
//!         while let Some(event) = conn.poll_event() {
//!             match event {
//!                 Event::Request(_) => conn.accept(Accept::default()).expect("a request is pending"),
//!                 Event::Message(m) => { let _ = conn.send(&m); }
//!                 _ => {}
//!             }
//!         }
//!         flush(&mut conn, &mut tcp)?;
//!     }
//!     Ok(())
//! });
//!
//! // A client, by hand as well (seed it from the OS in real code).
//! let mut tcp = TcpStream::connect(addr)?;
//! let request = ClientRequest::new(addr.to_string(), "/");
//! let mut client = Connection::client(Config::default(), request, [7; 32], Instant::now());
//! flush(&mut client, &mut tcp)?;
//! let mut buf = [0u8; 4096];
//! let mut echoed = None;
//! while !client.is_closed() {
//!     let n = tcp.read(&mut buf)?;
//!     if n == 0 {
//!         client.receive_eof(Instant::now());
//!     } else {
//!         client.receive(&buf[..n], Instant::now());
//!     }
//!     while let Some(event) = client.poll_event() {
//!         match event {
//!             Event::Connected(_) => client.send_text("hello").unwrap(),
//!             Event::Message(m) => {
//!                 echoed = Some(m);
//!                 client.close(CloseCode::NORMAL, "done").unwrap();
//!             }
//!             _ => {}
//!         }
//!     }
//!     flush(&mut client, &mut tcp)?;
//! }
//! assert_eq!(echoed, Some(Message::Text("hello".into())));
//! server.join().unwrap()?;
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod process_wide;

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod output;
mod reuse;
pub mod rng;
pub mod server;
#[cfg(test)]
mod test_clock;
#[cfg(feature = "tls")]
pub mod tls;
pub mod utf8;

pub use close::{CloseCode, ClosePayload};
pub use config::{Backpressure, Config};
pub use connection::{
    Accept, Closed, ClosedBy, Connection, DataKind, Event, Message, MessageRef, PredictedRead,
};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ConnectionError, Error, HandshakeError, ProtocolError};
pub use handshake::{ClientRequest, Request};
pub use output::SharedFrame;
#[cfg(fuzzing)]
#[doc(hidden)]
pub use reuse::fuzz_recycle;

/// Which end of the connection this is: it decides masking and the close rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections; receives masked frames, sends unmasked ones.
    Server,
    /// Opens connections; masks every frame it sends.
    Client,
}
