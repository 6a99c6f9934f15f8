//! # ws-std: a thread-per-client WebSocket server
//!
//! Every client gets its own thread, which owns all I/O on that client's socket; one more thread
//! accepts connections. Callbacks run on the client's thread, so a slow callback delays only its
//! own client. The protocol lives in [`ws_proto`]; the configuration, callbacks and API are the
//! ones of `ws-mio`, so switching between the two is a one-line `use` change.
//!
//! An echo server on a free port, a client talking to it, and a graceful shutdown (this
//! example runs as a test):
//!
//! ```
//! use ws_std::client::{self, ClientEvent};
//! use ws_std::{Callbacks, CloseCode, Message, Server, ServerApi, ServerConfig};
//!
//! let handler = Callbacks::new()
//!     .on_new_client(|api, client| api.send_text(client.id, "welcome"))
//!     .on_message(|api, client, message| api.send(client.id, message));
//! let server = Server::bind(ServerConfig::new(), handler)?; // 127.0.0.1, any free port
//! let handle = server.run_threaded()?;
//!
//! let mut ws = client::connect(&format!("ws://{}/chat", handle.local_addr()))?;
//! assert!(matches!(ws.recv()?, ClientEvent::Message(Message::Text(t)) if t == "welcome"));
//! ws.send_text("hi")?;
//! assert!(matches!(ws.recv()?, ClientEvent::Message(Message::Text(t)) if t == "hi"));
//! ws.close(CloseCode::NORMAL, "bye")?;
//! while !matches!(ws.recv()?, ClientEvent::Closed(_)) {}
//!
//! // Any thread may send, broadcast, publish and shut down through the handle.
//! handle.send_to_all(Message::Text("hello, everyone".into()));
//! handle.shutdown_gracefully();
//! handle.wait();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Switching to the event-loop server is a one-line change: `use ws_mio::...` instead.
//!
//! ## Threads and memory
//!
//! Client threads have a 256 KiB stack (1 MiB in debug builds; set `RUST_MIN_STACK` to use that
//! size instead), so keep deep recursion and large stack arrays out of callbacks.
//!
//! An idle client costs one thread, one socket (no other file descriptor) and its session; it
//! holds no read buffer. That is about 16.5 KiB of RSS per idle client, 12 KiB of it the
//! thread's stack, measured with 10,000 idle connections (`ws-load --scenario idle` against
//! the `echo` example, release build). The thread count is bounded by the system: each thread
//! takes two memory mappings (`vm.max_map_count`) and counts against the thread limit.
//!
//! Sends from any thread only queue bytes on the client's session and wake its thread; they
//! never touch a socket, so a client that stops reading cannot block them. Its queue is bounded
//! by [`ServerConfig::backpressure`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod conn;
mod poller;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::Thread;

use ws_proto::server::{
    Command, CommandSink, Lifecycle, ServerCore, Session, SessionStore, Shutdown, Slab,
};

pub use ws_proto::server::exports::*;

/// One client as other threads see it: its session, and the thread to wake after touching it.
struct Slot {
    session: Mutex<Session>,
    /// Set by the client thread before its first turn; until then it needs no wake-up.
    thread: OnceLock<Thread>,
    /// Readiness the accept thread saw since the client thread last looked (`conn::READABLE`,
    /// `conn::READ_CLOSED`): a wake-up without it needs no read at all.
    ready: AtomicU8,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Session> {
        // No user code runs under this lock, so a poisoned session is still consistent.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the client thread, unless we are on it: it looks at its session after every
    /// callback anyway.
    fn wake(&self) {
        if let Some(t) = self.thread.get() {
            if t.id() != std::thread::current().id() {
                t.unpark();
            }
        }
    }
}

/// State shared by the accept thread, the client threads and every [`Handle`].
struct Shared {
    core: ServerCore,
    slots: RwLock<Slab<Arc<Slot>>>,
    /// Wakes the accept thread (shutdown requests, finished client threads).
    waker: mio::Waker,
    /// Client threads that have ended and wait to be joined by the accept thread.
    finished: Mutex<Vec<ClientId>>,
    /// Big read buffers, lent to client threads for one turn while data streams in.
    buffers: Mutex<Vec<Vec<u8>>>,
    lifecycle: Lifecycle,
    local_addr: SocketAddr,
}

impl Shared {
    fn slot(&self, id: ClientId) -> Option<Arc<Slot>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(id).cloned()
    }

    fn all_slots(&self) -> Vec<Arc<Slot>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.iter().map(|(_, s)| s.clone()).collect()
    }

    fn request_shutdown(&self, kind: Shutdown) {
        if self.lifecycle.request(kind) {
            self.wake_poller();
        }
    }

    fn wake_poller(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the accept thread: {e}");
        }
    }

    fn take_buffer(&self) -> Vec<u8> {
        let pooled = self.buffers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        pooled.unwrap_or_else(|| vec![0; conn::BIG_READ])
    }

    fn give_buffer(&self, buf: Vec<u8>) {
        let mut pool = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < conn::POOLED_BUFFERS {
            pool.push(buf);
        }
    }

    fn set_stopped(&self) {
        self.lifecycle.set_stopped();
    }
}

/// What decides whether a session touched by another thread needs its own thread to look.
#[derive(Debug, PartialEq, Eq)]
struct Watch {
    wants_write: bool,
    timeout: Option<std::time::Instant>,
    closed: bool,
}

impl Watch {
    fn of(s: &Session) -> Watch {
        Watch {
            wants_write: s.wants_write(),
            timeout: s.poll_timeout(),
            closed: s.connection().is_closed(),
        }
    }

    /// New output, a new timer (a close deadline) or a new end all need the thread; more output
    /// behind output it is already writing does not (it writes all of it when it can).
    fn needs_wake(&self, after: &Watch) -> bool {
        (!self.wants_write && after.wants_write)
            || self.timeout != after.timeout
            || self.closed != after.closed
    }
}

/// Runs a command's closure on a session, then wakes the client's thread if the session now
/// has something for it to do.
impl SessionStore for &Shared {
    fn with_session(&mut self, id: ClientId, f: &mut dyn FnMut(&mut Session)) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        let wake = {
            let mut s = slot.lock();
            // The connection's clock only moves on input; a command such as close must not
            // start its timer from the last time this (maybe long idle) client spoke. Timers
            // themselves run on the client's own thread.
            s.connection_mut().set_time(std::time::Instant::now());
            let before = Watch::of(&s);
            f(&mut s);
            before.needs_wake(&Watch::of(&s))
        };
        if wake {
            slot.wake();
        }
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    poller: poller::Poller,
}

impl Server {
    /// Binds `config.host:config.port` (port 0 picks a free port) with `handler` as callbacks.
    pub fn bind(config: ServerConfig, handler: impl Handler) -> io::Result<Server> {
        let core = ServerCore::new(config, handler)?;
        let addr: SocketAddr = core.config().bind_addr().parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad host/port: {e}"))
        })?;
        let listener = mio::net::TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), poller::WAKER)?;
        let shared = Arc::new(Shared {
            core,
            slots: RwLock::new(Slab::default()),
            waker,
            finished: Mutex::new(Vec::new()),
            buffers: Mutex::new(Vec::new()),
            lifecycle: Lifecycle::default(),
            local_addr,
        });
        let poller = poller::Poller::new(poll, listener, shared.clone())?;
        log::info!("listening on {local_addr}");
        Ok(Server { shared, poller })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// A handle for other threads (usable before the server runs).
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts clients on this thread until the server is shut down and every client thread
    /// has been joined.
    pub fn run_forever(self) -> io::Result<()> {
        let shared = self.shared.clone();
        let result = self.poller.run();
        shared.set_stopped();
        result
    }

    /// Runs the accept thread in the background and returns a handle to the server.
    pub fn run_threaded(self) -> io::Result<Handle> {
        let handle = self.handle();
        std::thread::Builder::new()
            .name("ws-std-accept".into())
            .spawn(move || {
                if let Err(e) = self.run_forever() {
                    log::error!("accept thread failed: {e}");
                }
            })?;
        Ok(handle)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// A cloneable, `Send + Sync` handle: sends, broadcasts, publishes, closes and shuts down from
/// any thread (all of [`ServerApi`]). Callbacks get the same API.
///
/// A command runs at once on the calling thread: it queues bytes on the sessions concerned and
/// wakes their threads. Nothing here waits for a client or touches a socket.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl CommandSink for Handle {
    fn submit(&self, command: Command) {
        let shared: &Shared = &self.shared;
        if let Some(kind) = shared.core.execute(command, &mut &*shared, self) {
            shared.request_shutdown(kind);
        }
    }

    fn clients(&self) -> Vec<Client> {
        self.shared.core.clients()
    }
}

impl Handle {
    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Blocks until the server has stopped: after shutdown, every client thread joined and
    /// every "left" callback done. Never call it from a callback: the server would wait for the
    /// very thread that waits.
    pub fn wait(&self) {
        self.shared.lifecycle.wait_stopped();
    }

    /// Whether the server has not stopped yet.
    pub fn is_running(&self) -> bool {
        !self.shared.lifecycle.is_stopped()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use ws_proto::server::Session;
    use ws_proto::{ClientRequest, Config};

    use super::*;
    use crate::client::{Client, ClientEvent};

    const WAIT: Duration = Duration::from_secs(10);

    /// A session that completed its handshake, with the 101 response already written.
    fn open_session(core: &ServerCore) -> Session {
        let mut slab = Slab::default();
        let id = slab.insert(());
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut s = core.new_session(id, addr, Instant::now());
        s.receive(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            Instant::now(),
        );
        s.process(core, &mut Vec::new());
        assert!(s.connection().is_open());
        let n = s.connection().buffered_amount();
        s.consume_output(n);
        s
    }

    #[test]
    fn commands_wake_the_client_thread_only_for_new_work() {
        let core = ServerCore::new(ServerConfig::new(), Callbacks::new()).unwrap();
        let mut s = open_session(&core);
        let step = |s: &mut Session, f: &dyn Fn(&mut Session)| {
            let before = Watch::of(s);
            f(s);
            before.needs_wake(&Watch::of(s))
        };
        let send = |s: &mut Session| s.send(Message::Text("x".into())).unwrap();
        assert!(step(&mut s, &send), "first output");
        assert!(!step(&mut s, &send), "output behind output");
        assert!(
            step(&mut s, &|s| s
                .connection_mut()
                .close(CloseCode::NORMAL, "")
                .unwrap()),
            "a close starts a timer"
        );
        assert!(
            step(&mut s, &|s| s.connection_mut().abort()),
            "the end of the session"
        );
        assert!(!step(&mut s, &|_| {}), "nothing");
    }

    fn plain_client(addr: SocketAddr) -> Client {
        let mut config = Config::default();
        config.deflate.enabled = false;
        let url = format!("ws://{addr}/");
        let mut c = Client::connect_with(&url, config, ClientRequest::new("", "")).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c
    }

    #[test]
    fn every_client_thread_is_joined_and_its_slot_freed_even_after_a_panic() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let handler = Callbacks::new()
            .on_message(|api, client, message| {
                if message == Message::Text("panic".into()) {
                    panic!("test: a callback panics");
                }
                api.send(client.id, message);
            })
            .on_client_left(move |_, client, _| tx.lock().unwrap().send(client.id).unwrap());
        let server = Server::bind(ServerConfig::new(), handler).unwrap();
        let addr = server.local_addr();
        let handle = server.run_threaded().unwrap();

        let raw: Vec<_> = (0..5)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let mut doomed = plain_client(addr);
        let mut fine = plain_client(addr);
        doomed.send_text("panic").unwrap();
        let first = rx.recv_timeout(WAIT).expect("left after the panic");
        assert!(matches!(doomed.recv(), Ok(ClientEvent::Closed(_))));
        fine.send_text("still here").unwrap();
        assert_eq!(
            fine.recv().unwrap(),
            ClientEvent::Message(Message::Text("still here".into()))
        );
        drop(raw);
        // Answers the server's close, so the graceful shutdown needs no timeout.
        let answers_close = std::thread::spawn(move || loop {
            match fine.recv() {
                Ok(ClientEvent::Closed(closed)) => break Some(closed),
                Ok(_) => {}
                Err(_) => break None,
            }
        });

        handle.shutdown_gracefully();
        let (done_tx, done_rx) = mpsc::channel();
        let h = handle.clone();
        std::thread::spawn(move || {
            h.wait();
            done_tx.send(()).unwrap();
        });
        done_rx.recv_timeout(WAIT).expect("server stopped");
        let second = rx.try_recv().expect("left of the other client");
        assert_ne!(first, second);
        assert!(rx.try_recv().is_err(), "a client left twice");
        assert!(handle.shared.slots.read().unwrap().is_empty());
        assert!(handle.shared.finished.lock().unwrap().is_empty());
        let closed = answers_close.join().unwrap().expect("a close frame");
        assert_eq!(closed.code, 1001);
    }
}
