//! A server under test: an adapter started on 127.0.0.1:0 with a [`Probe`] handler that reports
//! every callback on a channel, so tests wait for events (with a timeout) instead of sleeping.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ws_proto::server::{
    Client, ClientId, Decision, Handler, HttpResponse, ServerApi, ServerConfig, ServerError,
};
use ws_proto::{Accept, Closed, Message, MessageRef, Request};

use crate::Adapter;

/// How long a test waits for any one event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One callback, as the probe saw it.
#[derive(Clone, Debug)]
pub enum Ev {
    /// `on_new_client`.
    NewClient(Client),
    /// `on_client_left`.
    Left(Client, Closed),
    /// `on_message`.
    Message(ClientId, Message),
    /// `on_ping`.
    Ping(ClientId, Vec<u8>),
    /// `on_pong`.
    Pong(ClientId, Vec<u8>),
    /// `on_subscribed`.
    Subscribed(ClientId, String),
    /// `on_unsubscribed`.
    Unsubscribed(ClientId, String),
    /// `on_error`.
    Error(Option<ClientId>, ServerError),
}

type HandshakeFn = Box<dyn Fn(&Request, SocketAddr) -> Decision + Send + Sync>;
type HttpFn = Box<dyn Fn(&Request) -> HttpResponse + Send + Sync>;
type ActionFn = Box<dyn Fn(&dyn ServerApi, &Ev) + Send + Sync>;

/// A handler that reports every callback and optionally echoes messages.
pub struct Probe {
    tx: Mutex<Sender<Ev>>,
    echo: bool,
    handshake: Option<HandshakeFn>,
    http: Option<HttpFn>,
    action: Option<ActionFn>,
    /// Messages that came lent (`on_message_ref`) rather than owned.
    lent: Arc<AtomicUsize>,
}

impl Probe {
    /// A probe that only reports; returns it with the receiving end.
    pub fn new() -> (Probe, Events) {
        let (tx, rx) = mpsc::channel();
        (
            Probe {
                tx: Mutex::new(tx),
                echo: false,
                handshake: None,
                http: None,
                action: None,
                lent: Arc::default(),
            },
            Events::new(rx),
        )
    }

    /// A probe that also echoes every message back to its sender.
    pub fn echo() -> (Probe, Events) {
        let (mut p, e) = Probe::new();
        p.echo = true;
        (p, e)
    }

    /// Counts the messages that reach the handler lent (`on_message_ref`) rather than owned.
    pub fn lent_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.lent)
    }

    /// Decides upgrade requests with `f`.
    pub fn with_handshake(
        mut self,
        f: impl Fn(&Request, SocketAddr) -> Decision + Send + Sync + 'static,
    ) -> Probe {
        self.handshake = Some(Box::new(f));
        self
    }

    /// Answers plain HTTP requests with `f`.
    pub fn with_http(
        mut self,
        f: impl Fn(&Request) -> HttpResponse + Send + Sync + 'static,
    ) -> Probe {
        self.http = Some(Box::new(f));
        self
    }

    /// Also runs `f` with the server API inside every callback (after reporting it), so a
    /// test can act the way an application does: reply, broadcast, close, subscribe.
    pub fn with_action(mut self, f: impl Fn(&dyn ServerApi, &Ev) + Send + Sync + 'static) -> Probe {
        self.action = Some(Box::new(f));
        self
    }

    fn report(&self, api: &dyn ServerApi, ev: Ev) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(ev.clone());
        if let Some(f) = &self.action {
            f(api, &ev);
        }
    }
}

impl Handler for Probe {
    fn on_handshake(&self, request: &Request, peer: SocketAddr) -> Decision {
        match &self.handshake {
            Some(f) => f(request, peer),
            None => Decision::Accept(Accept::default()),
        }
    }
    fn on_http(&self, request: &Request) -> HttpResponse {
        match &self.http {
            Some(f) => f(request),
            None => HttpResponse::upgrade_required(),
        }
    }
    fn on_new_client(&self, api: &dyn ServerApi, client: &Client) {
        self.report(api, Ev::NewClient(client.clone()));
    }
    fn on_client_left(&self, api: &dyn ServerApi, client: &Client, closed: &Closed) {
        self.report(api, Ev::Left(client.clone(), closed.clone()));
    }
    fn on_message(&self, api: &dyn ServerApi, client: &Client, message: Message) {
        if self.echo {
            api.send(client.id, message.clone());
        }
        self.report(api, Ev::Message(client.id, message));
    }
    // Small messages come lent: echoed as the echo example does, so that every test of the
    // suite runs the lent path as well as the owned one.
    fn on_message_ref(&self, api: &dyn ServerApi, client: &Client, message: MessageRef<'_>) {
        self.lent.fetch_add(1, Ordering::SeqCst);
        if self.echo {
            api.send_ref(client.id, message);
        }
        self.report(api, Ev::Message(client.id, message.to_message()));
    }
    fn on_ping(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        self.report(api, Ev::Ping(client.id, payload.to_vec()));
    }
    fn on_pong(&self, api: &dyn ServerApi, client: &Client, payload: &[u8]) {
        self.report(api, Ev::Pong(client.id, payload.to_vec()));
    }
    fn on_subscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        self.report(api, Ev::Subscribed(client.id, service.to_owned()));
    }
    fn on_unsubscribed(&self, api: &dyn ServerApi, client: &Client, service: &str) {
        self.report(api, Ev::Unsubscribed(client.id, service.to_owned()));
    }
    fn on_error(&self, api: &dyn ServerApi, client: Option<&Client>, error: &ServerError) {
        self.report(api, Ev::Error(client.map(|c| c.id), error.clone()));
    }
}

/// The receiving end of a probe, with the history of everything received so far.
pub struct Events {
    rx: Receiver<Ev>,
    history: RefCell<Vec<Ev>>,
}

impl Events {
    fn new(rx: Receiver<Ev>) -> Events {
        Events {
            rx,
            history: RefCell::new(Vec::new()),
        }
    }

    /// The next event; panics after [`EVENT_TIMEOUT`].
    pub fn next(&self, waiting_for: &str) -> Ev {
        match self.rx.recv_timeout(EVENT_TIMEOUT) {
            Ok(ev) => {
                self.history.borrow_mut().push(ev.clone());
                ev
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "no callback within {EVENT_TIMEOUT:?} while waiting for {waiting_for}; so far: {:#?}",
                self.history.borrow()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the server dropped its handler while waiting for {waiting_for}; so far: {:#?}",
                self.history.borrow()
            ),
        }
    }

    /// Skips events until `f` picks one; panics after [`EVENT_TIMEOUT`] without one.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut(&Ev) -> Option<T>) -> T {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) => {
                    self.history.borrow_mut().push(ev.clone());
                    if let Some(t) = f(&ev) {
                        return t;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {EVENT_TIMEOUT:?}; callbacks so far: {:#?}",
                    self.history.borrow()
                ),
            }
        }
    }

    /// The first event so far that `f` picks, or else the next one to come (for events that
    /// happen once, which an earlier wait may already have passed over).
    pub fn seen_or_wait<T>(&self, what: &str, mut f: impl FnMut(&Ev) -> Option<T>) -> T {
        let seen = self.history.borrow().iter().find_map(&mut f);
        match seen {
            Some(t) => t,
            None => self.wait_for(what, f),
        }
    }

    /// Waits for the next `on_new_client`.
    pub fn new_client(&self) -> Client {
        self.wait_for("on_new_client", |e| match e {
            Ev::NewClient(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// The `on_client_left` of `id`: already received, or waited for.
    pub fn left(&self, id: ClientId) -> Closed {
        let seen = self.history.borrow().iter().find_map(|e| match e {
            Ev::Left(c, closed) if c.id == id => Some(closed.clone()),
            _ => None,
        });
        if let Some(closed) = seen {
            return closed;
        }
        self.wait_for(&format!("on_client_left({id})"), |e| match e {
            Ev::Left(c, closed) if c.id == id => Some(closed.clone()),
            _ => None,
        })
    }

    /// Waits for a message from `id`.
    pub fn message(&self, id: ClientId) -> Message {
        self.wait_for(&format!("on_message from {id}"), |e| match e {
            Ev::Message(c, m) if *c == id => Some(m.clone()),
            _ => None,
        })
    }

    /// Takes whatever has arrived without waiting.
    pub fn drain(&self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.history.borrow_mut().push(ev);
        }
    }

    /// Every event received so far (call [`Events::drain`] first to include the latest).
    pub fn history(&self) -> Vec<Ev> {
        self.history.borrow().clone()
    }

    /// How many events so far satisfy `f`.
    pub fn count(&self, f: impl Fn(&Ev) -> bool) -> usize {
        self.history.borrow().iter().filter(|e| f(e)).count()
    }
}

/// A running server with its probe.
pub struct TestServer<A: Adapter> {
    /// The adapter's handle.
    pub handle: A::Handle,
    /// The probe's events.
    pub events: Events,
    /// Where it listens.
    pub addr: SocketAddr,
    stopped: bool,
}

impl<A: Adapter> TestServer<A> {
    /// Starts `A` on 127.0.0.1, port 0, with `config` and `probe`.
    pub fn start(config: ServerConfig, probe: (Probe, Events)) -> TestServer<A> {
        let config = config.host("127.0.0.1").port(0);
        let (probe, events) = probe;
        let handle = A::start(config, probe);
        let addr = A::addr(&handle);
        assert!(addr.ip().is_loopback(), "{} bound {addr}", A::NAME);
        TestServer {
            handle,
            events,
            addr,
            stopped: false,
        }
    }

    /// An echo server with the default configuration.
    pub fn echo() -> TestServer<A> {
        TestServer::start(ServerConfig::new(), Probe::echo())
    }

    /// `ws://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Waits (bounded) for the server to stop, then collects every callback it made.
    pub fn wait_stopped(&mut self, limit: Duration) {
        assert!(
            wait_with_timeout::<A>(&self.handle, limit),
            "{}: handle.wait() did not return within {limit:?}",
            A::NAME
        );
        self.stopped = true;
        self.events.drain();
    }

    /// Abrupt shutdown, waits for the server to stop and collects every callback.
    pub fn stop(&mut self) {
        self.handle.shutdown_abruptly();
        self.wait_stopped(EVENT_TIMEOUT);
    }
}

impl<A: Adapter> Drop for TestServer<A> {
    fn drop(&mut self) {
        if !self.stopped {
            self.handle.shutdown_abruptly();
        }
    }
}

/// Runs `A::wait` on a helper thread; `true` if it returned within `limit`.
pub fn wait_with_timeout<A: Adapter>(handle: &A::Handle, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    let h = handle.clone();
    std::thread::spawn(move || {
        A::wait(&h);
        let _ = tx.send(());
    });
    rx.recv_timeout(limit).is_ok()
}

/// A tungstenite client over a plain TCP stream with a read timeout.
pub type Tung = tungstenite::WebSocket<TcpStream>;

/// Connects a tungstenite client to `ws://addr/path`.
pub fn tungstenite_connect(addr: SocketAddr, path: &str) -> Tung {
    let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(crate::raw::READ_TIMEOUT))
        .expect("set_read_timeout");
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), stream)
        .unwrap_or_else(|e| panic!("tungstenite handshake with {addr}: {e}"));
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next data message with tungstenite (answering pings on the way).
pub fn tungstenite_read(ws: &mut Tung) -> tungstenite::Message {
    loop {
        match ws.read() {
            Ok(m) if m.is_text() || m.is_binary() => return m,
            Ok(tungstenite::Message::Close(c)) => panic!("server closed: {c:?}"),
            Ok(_) => {}
            Err(e) => panic!("tungstenite read failed: {e}"),
        }
    }
}
