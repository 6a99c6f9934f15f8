//! One client on a server: its [`Connection`], who it is, and the turning of connection events
//! into handshake decisions and notices for the callbacks.

use core::net::SocketAddr;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use super::api::Decision;
use super::hub::ServerCore;
use super::{Client, ClientId, ServerError};
use crate::config::Config;
use crate::connection::{Closed, Connection, Event, Message, MessageRef, PredictedRead};
use crate::error::Error;
use crate::output::SharedFrame;

/// Most slices [`Session::write_output`] hands to one vectored write: a connection's own frames
/// coalesce into one chunk, and each shared (broadcast) frame adds one.
pub const MAX_WRITE_SLICES: usize = 64;

/// What the callbacks must hear about, produced by [`Session::process`] and delivered by
/// [`ServerCore::notify`]. The split lets an adapter run callbacks without holding any lock on
/// the session (ws-std), so a callback may send to its own client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The handshake completed.
    NewClient,
    /// A message arrived.
    Message(Message),
    /// A ping arrived.
    Ping(Vec<u8>),
    /// A pong arrived.
    Pong(Vec<u8>),
    /// The client left; it was unsubscribed from `services`.
    Left {
        /// How the connection ended.
        closed: Box<Closed>,
        /// Services it was subscribed to.
        services: Vec<String>,
    },
    /// Something went wrong with this client.
    Error(ServerError),
}

/// One client connection on a server.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    client: Arc<Client>,
    announced: bool,
    #[cfg(feature = "tls")]
    tls: Option<Box<crate::tls::TlsSession>>,
    #[cfg(feature = "tls")]
    plain: Vec<u8>,
}

impl Session {
    /// A new server-side session for a just-accepted transport.
    pub fn new(id: ClientId, addr: SocketAddr, config: &Arc<Config>, now: Instant) -> Session {
        Session {
            conn: Connection::server(Arc::clone(config), now),
            client: Arc::new(Client {
                id,
                addr,
                path: String::new(),
                protocol: None,
            }),
            announced: false,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            plain: Vec::new(),
        }
    }

    /// A new session whose transport carries TLS (wss).
    #[cfg(feature = "tls")]
    pub fn with_tls(
        id: ClientId,
        addr: SocketAddr,
        config: &Arc<Config>,
        now: Instant,
        tls: crate::tls::TlsSession,
    ) -> Session {
        let mut s = Session::new(id, addr, config, now);
        s.tls = Some(Box::new(tls));
        s
    }

    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.client.id
    }

    /// Who the client is.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Who the client is, shared: an adapter that hands the session to commands while a
    /// callback runs gives the callback this instead of a borrow of the session.
    pub fn shared_client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The protocol state machine.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The protocol state machine, mutably (to send, close, feed bytes, run timers).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Whether the client completed its handshake (and so gets a "left" callback).
    pub fn announced(&self) -> bool {
        self.announced
    }

    /// Sends a message, reporting why it was not sent. Large payloads are queued without a copy.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send_owned(message)
    }

    /// Sends a lent message, copied into the output.
    pub fn send_ref(&mut self, message: MessageRef<'_>) -> Result<(), Error> {
        match message {
            MessageRef::Text(t) => self.conn.send_text(t),
            MessageRef::Binary(b) => self.conn.send_binary(b),
        }
    }

    /// Queues a shared pre-encoded frame.
    pub fn send_shared(&mut self, frame: &SharedFrame) -> Result<(), Error> {
        self.conn.send_shared(frame)
    }

    /// Feeds bytes read from the transport.
    pub fn receive(&mut self, data: &[u8], now: Instant) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            let mut plain = std::mem::take(&mut self.plain);
            plain.clear();
            let result = tls.receive(data, &mut plain);
            if !plain.is_empty() {
                self.conn.receive(&plain, now);
            }
            if let Err(e) = result {
                log::debug!("{}: {e}", self.client.addr);
                self.conn.abort();
            }
            if plain.capacity() <= 16 << 10 {
                self.plain = plain;
            }
            return;
        }
        self.conn.receive(data, now);
    }

    /// Takes the whole small message that starts `data` where it lies: see
    /// [`Connection::receive_in_place`]. Never on a TLS session, whose input must be decrypted
    /// first.
    // Inlined for the reason `Connection::receive_in_place` is.
    #[inline(always)]
    pub fn receive_in_place<'a>(
        &mut self,
        data: &'a mut [u8],
        now: Instant,
    ) -> Option<(MessageRef<'a>, usize)> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return None;
        }
        self.conn.receive_in_place(data, now)
    }

    /// Reads large payloads straight into the message: see [`Connection::receive_direct`]. Never
    /// on a TLS session, whose input must be decrypted first.
    pub fn receive_direct(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return None;
        }
        self.conn.receive_direct(now, read)
    }

    /// Reads a mid-sized message straight into a buffer of its own: see
    /// [`Connection::receive_predicted`]. Never on a TLS session.
    pub fn receive_predicted(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> Option<std::io::Result<usize>> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return None;
        }
        self.conn.receive_predicted(now, read)
    }

    /// The buffers of a mid-sized message's read, for a read made without the session at hand:
    /// see [`Connection::plan_predicted`]. Never on a TLS session.
    pub fn plan_predicted(&mut self) -> Option<PredictedRead> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return None;
        }
        self.conn.plan_predicted()
    }

    /// Takes in what the read of `plan` brought: see [`Connection::finish_predicted`].
    pub fn finish_predicted(
        &mut self,
        plan: PredictedRead,
        result: &std::io::Result<usize>,
        now: Instant,
    ) {
        self.conn.finish_predicted(plan, result, now);
    }

    /// The transport reached end of stream or failed.
    pub fn receive_eof(&mut self, now: Instant) {
        self.conn.receive_eof(now);
    }

    /// Fills `dst` with the bytes to write, in order, for a vectored write; returns how many.
    pub fn output_slices<'a>(&'a mut self, dst: &mut [&'a [u8]]) -> usize {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            while self.conn.wants_write() {
                let n = tls.send(self.conn.pending_output());
                if n == 0 {
                    break;
                }
                self.conn.consume_output(n);
            }
            if self.conn.should_close_transport() && !tls.failed() {
                tls.close();
            }
            let pending = tls.pending();
            if pending.is_empty() || dst.is_empty() {
                return 0;
            }
            dst[0] = pending;
            return 1;
        }
        self.conn.output_slices(dst)
    }

    /// Writes the output with one vectored `write` of its waiting chunks (at most
    /// [`MAX_WRITE_SLICES`]), then consumes what `write` reports written. Returns that result:
    /// `Ok(0)` with output waiting means the transport is gone.
    ///
    /// The adapters write through this rather than [`Session::output_slices`]: it gathers the
    /// usual one or two chunks without setting up the whole array of slices per write.
    pub fn write_output(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        const FEW: usize = 4;
        let result = {
            let mut few: [&[u8]; FEW] = [&[]; FEW];
            let n = self.output_slices(&mut few);
            if n < FEW {
                write(&few.map(IoSlice::new)[..n])
            } else {
                let mut many: [&[u8]; MAX_WRITE_SLICES] = [&[]; MAX_WRITE_SLICES];
                let n = self.output_slices(&mut many);
                write(&many.map(IoSlice::new)[..n])
            }
        };
        if let Ok(n) = result {
            self.consume_output(n);
        }
        result
    }

    /// Reports that `n` bytes of the output were written.
    pub fn consume_output(&mut self, n: usize) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            tls.consume(n);
            return;
        }
        self.conn.consume_output(n);
    }

    /// There are bytes to write.
    pub fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return !tls.pending().is_empty() || self.conn.wants_write();
        }
        self.conn.wants_write()
    }

    /// The transport should be closed now.
    pub fn should_close_transport(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.conn.should_close_transport()
                && (tls.pending().is_empty()
                    || self.conn.is_closed() && !self.conn.wants_write() && tls.failed());
        }
        self.conn.should_close_transport()
    }

    /// When [`Session::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    /// Runs due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    /// Starts a graceful close (1001) if open; drops a connection still in its handshake.
    pub fn begin_shutdown(&mut self) {
        if self.conn.is_open() {
            let _ = self
                .conn
                .close(crate::CloseCode::GOING_AWAY, "server shutting down");
        } else if !self.conn.is_closed() && !self.announced {
            self.conn.abort();
        }
    }

    /// Drains the connection's events: answers handshakes and plain HTTP requests through the
    /// handler, keeps the registry current, and appends what the callbacks must hear.
    ///
    /// Prefer [`Session::process_next`] with the callbacks run in between, so that replies keep
    /// the order of the input that caused them.
    pub fn process(&mut self, core: &ServerCore, notices: &mut Vec<Notice>) {
        while self.process_next(core, notices) {}
    }

    /// Handles events until one notice for the callbacks is produced; returns false when the
    /// connection has no more events for now. An adapter runs the callbacks (and the commands
    /// they issue for this client) before calling it again: the connection decodes its input
    /// one event at a time, so an echo is queued before, say, the reply to a close frame that
    /// arrived in the same read.
    pub fn process_next(&mut self, core: &ServerCore, notices: &mut Vec<Notice>) -> bool {
        let before = notices.len();
        while notices.len() == before {
            let Some(event) = self.conn.poll_event() else {
                return false;
            };
            self.handle_event(event, core, notices);
        }
        true
    }

    fn handle_event(&mut self, event: Event, core: &ServerCore, notices: &mut Vec<Notice>) {
        match event {
            Event::Message(m) => notices.push(Notice::Message(m)),
            other => self.handle_rare_event(other, core, notices),
        }
    }

    /// Everything but a message: kept out of line, so that the per-message path stays small.
    #[cold]
    #[inline(never)]
    fn handle_rare_event(&mut self, event: Event, core: &ServerCore, notices: &mut Vec<Notice>) {
        match event {
            Event::Request(request) => {
                let limit = core.config().max_connections;
                if core.registry().len() >= limit {
                    core.log_refusal(self.client.addr, self.conn.now());
                    let _ = self
                        .conn
                        .respond(503, &[], b"Server is at its connection limit.\n");
                    notices.push(Notice::Error(ServerError::ConnectionLimit(limit)));
                    return;
                }
                match core.handler().on_handshake(&request, self.client.addr) {
                    Decision::Accept(accept) => {
                        let protocol = accept.protocol.clone();
                        match self.conn.accept(accept) {
                            Ok(()) => {
                                self.client = Arc::new(Client {
                                    path: request.path,
                                    protocol,
                                    ..Client::clone(&self.client)
                                });
                                core.registry().insert(Arc::clone(&self.client));
                                self.announced = true;
                                log::debug!(
                                    "{} {}: connected from {}",
                                    self.client.id,
                                    self.client.path,
                                    self.client.addr
                                );
                                notices.push(Notice::NewClient);
                            }
                            Err(e) => {
                                log::error!("{}: handshake hook error: {e}", self.client.addr);
                                let _ = self.conn.respond(500, &[], b"Internal error.\n");
                                notices.push(Notice::Error(ServerError::MessageDropped(e)));
                            }
                        }
                    }
                    Decision::Reject { status, body } => {
                        let _ = self.conn.respond(status, &[], &body);
                    }
                }
            }
            Event::HttpRequest(request) => {
                let r = core.handler().on_http(&request);
                let _ = self.conn.respond(r.status, &r.headers, &r.body);
            }
            Event::Message(m) => notices.push(Notice::Message(m)),
            Event::Ping(p) => notices.push(Notice::Ping(p)),
            Event::Pong(p) => notices.push(Notice::Pong(p)),
            Event::Fragment { .. } | Event::Connected(_) => {}
            Event::Closed(closed) => {
                if let Some(e) = &closed.error {
                    log::debug!("{} ({}): {e}", self.client.id, self.client.addr);
                    if self.announced {
                        notices.push(Notice::Error(ServerError::Connection(e.clone())));
                    }
                }
                if self.announced {
                    let services = core.registry().remove(self.client.id);
                    notices.push(Notice::Left { closed, services });
                }
            }
        }
    }
}
