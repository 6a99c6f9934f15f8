//! The part of a server that is the same under every I/O model: the handler, the registry, and
//! the execution of commands.

use core::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::api::{Command, Handler, ServerApi};
use super::session::{Notice, Session};
use super::sparing::{Say, Sparing};
use super::{Client, ClientId, Registry, ServerConfig, ServerError};
use crate::connection::{Message, MessageRef};
use crate::error::Error;
use crate::output::SharedFrame;

/// While clients keep being refused at the connection limit, at most one log line per this long.
pub const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// How the adapter reaches a session to run a command on it. ws-mio looks in its slab; ws-std
/// locks the client's session and wakes its thread afterwards.
pub trait SessionStore {
    /// Runs `f` on the session of `id`, if it is still there.
    fn with_session(&mut self, id: ClientId, f: &mut dyn FnMut(&mut Session));
}

/// A shutdown request that the adapter must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Close handshake with everyone, bounded by the shutdown timeout.
    Graceful,
    /// Drop everyone now.
    Abrupt,
}

/// Handler, configuration and registry of one server, shared by its threads.
pub struct ServerCore {
    config: ServerConfig,
    handler: Box<dyn Handler>,
    registry: Mutex<Registry>,
    /// The log lines of clients refused at the connection limit.
    refusals: Mutex<Sparing>,
    /// The log lines of sockets dropped unanswered, far past the limit.
    drops: Mutex<Sparing>,
    /// One copy of the per-connection settings, shared by every session.
    connection: std::sync::Arc<crate::Config>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsAcceptor>,
}

/// One more of the events `log` counts, at `now`: `None` when it goes unreported, else how many
/// went unreported since the last report (0: the first of a new run).
fn sparingly(log: &Mutex<Sparing>, now: Instant) -> Option<u64> {
    let say = log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .occurred(now, REFUSAL_REPORT_EVERY);
    match say {
        Say::First => Some(0),
        Say::Again { meanwhile } => Some(meanwhile),
        Say::Nothing => None,
    }
}

impl std::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerCore {
    /// A core for `config` calling `handler`. Loads the TLS certificate and key when
    /// `config.tls` is set (an error if they are unreadable, or if built without `tls`).
    pub fn new(config: ServerConfig, handler: impl Handler) -> std::io::Result<ServerCore> {
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some((cert, key)) => Some(crate::tls::TlsAcceptor::from_pem_files(cert, key)?),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "TLS configured but the `tls` feature is off",
            ));
        }
        Ok(ServerCore {
            connection: std::sync::Arc::new(config.connection.clone()),
            config,
            handler: Box::new(handler),
            registry: Mutex::new(Registry::default()),
            refusals: Mutex::default(),
            drops: Mutex::default(),
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// A session for a just-accepted transport (with TLS when configured).
    pub fn new_session(
        &self,
        id: ClientId,
        addr: core::net::SocketAddr,
        now: std::time::Instant,
    ) -> Session {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &self.tls {
            match acceptor.session() {
                Ok(tls) => return Session::with_tls(id, addr, &self.connection, now, tls),
                Err(e) => {
                    log::error!("{addr}: {e}");
                    let mut s = Session::new(id, addr, &self.connection, now);
                    s.connection_mut().abort();
                    return s;
                }
            }
        }
        Session::new(id, addr, &self.connection, now)
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Logs that the client at `addr` was refused at the connection limit at `now`: the first
    /// of a run of refusals, then at most one line per [`REFUSAL_REPORT_EVERY`] with how many
    /// there were meanwhile, so that a flood of clients at the limit does not flood the log.
    /// Returns whether it logged. Every refused client still gets its 503, and the error
    /// callback still hears of each.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ws_proto::server::{Handler, ServerConfig, ServerCore, REFUSAL_REPORT_EVERY};
    /// struct Quiet;
    /// impl Handler for Quiet {}
    /// let core = ServerCore::new(ServerConfig::default(), Quiet).unwrap();
    /// let (addr, t0) = ("127.0.0.1:50000".parse().unwrap(), Instant::now());
    /// assert!(core.log_refusal(addr, t0)); // the first: logged
    /// assert!(!core.log_refusal(addr, t0 + Duration::from_millis(1))); // counted, not logged
    /// assert!(core.log_refusal(addr, t0 + REFUSAL_REPORT_EVERY)); // "(1 more refused ...)"
    /// ```
    pub fn log_refusal(&self, addr: SocketAddr, now: Instant) -> bool {
        let limit = self.config.max_connections;
        match sparingly(&self.refusals, now) {
            Some(0) => log::warn!("{addr}: refused, at the connection limit of {limit}"),
            Some(meanwhile) => log::warn!(
                "{addr}: refused, at the connection limit of {limit} ({meanwhile} more refused \
                 since the last report)"
            ),
            None => return false,
        }
        true
    }

    /// Whether a server with `open` sockets accepts one more. Clients past the connection limit
    /// are still accepted, to get a quick 503 from the handshake; only a flood of raw sockets far
    /// past it is dropped outright, to protect file descriptors (log those with
    /// [`ServerCore::log_drop`]).
    pub fn accepts_socket(&self, open: usize) -> bool {
        let max = self.config.max_connections;
        open < max.saturating_mul(2).max(max + 64)
    }

    /// Logs that a socket from `addr` was dropped unanswered at `now`, `open` sockets being open
    /// (see [`ServerCore::accepts_socket`]), as refusals are logged: the first of a run, then at
    /// most one line per [`REFUSAL_REPORT_EVERY`] with how many there were meanwhile. Returns
    /// whether it logged.
    pub fn log_drop(&self, addr: SocketAddr, open: usize, now: Instant) -> bool {
        match sparingly(&self.drops, now) {
            Some(0) => log::warn!("{addr}: dropped, {open} sockets open"),
            Some(meanwhile) => log::warn!(
                "{addr}: dropped, {open} sockets open ({meanwhile} more dropped since the last \
                 report)"
            ),
            None => return false,
        }
        true
    }

    /// What to write to a client that cannot be served at all, before anything is read from
    /// it: a 503 response, for an adapter that could not start the client's thread. `None`
    /// with TLS, where unencrypted bytes before the TLS handshake would mean nothing to the
    /// client; it only sees the connection close.
    ///
    /// ```
    /// use ws_proto::server::{Handler, ServerConfig, ServerCore};
    /// struct Quiet;
    /// impl Handler for Quiet {}
    /// let core = ServerCore::new(ServerConfig::default(), Quiet).unwrap();
    /// assert!(core.refusal().unwrap().starts_with(b"HTTP/1.1 503 "));
    /// ```
    pub fn refusal(&self) -> Option<Vec<u8>> {
        if self.config.tls.is_some() {
            return None;
        }
        let mut out = Vec::new();
        crate::handshake::server::http_response(
            503,
            &[("Retry-After".into(), "1".into())],
            b"Server cannot take more clients now.\n",
            &mut out,
        );
        Some(out)
    }

    /// The application's handler.
    pub fn handler(&self) -> &dyn Handler {
        &*self.handler
    }

    /// The registry, locked. Never held while a callback runs.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // A callback that panicked cannot have left the registry half-updated: it is never
        // locked around user code.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clients connected now.
    pub fn clients(&self) -> Vec<Client> {
        self.registry().clients()
    }

    /// Delivers a message lent by [`Session::receive_in_place`] to the callbacks.
    pub fn notify_message(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
        self.handler.on_message_ref(api, client, message);
    }

    /// Delivers (and drains) the notices of one client to the callbacks.
    pub fn notify(&self, api: &dyn ServerApi, client: &Client, notices: &mut Vec<Notice>) {
        for notice in notices.drain(..) {
            match notice {
                Notice::Message(m) => self.handler.on_message(api, client, m),
                other => self.notify_rare(api, client, other),
            }
        }
    }

    /// Everything but a message: kept out of line, so that the per-message path stays small.
    #[cold]
    #[inline(never)]
    fn notify_rare(&self, api: &dyn ServerApi, client: &Client, notice: Notice) {
        let h = self.handler();
        match notice {
            Notice::NewClient => h.on_new_client(api, client),
            Notice::Message(m) => h.on_message(api, client, m),
            Notice::Ping(p) => h.on_ping(api, client, &p),
            Notice::Pong(p) => h.on_pong(api, client, &p),
            Notice::Error(e) => h.on_error(api, Some(client), &e),
            Notice::Left { closed, services } => {
                for s in &services {
                    h.on_unsubscribed(api, client, s);
                }
                log::debug!(
                    "{}: left with {} {:?}",
                    client.id,
                    closed.code,
                    closed.reason
                );
                h.on_client_left(api, client, &closed);
            }
        }
    }

    /// Runs one command. Returns a shutdown request for the adapter to carry out.
    pub fn execute(
        &self,
        command: Command,
        store: &mut dyn SessionStore,
        api: &dyn ServerApi,
    ) -> Option<super::Shutdown> {
        match command {
            Command::Send(id, message) => {
                let mut message = Some(message);
                self.on_session(store, api, id, |s| match message.take() {
                    Some(m) => s.send(m),
                    None => Ok(()),
                });
            }
            Command::SendToAll(message) => {
                let ids = self.registry().ids();
                self.broadcast(store, api, &ids, &message);
            }
            Command::Publish(service, message) => {
                let ids = self.registry().subscribers(&service);
                self.broadcast(store, api, &ids, &message);
            }
            Command::Ping(id, payload) => {
                self.on_session(store, api, id, |s| s.connection_mut().ping(&payload));
            }
            Command::Close(id, code, reason) => {
                self.on_session(store, api, id, |s| s.connection_mut().close(code, &reason));
            }
            Command::Subscribe(id, service) => {
                let client = self.registry().subscribe(id, &service);
                if let Some(c) = client {
                    self.handler.on_subscribed(api, &c, &service);
                }
            }
            Command::Unsubscribe(id, service) => {
                let client = self.registry().unsubscribe(id, &service);
                if let Some(c) = client {
                    self.handler.on_unsubscribed(api, &c, &service);
                }
            }
            Command::ShutdownGracefully => return Some(super::Shutdown::Graceful),
            Command::ShutdownAbruptly => return Some(super::Shutdown::Abrupt),
        }
        None
    }

    /// Encodes once and queues the same bytes to every recipient.
    fn broadcast(
        &self,
        store: &mut dyn SessionStore,
        api: &dyn ServerApi,
        ids: &[ClientId],
        message: &Message,
    ) {
        let frame = SharedFrame::message(message);
        for &id in ids {
            self.on_session(store, api, id, |s| s.send_shared(&frame));
        }
    }

    /// Sends a lent message to one client at once through `store`: what [`Command::Send`] does,
    /// with the payload copied into the client's output (for an adapter whose callbacks' sends
    /// run at once, see [`super::CommandSink::submit_send_ref`]).
    pub fn send_ref(
        &self,
        store: &mut dyn SessionStore,
        api: &dyn ServerApi,
        to: ClientId,
        message: MessageRef<'_>,
    ) {
        self.on_session(store, api, to, |s| s.send_ref(message));
    }

    fn on_session(
        &self,
        store: &mut dyn SessionStore,
        api: &dyn ServerApi,
        id: ClientId,
        mut f: impl FnMut(&mut Session) -> Result<(), Error>,
    ) {
        let mut failed = None;
        store.with_session(id, &mut |s| {
            if let Err(e) = f(s) {
                failed = Self::failure(s, e);
            }
        });
        if let Some((client, e)) = failed {
            self.handler.on_error(api, Some(&client), &e);
        }
    }

    /// Sends `message` to `session` at once, for an adapter that runs a callback's sends to a
    /// session it holds without queueing them as commands. Returns what the error callback must
    /// hear, if anything (boxed: the common answer, nothing, stays one word); the adapter
    /// reports it once the running callback has returned (a callback is never entered from
    /// inside another).
    pub fn send_now(session: &mut Session, message: Message) -> Option<Box<(Client, ServerError)>> {
        let result = session.send(message);
        Self::failure_of(session, result)
    }

    /// [`Self::send_now`] for a lent message, copied into the output.
    pub fn send_ref_now(
        session: &mut Session,
        message: MessageRef<'_>,
    ) -> Option<Box<(Client, ServerError)>> {
        let result = session.send_ref(message);
        Self::failure_of(session, result)
    }

    fn failure_of(
        session: &Session,
        result: Result<(), Error>,
    ) -> Option<Box<(Client, ServerError)>> {
        result
            .err()
            .and_then(|e| Self::failure(session, e))
            .map(Box::new)
    }

    /// What the callbacks hear of a failed send: a client that is closing simply gets nothing
    /// more; only drops are news.
    #[cold]
    fn failure(session: &Session, e: Error) -> Option<(Client, ServerError)> {
        if e != Error::BufferFull {
            return None;
        }
        let client = session.client().clone();
        log::debug!("{}: message dropped, output buffer full", client.id);
        Some((client, ServerError::MessageDropped(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock::t0;

    struct Quiet;
    impl Handler for Quiet {}

    #[test]
    fn a_flood_of_refusals_is_logged_once_per_period() {
        let core = ServerCore::new(ServerConfig::default(), Quiet).unwrap();
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let t0 = t0();
        // 25,000 clients refused over 25 s: a line at 0, 10 and 20 s.
        let logged: Vec<u32> = (0..25_000u32)
            .filter(|&i| core.log_refusal(addr, t0 + Duration::from_millis(i.into())))
            .collect();
        assert_eq!(logged, [0, 10_000, 20_000]);
    }

    #[test]
    fn sockets_far_past_the_limit_are_dropped_and_logged_once_per_period() {
        let core = ServerCore::new(ServerConfig::default().max_connections(10), Quiet).unwrap();
        let addr: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let t0 = t0();
        // Past the limit, still taken (for their 503), up to the limit plus 64.
        assert!(core.accepts_socket(73));
        assert!(!core.accepts_socket(74));
        let logged: Vec<u32> = (0..25_000u32)
            .filter(|&i| core.log_drop(addr, 74, t0 + Duration::from_millis(i.into())))
            .collect();
        assert_eq!(logged, [0, 10_000, 20_000]);
        // The drops' pace is their own: a refusal now is the first of its run.
        assert!(core.log_refusal(addr, t0 + Duration::from_millis(20_001)));
    }
}
