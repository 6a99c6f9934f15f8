//! The accept thread: accepts clients and starts their threads, turns socket readiness into
//! wake-ups of the client threads, joins the threads that ended, and carries out shutdowns.
//!
//! Client threads do all the I/O on their sockets, but they sleep in `park`, not in a poll of
//! their own: one `epoll` here watches every client socket (edge-triggered, readable and
//! writable), so a client costs exactly one file descriptor and any thread can wake a client
//! thread with a plain `unpark`.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use ws_proto::server::{ClientId, Shutdown, ACCEPT_RETRY};

use crate::{conn, Shared, Slot};

pub(crate) const WAKER: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// The stack of a client thread: a fraction of std's 2 MiB default, because there may be tens of
/// thousands of them. Only the pages a thread touches cost memory (about 12 KiB for an idle
/// client), so this bounds address space rather than RSS. It is not smaller because creating a
/// permessage-deflate compressor (miniz_oxide) builds a 64 KiB+ value on the stack, and a
/// debug build needs several times the stack of an optimised one.
pub(crate) const CLIENT_STACK: usize = if cfg!(debug_assertions) {
    1 << 20
} else {
    256 << 10
};

/// A started client thread.
struct Running {
    id: ClientId,
    thread: JoinHandle<()>,
    slot: Arc<Slot>,
}

pub(crate) struct Poller {
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    /// Client threads by slot: the accept thread alone starts and joins them.
    threads: Vec<Option<Running>>,
    live: usize,
    shutdown_deadline: Option<Instant>,
    aborted: bool,
    /// When accepting failed for lack of file descriptors, try again at this time.
    accept_retry: Option<Instant>,
}

impl Poller {
    pub(crate) fn new(
        poll: Poll,
        mut listener: TcpListener,
        shared: Arc<Shared>,
    ) -> io::Result<Poller> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Poller {
            poll,
            listener: Some(listener),
            shared,
            threads: Vec::new(),
            live: 0,
            shutdown_deadline: None,
            aborted: false,
            accept_retry: None,
        })
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let result = loop {
            let now = Instant::now();
            self.reap();
            self.carry_out_shutdown(now);
            if (self.aborted || self.shutdown_deadline.is_some()) && self.live == 0 {
                break Ok(());
            }
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                self.accept(now);
            }
            let timeout = [self.shutdown_deadline, self.accept_retry]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t.saturating_duration_since(now) + Duration::from_millis(1));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(Instant::now()),
                    WAKER => {}
                    Token(slot) => {
                        // A stale token (its client gone, the slot reused) only costs the new
                        // client a spurious turn.
                        if let Some(Some(r)) = self.threads.get(slot) {
                            let mut ready = 0;
                            if event.is_readable() {
                                ready |= conn::READABLE;
                            }
                            if event.is_read_closed() || event.is_error() {
                                ready |= conn::READABLE | conn::READ_CLOSED;
                            }
                            if ready != 0 {
                                r.slot.ready.fetch_or(ready, Ordering::Release);
                            }
                            r.thread.thread().unpark();
                        }
                    }
                }
            }
        };
        if result.is_err() {
            self.abort_all();
        }
        self.join_all();
        log::info!("stopped");
        result
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if !self.shared.core.accepts_socket(self.live) {
                        log::warn!("{addr}: dropped, {} sockets open", self.live);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let core = &self.shared.core;
                    let id = {
                        let mut slots =
                            self.shared.slots.write().unwrap_or_else(|p| p.into_inner());
                        slots.insert_with(|id| {
                            Arc::new(Slot {
                                session: core.new_session(id, addr, now).into(),
                                thread: Default::default(),
                                // The first turn reads whatever came before registration.
                                ready: conn::READABLE.into(),
                            })
                        })
                    };
                    // Registered before the thread starts, so no readiness edge can be missed.
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(id.slot()),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    let started = registered.and_then(|()| self.spawn(id, stream));
                    if let Err(e) = started {
                        log::error!("{addr}: cannot start a client thread: {e}");
                        self.remove_slot(id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE: the backlog keeps the clients; try again shortly.
                    log::error!("accept failed: {e}");
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    break;
                }
            }
        }
    }

    fn spawn(&mut self, id: ClientId, stream: mio::net::TcpStream) -> io::Result<()> {
        let slot = self.shared.slot(id).expect("just inserted");
        let shared = self.shared.clone();
        let mut builder = std::thread::Builder::new().name("ws-std-client".into());
        if std::env::var_os("RUST_MIN_STACK").is_none() {
            builder = builder.stack_size(CLIENT_STACK);
        }
        let running_slot = slot.clone();
        let thread = builder.spawn(move || conn::run(shared, slot, stream))?;
        let i = id.slot();
        if self.threads.len() <= i {
            self.threads.resize_with(i + 1, || None);
        }
        self.threads[i] = Some(Running {
            id,
            thread,
            slot: running_slot,
        });
        self.live += 1;
        Ok(())
    }

    /// Joins the client threads that said they ended, and frees their slots.
    fn reap(&mut self) {
        let finished = std::mem::take(
            &mut *self
                .shared
                .finished
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for id in finished {
            let entry = &mut self.threads[id.slot()];
            if let Some(r) = entry.take_if(|r| r.id == id) {
                if r.thread.join().is_err() {
                    log::error!("{id}: client thread panicked");
                }
                self.live -= 1;
            }
            // Only now may the slot (and so the id's token) be reused.
            self.remove_slot(id);
        }
    }

    fn remove_slot(&self, id: ClientId) {
        let mut slots = self.shared.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.remove(id);
    }

    fn carry_out_shutdown(&mut self, now: Instant) {
        let requested = self.shared.lifecycle.requested();
        match requested {
            Some(Shutdown::Graceful) if self.shutdown_deadline.is_none() && !self.aborted => {
                log::info!("graceful shutdown of {} connections", self.live);
                self.stop_accepting();
                self.shutdown_deadline = Some(now + self.shared.core.config().shutdown_timeout);
                for slot in self.shared.all_slots() {
                    let mut s = slot.lock();
                    // Starts the close timer from now, not from the client's last input.
                    s.connection_mut().set_time(now);
                    s.begin_shutdown();
                    drop(s);
                    slot.wake();
                }
            }
            Some(Shutdown::Abrupt) if !self.aborted => self.abort_all(),
            _ => {}
        }
        if !self.aborted && self.shutdown_deadline.is_some_and(|d| d <= now) && self.live > 0 {
            log::info!(
                "shutdown timeout: dropping {} remaining connections",
                self.live
            );
            self.abort_all();
        }
    }

    /// Drops every connection now: each client thread wakes, finds its session closed,
    /// delivers the "left" callback and ends.
    fn abort_all(&mut self) {
        self.stop_accepting();
        self.aborted = true;
        for slot in self.shared.all_slots() {
            slot.lock().connection_mut().abort();
            slot.wake();
        }
    }

    fn stop_accepting(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    fn join_all(&mut self) {
        for r in self.threads.drain(..).flatten() {
            if r.thread.join().is_err() {
                log::error!("{}: client thread panicked", r.id);
            }
        }
        self.live = 0;
        self.shared
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
