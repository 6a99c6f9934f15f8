//! What the application calls (ServerApi, through commands) and what it implements (Handler).

use core::net::SocketAddr;

use super::{Client, ClientId, ServerError};
use crate::close::CloseCode;
use crate::connection::{Accept, Closed, Message, MessageRef};
use crate::handshake::Request;

/// A request to the server, from a callback or from any thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send a message to one client.
    Send(ClientId, Message),
    /// Send a message to every client (encoded once).
    SendToAll(Message),
    /// Send a ping to one client.
    Ping(ClientId, Vec<u8>),
    /// Start the close handshake with one client.
    Close(ClientId, CloseCode, String),
    /// Subscribe a client to a named service.
    Subscribe(ClientId, String),
    /// Unsubscribe a client from a named service.
    Unsubscribe(ClientId, String),
    /// Send a message to every subscriber of a service (encoded once).
    Publish(String, Message),
    /// Stop accepting, close everyone with 1001, wait for their replies up to the shutdown
    /// timeout, then stop.
    ShutdownGracefully,
    /// Close every socket now and stop.
    ShutdownAbruptly,
}

/// Where commands go: each adapter implements this once, and gets all of [`ServerApi`].
pub trait CommandSink {
    /// Queues or runs a command.
    fn submit(&self, command: Command);
    /// Sends one message: [`ServerApi::send`]. The default submits [`Command::Send`]; an
    /// adapter that can run a send at once overrides it, and the command is never built.
    fn submit_send(&self, to: ClientId, message: Message) {
        self.submit(Command::Send(to, message));
    }
    /// Sends one lent message: [`ServerApi::send_ref`]. The default copies it into a
    /// [`Self::submit_send`]; an adapter that can send at once overrides it, and copies the
    /// payload only into the output.
    fn submit_send_ref(&self, to: ClientId, message: MessageRef<'_>) {
        self.submit_send(to, message.to_message());
    }
    /// The clients connected now.
    fn clients(&self) -> Vec<Client>;
}

/// The server API, available in callbacks and on the cross-thread handle of both adapters.
///
/// Sends never block: a message that would exceed a client's output bound is handled by the
/// backpressure policy (dropped and reported to [`Handler::on_error`], or the client closed).
pub trait ServerApi {
    /// The clients connected now (id, peer address, path).
    fn clients(&self) -> Vec<Client>;
    /// Sends a message to one client (Python: `send_message`).
    fn send(&self, to: ClientId, message: Message);
    /// Sends a lent message to one client: the payload is copied once, into the client's output,
    /// where the callback runs on the client's own thread or event loop. The way to echo a
    /// message [`Handler::on_message_ref`] lends.
    fn send_ref(&self, to: ClientId, message: MessageRef<'_>);
    /// Sends text to one client.
    fn send_text(&self, to: ClientId, text: &str) {
        self.send_ref(to, MessageRef::Text(text));
    }
    /// Sends bytes to one client.
    fn send_binary(&self, to: ClientId, data: &[u8]) {
        self.send_ref(to, MessageRef::Binary(data));
    }
    /// Sends a message to every client, encoding it once (Python: `send_message_to_all`).
    fn send_to_all(&self, message: Message);
    /// Pings one client.
    fn ping(&self, to: ClientId, payload: &[u8]);
    /// Closes one client with a code and reason (at most 123 bytes; longer is cut).
    fn close(&self, client: ClientId, code: CloseCode, reason: &str);
    /// Subscribes a client to a named service; fires [`Handler::on_subscribed`] once.
    fn subscribe(&self, client: ClientId, service: &str);
    /// Unsubscribes; fires [`Handler::on_unsubscribed`] if it was subscribed.
    fn unsubscribe(&self, client: ClientId, service: &str);
    /// Sends a message to every subscriber of `service`, encoding it once.
    fn publish(&self, service: &str, message: Message);
    /// Graceful shutdown: close handshake (1001) with everyone, bounded by the shutdown timeout.
    fn shutdown_gracefully(&self);
    /// Abrupt shutdown: drop every connection now.
    fn shutdown_abruptly(&self);
}

impl<T: CommandSink + ?Sized> ServerApi for T {
    fn clients(&self) -> Vec<Client> {
        CommandSink::clients(self)
    }
    fn send(&self, to: ClientId, message: Message) {
        self.submit_send(to, message);
    }
    fn send_ref(&self, to: ClientId, message: MessageRef<'_>) {
        self.submit_send_ref(to, message);
    }
    fn send_to_all(&self, message: Message) {
        self.submit(Command::SendToAll(message));
    }
    fn ping(&self, to: ClientId, payload: &[u8]) {
        let mut p = payload.to_vec();
        p.truncate(crate::frame::MAX_CONTROL_PAYLOAD);
        self.submit(Command::Ping(to, p));
    }
    fn close(&self, client: ClientId, code: CloseCode, reason: &str) {
        let mut r = reason.to_owned();
        let mut end = r.len().min(crate::close::MAX_REASON_LEN);
        while !r.is_char_boundary(end) {
            end -= 1;
        }
        r.truncate(end);
        self.submit(Command::Close(client, code, r));
    }
    fn subscribe(&self, client: ClientId, service: &str) {
        self.submit(Command::Subscribe(client, service.to_owned()));
    }
    fn unsubscribe(&self, client: ClientId, service: &str) {
        self.submit(Command::Unsubscribe(client, service.to_owned()));
    }
    fn publish(&self, service: &str, message: Message) {
        self.submit(Command::Publish(service.to_owned(), message));
    }
    fn shutdown_gracefully(&self) {
        self.submit(Command::ShutdownGracefully);
    }
    fn shutdown_abruptly(&self) {
        self.submit(Command::ShutdownAbruptly);
    }
}

/// The answer to an upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accept, with a subprotocol and extra headers.
    Accept(Accept),
    /// Refuse with an HTTP status and body.
    Reject {
        /// HTTP status, e.g. 403.
        status: u16,
        /// Response body.
        body: Vec<u8>,
    },
}

/// A response to a plain HTTP request (no upgrade) on the WebSocket port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields (Content-Length and Connection are added).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        }
    }

    /// 426 Upgrade Required: the default for plain requests.
    pub fn upgrade_required() -> HttpResponse {
        HttpResponse::new(
            426,
            "text/plain; charset=utf-8",
            "This is a WebSocket endpoint.\n",
        )
    }
}

/// The application's callbacks. Every method has a default that does nothing (or accepts), so
/// implement only what you need; [`super::Callbacks`] builds one from closures.
///
/// In ws-mio callbacks run on the event-loop thread; in ws-std on the client's thread. Either
/// way the `api` argument sends, publishes and closes without blocking.
pub trait Handler: Send + Sync + 'static {
    /// Decide on an upgrade request (inspect path, headers, origin; choose a subprotocol).
    fn on_handshake(&self, request: &Request, peer: SocketAddr) -> Decision {
        let _ = (request, peer);
        Decision::Accept(Accept::default())
    }
    /// Answer a plain HTTP request (serve a page on the same port). Default: 426.
    fn on_http(&self, request: &Request) -> HttpResponse {
        let _ = request;
        HttpResponse::upgrade_required()
    }
    /// A client completed its handshake.
    fn on_new_client(&self, api: &dyn ServerApi, client: &Client) {
        let _ = (api, client);
    }
    /// A client is gone (called exactly once per client that was announced).
    fn on_client_left(&self, api: &dyn ServerApi, client: &Client, closed: &Closed) {
        let _ = (api, client, closed);
    }
    /// A message arrived.
    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
        let _ = (api, client, message);
    }
    /// A message arrived, lent: an optional fast path beside [`Self::on_message`], which must
    /// still handle every message. Whole single-frame messages under 4 KiB are received where
    /// they were read and may come here instead, sparing an allocation and a copy each; larger,
    /// fragmented and compressed messages always go to `on_message`. The default gives
    /// `on_message` an owned copy. Override it where the payload is only looked at or passed on
    /// with [`ServerApi::send_ref`]. Exactly one of the two is called per message.
    ///
    /// ```
    /// use ws_proto::server::{Client, Handler, ServerApi};
    /// use ws_proto::{Message, MessageRef};
    ///
    /// /// Echoes every message: large ones in their own buffer, small ones copied once, into
    /// /// the client's output.
    /// struct Echo;
    ///
    /// impl Handler for Echo {
    ///     fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
    ///         api.send(client.id, message);
    ///     }
    ///     fn on_message_ref(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
    ///         api.send_ref(client.id, message);
    ///     }
    /// }
    /// # let _ = Echo;
    /// ```
    fn on_message_ref(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
        self.on_message(api, client, message.to_message());
    }
    /// A ping arrived (the pong is sent automatically).
    fn on_ping(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        let _ = (api, client, payload);
    }
    /// A pong arrived.
    fn on_pong(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        let _ = (api, client, payload);
    }
    /// A client was subscribed to a service.
    fn on_subscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        let _ = (api, client, service);
    }
    /// A client was unsubscribed from a service (also when it leaves).
    fn on_unsubscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        let _ = (api, client, service);
    }
    /// Something went wrong with one client (protocol violation, dropped message, I/O) or with
    /// the server (`client` is `None`).
    fn on_error(&self, api: &dyn ServerApi, client: Option<&Client>, error: &ServerError) {
        let _ = (api, client, error);
    }
}
