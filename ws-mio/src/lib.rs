//! # ws-mio: a single-threaded event-loop WebSocket server
//!
//! One mio `Poll`, every connection on one thread, no locks on the data path. The protocol lives
//! in [`ws_proto`]; this crate moves bytes between sockets and sessions, sleeps until the next
//! socket event or timer, and routes commands from callbacks and other threads.
//!
//! An echo server on a free port, a client talking to it (the blocking client of `ws-std`),
//! and a graceful shutdown (this example runs as a test):
//!
//! ```
//! use ws_mio::{Callbacks, CloseCode, Message, Server, ServerApi, ServerConfig};
//! use ws_std::client::{self, ClientEvent};
//!
//! let handler = Callbacks::new()
//!     .on_new_client(|api, client| api.send_text(client.id, "welcome"))
//!     .on_message(|api, client, message| api.send(client.id, message));
//! let server = Server::bind(ServerConfig::new(), handler)?; // 127.0.0.1, any free port
//! let handle = server.run_threaded()?; // or server.run_forever() to block
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
//! Switching to the thread-per-client server is a one-line change: `use ws_std::...` instead.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod event_loop;
#[path = "../../adapters/socket_io.rs"]
mod socket_io;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::{Poll, Waker};
use ws_proto::server::{Command, CommandSink, Lifecycle, ServerCore};

pub use ws_proto::server::exports::*;

/// State shared between the loop thread and every [`Handle`].
struct Shared {
    core: ServerCore,
    /// Commands from other threads, drained by the loop after each wake-up.
    queue: Mutex<Vec<Command>>,
    /// Whether `queue` holds anything; changed only with `queue` locked. The loop looks at it
    /// after every wake-up, and most have no command: a load, where locking was a tenth of the
    /// loop's own CPU time in a 16 KiB echo.
    queued: AtomicBool,
    waker: Waker,
    local_addr: SocketAddr,
    /// Stopped once the loop has finished (every "left" callback done).
    lifecycle: Lifecycle,
}

impl Shared {
    /// The commands other threads queued, oldest first; usually none, found without a lock.
    fn take_queued(&self) -> Vec<Command> {
        // A command pushed after this load also wakes the loop, which then looks again.
        if !self.queued.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.queued.store(false, Ordering::Relaxed);
        std::mem::take(&mut *q)
    }
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    event_loop: event_loop::EventLoop,
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
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), event_loop::WAKER)?;
        let shared = Arc::new(Shared {
            core,
            queue: Mutex::new(Vec::new()),
            queued: AtomicBool::new(false),
            waker,
            local_addr,
            lifecycle: Lifecycle::default(),
        });
        let event_loop = event_loop::EventLoop::new(poll, listener, shared.clone())?;
        log::info!("listening on {local_addr}");
        Ok(Server { shared, event_loop })
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

    /// Runs the event loop on this thread until the server is shut down.
    pub fn run_forever(self) -> io::Result<()> {
        let shared = self.shared.clone();
        let result = self.event_loop.run();
        shared.lifecycle.set_stopped();
        result
    }

    /// Runs the event loop on a new thread and returns a handle to it.
    pub fn run_threaded(self) -> io::Result<Handle> {
        let handle = self.handle();
        std::thread::Builder::new()
            .name("ws-mio".into())
            .spawn(move || {
                if let Err(e) = self.run_forever() {
                    log::error!("event loop failed: {e}");
                }
            })?;
        Ok(handle)
    }
}

/// A cloneable, `Send + Sync` handle: sends, broadcasts, publishes, closes and shuts down from
/// any thread (all of [`ServerApi`]). Commands are queued and the loop is woken; nothing here
/// ever waits for the loop.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl CommandSink for Handle {
    fn submit(&self, command: Command) {
        let was_empty = {
            let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push(command);
            self.shared.queued.store(true, Ordering::Release);
            q.len() == 1
        };
        // One wake-up per batch: the loop drains the whole queue when it wakes.
        if was_empty {
            if let Err(e) = self.shared.waker.wake() {
                log::error!("cannot wake the event loop: {e}");
            }
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

    /// Blocks until the server has stopped (after shutdown, every "left" callback done).
    pub fn wait(&self) {
        self.shared.lifecycle.wait_stopped();
    }

    /// Whether the event loop is still running.
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
