//! # ws-std: a thread-per-client WebSocket server
//!
//! Every client gets its own thread, which blocks reading that client's socket and writes the
//! replies; one more thread accepts connections, runs timers and writes what other threads sent.
//! Callbacks run on the client's thread, so a slow callback delays only its own client. The protocol lives in [`ws_proto`]; the configuration, callbacks and API are the
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
//! Client threads have a 256 KiB stack (1 MiB in debug builds; set `RUST_MIN_STACK`, or
//! [`Server::client_stack_size`], to use another size), so keep deep recursion and large stack
//! arrays out of callbacks. A client whose thread cannot be started gets a 503.
//!
//! An idle client costs one thread, one socket (no other file descriptor) and its session; it
//! holds no read buffer. That is about 16.5 KiB of RSS per idle client, 12 KiB of it the
//! thread's stack, measured with 10,000 idle connections (`ws-load --scenario idle` against
//! the `echo` example, release build). The thread count is bounded by the system: each thread
//! takes two memory mappings (`vm.max_map_count`) and counts against the thread limit.
//!
//! An echo costs what it costs a plain blocking server: one read, one write, one wake-up of the
//! client's thread. Sends from other threads queue bytes on the client's session; the accept
//! thread writes them, once per socket for everything queued since it last looked, and never
//! blocks on a socket, so a client that stops reading cannot block anyone. Its queue is bounded
//! by [`ServerConfig::backpressure`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod conn;
mod poller;
#[path = "../../adapters/socket_io.rs"]
mod socket_io;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::Thread;
use std::time::Instant;

use mio::net::TcpStream;
use ws_proto::server::{
    Command, CommandSink, Lifecycle, ServerCore, Session, SessionStore, Shutdown, Slab,
};
use ws_proto::MessageRef;

pub use ws_proto::server::exports::*;

/// One client as every thread sees it. Its thread reads the socket; any thread that changes the
/// session writes to it (without blocking) or shuts it down.
struct Slot {
    state: Mutex<State>,
    /// Blocking: only the client thread reads, and writes pass `MSG_DONTWAIT`.
    stream: TcpStream,
    /// Set by the client thread before its first turn, to be unparked while it waits for the
    /// last of its output to be written.
    thread: OnceLock<Thread>,
}

/// What the session lock guards.
struct State {
    session: Session,
    reader: Reader,
    /// The deadline at which the accept thread looks at this session next: its live entry in
    /// the accept thread's timer heap (entries that differ from it are stale).
    timer: Option<Instant>,
    /// The session is on the accept thread's list of output to write.
    dirty: bool,
    /// `shutdown(Read)` was called to wake the reader: a read of 0 bytes is ours, not the peer's
    /// end of stream (which would discard the output still to write).
    read_shut: bool,
    /// The transport was shut down for good.
    write_shut: bool,
}

impl State {
    /// Keeps the accept thread's timer for this session no later than the session's next
    /// deadline. Returns the moment to add to the heap when it must move earlier: only then
    /// (a close, a new connection), since deadlines that move later (the keepalive, on every
    /// message) are found moved when the old entry comes due.
    fn schedule(&mut self) -> Option<Instant> {
        let due = self.session.poll_timeout()?;
        if self.timer.is_some_and(|t| t <= due) {
            return None;
        }
        self.timer = Some(due);
        Some(due)
    }
}

/// Work for the accept thread that a change to a session left.
#[derive(Default)]
struct Settled {
    /// A moment to add to its timers.
    timer: Option<Instant>,
    /// The session has output to write: add it to its list.
    dirty: bool,
}

/// What the client thread is doing, so that a thread that changes the session knows what is
/// left for it to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// In a turn: it writes the output and looks at the session's end before it sleeps again,
    /// so the others only queue.
    Turning,
    /// Blocked in `read` (or parked, once only output remains): whoever changes the session
    /// writes its output, and wakes the reader when the session has ended.
    Asleep,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock, so a poisoned session is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the transport: the reader's blocked `read` returns 0, the peer sees our FIN.
    fn shut(&self, st: &mut State, how: std::net::Shutdown) {
        if let Err(e) = self.stream.shutdown(how) {
            // ENOTCONN: the peer is gone already, which woke the reader.
            log::trace!("{}: shutdown: {e}", st.session.id());
        }
        st.read_shut = true;
        if how == std::net::Shutdown::Both {
            st.write_shut = true;
        }
    }

    /// What falls to the thread that changed the session while the client thread sleeps: the
    /// output is written (by the accept thread: `write` is false elsewhere, see
    /// [`SessionStore::with_session`]), and the client thread is woken when the session has
    /// ended, so that it runs the "left" callback. Returns what the accept thread must do.
    fn settle(&self, st: &mut State, now: Instant, write: bool) -> Settled {
        let mut settled = Settled::default();
        if st.reader == Reader::Asleep {
            if write {
                flush(&mut st.session, &self.stream, now);
            } else if st.session.wants_write() && !st.dirty {
                st.dirty = true;
                settled.dirty = true;
            }
            if st.session.should_close_transport() {
                if !st.write_shut {
                    self.shut(st, std::net::Shutdown::Both);
                }
                self.unpark();
                return settled;
            }
            if st.session.connection().is_closed() {
                // Its input no longer matters; the reader then waits in `park` for the output.
                if !st.read_shut {
                    self.shut(st, std::net::Shutdown::Read);
                }
                self.unpark();
            }
        }
        settled.timer = st.schedule();
        settled
    }

    fn unpark(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Writes the session's output until the socket would block; the socket is registered for
/// writability (edge-triggered) with the accept thread, which flushes again once it drains. A
/// failed write ends the transport.
fn flush(s: &mut Session, stream: &TcpStream, now: Instant) {
    if let Err(e) = socket_io::write_output(s, stream) {
        log::debug!("{}: write error: {e}", s.id());
        s.receive_eof(now);
    }
}

/// State shared by the accept thread, the client threads and every [`Handle`].
struct Shared {
    core: ServerCore,
    slots: RwLock<Slab<Arc<Slot>>>,
    /// Wakes the accept thread (shutdown requests, finished client threads, timers).
    waker: mio::Waker,
    /// Client threads that have ended and wait to be joined by the accept thread.
    finished: Mutex<Vec<ClientId>>,
    /// Deadlines that moved earlier on other threads, for the accept thread's timer heap.
    timers: Mutex<Vec<(Instant, ClientId)>>,
    /// Sleeping clients that other threads queued output for, for the accept thread to write.
    dirty: Mutex<Vec<ClientId>>,
    /// Big read buffers for clients that stream data in.
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Big read buffers out of the pool (held by streaming clients, even while they block).
    lent: AtomicUsize,
    /// Client threads neither blocked in a read nor parked: with fewer than two, a thread that
    /// yields to the others would find none to run (see `conn::ClientThread::yield_for_input`).
    awake: AtomicUsize,
    lifecycle: Lifecycle,
    local_addr: SocketAddr,
}

impl Shared {
    fn slot(&self, id: ClientId) -> Option<Arc<Slot>> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(id).cloned()
    }

    fn all_slots(&self) -> Vec<(ClientId, Arc<Slot>)> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.iter().map(|(id, s)| (id, s.clone())).collect()
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

    /// Asks the accept thread to look at the timers of `id` at `at`.
    fn schedule(&self, at: Instant, id: ClientId) {
        self.timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((at, id));
        self.wake_poller();
    }

    /// A big read buffer, unless too many are out already (the caller reads with its small one).
    fn take_buffer(&self) -> Option<Vec<u8>> {
        if self.lent.fetch_add(1, Ordering::Relaxed) >= conn::MAX_LENT_BUFFERS {
            self.lent.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let pooled = self.buffers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        Some(pooled.unwrap_or_else(|| vec![0; conn::BIG_READ]))
    }

    fn give_buffer(&self, buf: Vec<u8>) {
        self.lent.fetch_sub(1, Ordering::Relaxed);
        let mut pool = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < conn::POOLED_BUFFERS {
            pool.push(buf);
        }
    }

    fn set_stopped(&self) {
        self.lifecycle.set_stopped();
    }
}

/// Runs a command's closure on a session. What it queued for a sleeping client is written by
/// the accept thread, not here: a broadcast from one client's callback would otherwise cost a
/// system call per recipient, while the accept thread writes each socket once for all the
/// messages queued since it last looked.
impl SessionStore for &Shared {
    fn with_session(&mut self, id: ClientId, f: &mut dyn FnMut(&mut Session)) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        let settled = {
            let mut st = slot.lock();
            let now = Instant::now();
            // The connection's clock only moves on input; a command such as close must not
            // start its timer from the last time this (maybe long idle) client spoke.
            st.session.connection_mut().set_time(now);
            f(&mut st.session);
            slot.settle(&mut st, now, false)
        };
        if settled.dirty {
            let first = {
                let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                dirty.push(id);
                dirty.len() == 1
            };
            if first {
                self.wake_poller();
            }
        }
        if let Some(at) = settled.timer {
            self.schedule(at, id);
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
            timers: Mutex::new(Vec::new()),
            dirty: Mutex::new(Vec::new()),
            buffers: Mutex::new(Vec::new()),
            lent: AtomicUsize::new(0),
            awake: AtomicUsize::new(0),
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

    /// Sets the stack size of client threads, where the callbacks run: by default 256 KiB (1 MiB
    /// in debug builds), or std's `RUST_MIN_STACK` when that is set. Only the pages a thread
    /// touches take memory, so a larger stack for deep callbacks mostly costs address space.
    /// A client whose thread cannot be started (no memory, or the system's thread limit) is
    /// answered with 503 and closed; the others are unaffected.
    ///
    /// ```no_run
    /// use ws_std::{Server, ServerConfig};
    /// # struct App;
    /// # impl ws_std::Handler for App {}
    /// let server = Server::bind(ServerConfig::default(), App)?.client_stack_size(2 << 20);
    /// server.run_forever()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn client_stack_size(mut self, bytes: usize) -> Server {
        self.poller.stack = Some(bytes);
        self
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

    fn submit_send_ref(&self, to: ClientId, message: MessageRef<'_>) {
        let shared: &Shared = &self.shared;
        shared.core.send_ref(&mut &*shared, self, to, message);
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

    use ws_proto::{ClientRequest, Config};

    use super::*;
    use crate::client::{Client, ClientEvent};

    const WAIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_close_from_another_thread_times_out_while_the_client_thread_sleeps_in_read() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let handler = Callbacks::new()
            .on_new_client(|api, client| api.send_text(client.id, "hello"))
            .on_client_left(move |_, _, closed| {
                tx.lock()
                    .unwrap()
                    .send((Instant::now(), closed.clone()))
                    .unwrap()
            });
        let close_timeout = Duration::from_millis(300);
        let config = ServerConfig::new()
            .keepalive(Duration::from_secs(60), Duration::from_secs(60))
            .shutdown_timeout(close_timeout);
        let server = Server::bind(config, handler).unwrap();
        let handle = server.run_threaded().unwrap();
        let mut silent = plain_client(handle.local_addr());
        // Its thread now sleeps in read until the keepalive, a minute away.
        assert_eq!(
            silent.recv().unwrap(),
            ClientEvent::Message(Message::Text("hello".into()))
        );
        let id = ServerApi::clients(&handle)[0].id;
        let start = Instant::now();
        handle.close(id, CloseCode::NORMAL, "bye");
        // The client never answers: the close timer ends the connection.
        let (left, closed) = rx.recv_timeout(WAIT).expect("left");
        let took = left - start;
        assert!(took >= close_timeout, "{took:?}");
        assert!(took < close_timeout + Duration::from_secs(2), "{took:?}");
        assert_eq!(closed.code, 1000);
        handle.shutdown_abruptly();
        handle.wait();
    }

    #[test]
    fn large_messages_read_straight_into_their_buffers_echo_intact() {
        let handler =
            Callbacks::new().on_message(|api, client, message| api.send(client.id, message));
        let server = Server::bind(ServerConfig::new(), handler).unwrap();
        let handle = server.run_threaded().unwrap();
        let mut c = plain_client(handle.local_addr());
        // From the second message on, the payload is read into the buffer of one sent before.
        for i in 0..4u8 {
            let payload: Vec<u8> = (0..3 << 20).map(|j: u32| (j % 251) as u8 ^ i).collect();
            c.send_binary(&payload).unwrap();
            match c.recv().unwrap() {
                ClientEvent::Message(Message::Binary(b)) => assert!(b == payload, "message {i}"),
                other => panic!("{other:?}"),
            }
        }
        handle.shutdown_abruptly();
        handle.wait();
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

    #[test]
    fn a_client_whose_thread_cannot_start_gets_a_503_and_the_server_carries_on() {
        use std::io::{Read, Write};
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let handler = Callbacks::new().on_error(move |_, _, e| {
            let _ = tx.lock().unwrap().send(e.to_string());
        });
        // Larger than any address space: every client thread fails to start.
        let server = Server::bind(ServerConfig::new(), handler)
            .unwrap()
            .client_stack_size(1 << 60);
        let handle = server.run_threaded().unwrap();
        for _ in 0..2 {
            let mut raw = std::net::TcpStream::connect(handle.local_addr()).unwrap();
            raw.set_read_timeout(Some(WAIT)).unwrap();
            let request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                           Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
            // The answer may come before the request is sent: both orders are fine.
            let _ = raw.write_all(request.as_bytes());
            let mut answer = Vec::new();
            let _ = raw.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
            assert!(answer.contains("Retry-After: 1\r\n"), "{answer:?}");
        }
        assert!(ServerApi::clients(&handle).is_empty());
        assert_eq!(handle.shared.slots.read().unwrap().len(), 0, "slots freed");
        assert!(
            rx.try_recv().is_err(),
            "no callback for a client never served"
        );
        handle.shutdown_abruptly();
        handle.wait();
    }
}
