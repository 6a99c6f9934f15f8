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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod output;
pub mod rng;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod utf8;

pub use close::{CloseCode, ClosePayload};
pub use config::{Backpressure, Config};
pub use connection::{Accept, Closed, ClosedBy, Connection, DataKind, Event, Message};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ConnectionError, Error, HandshakeError, ProtocolError};
pub use handshake::{ClientRequest, Request};
pub use output::SharedFrame;

/// Which end of the connection this is: it decides masking and the close rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts connections; receives masked frames, sends unmasked ones.
    Server,
    /// Opens connections; masks every frame it sends.
    Client,
}
