//! Server-level logic shared by the ws-mio and ws-std adapters, still without I/O: client ids,
//! the client registry and subscriptions, the application's [`Handler`], the [`ServerApi`] it
//! calls, the per-client [`Session`] and the [`ServerCore`] that runs commands and callbacks.
//!
//! An adapter only moves bytes between sockets and sessions, sleeps until the earliest timer,
//! and routes commands; every rule about what happens lives here or in [`crate::Connection`].

mod accept_retry;
mod api;
mod callbacks;
mod config;
mod hub;
mod lifecycle;
mod registry;
mod session;
mod slab;
mod sparing;
mod timers;

use core::net::SocketAddr;

pub use self::accept_retry::{AcceptRetry, ACCEPT_REPORT_EVERY, ACCEPT_RETRY};
pub use self::api::{Command, CommandSink, Decision, Handler, HttpResponse, ServerApi};
pub use self::callbacks::Callbacks;
pub use self::config::ServerConfig;
pub use self::hub::{ServerCore, SessionStore, Shutdown, REFUSAL_REPORT_EVERY};
pub use self::lifecycle::Lifecycle;
pub use self::registry::Registry;
pub use self::session::{Notice, Session, MAX_WRITE_SLICES};
pub use self::slab::{ClientId, Slab};
pub use self::timers::Timers;

use crate::error::{ConnectionError, Error};

/// What an application needs from a server crate, re-exported whole by ws-mio and ws-std
/// (`pub use ws_proto::server::exports::*;`), so both offer the very same API.
pub mod exports {
    pub use super::{
        Callbacks, Client, ClientId, Decision, Handler, HttpResponse, ServerApi, ServerConfig,
        ServerError,
    };
    pub use crate::{Accept, Backpressure, CloseCode, Closed, ClosedBy, Message, Request};
}

/// A connected client, as the callbacks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Stable id, never reused while this client is connected.
    pub id: ClientId,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The request path of the upgrade, e.g. `/chat?room=1`.
    pub path: String,
    /// The subprotocol chosen in the handshake.
    pub protocol: Option<String>,
}

/// What [`Handler::on_error`] reports.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The connection failed (protocol violation, limit, timeout, handshake).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A message to this client was not sent (backpressure, or the client is closing).
    #[error("message not sent: {0}")]
    MessageDropped(Error),
    /// The server refused a connection because it is at its connection limit.
    #[error("connection limit reached ({0})")]
    ConnectionLimit(usize),
    /// An I/O error (accepting, reading, writing, TLS).
    #[error("I/O error: {0}")]
    Io(String),
}
