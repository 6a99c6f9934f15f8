//! The accept thread: accepts clients and starts their threads, writes what other threads queued
//! for sleeping clients and what could not be written at once, runs every session's timers,
//! joins the threads that ended, and carries out shutdowns.
//!
//! Client threads block in `read` on their own sockets (with no timeout) and write their own
//! replies. One `epoll` here watches every client socket for writability only (edge-triggered,
//! registered once): a write that would have blocked is finished here when the socket drains, so
//! a client costs exactly one file descriptor, no thread ever waits for a slow reader, and a
//! client's own traffic never involves this thread.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use socket2::SockRef;
use ws_proto::server::{AcceptRetry, ClientId, Shutdown, Timers};

use crate::{conn, Reader, Shared, Slot, State};

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
    accept_retry: AcceptRetry,
    /// Deadlines of sleeping clients (stale entries only cost a look at the session).
    timers: Timers,
    /// The list of clients with output to write, swapped with the shared one (no allocation).
    dirty: Vec<ClientId>,
    /// Stack size of client threads; `None` leaves it to std (`RUST_MIN_STACK`).
    pub(crate) stack: Option<usize>,
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
            accept_retry: AcceptRetry::default(),
            timers: Timers::default(),
            dirty: Vec::new(),
            stack: std::env::var_os("RUST_MIN_STACK")
                .is_none()
                .then_some(CLIENT_STACK),
        })
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let result = loop {
            let now = Instant::now();
            self.reap();
            self.write_dirty(now);
            // Before the shutdown timeout: a close timer due at the same moment reports why.
            self.run_timers(now);
            self.carry_out_shutdown(now);
            if (self.aborted || self.shutdown_deadline.is_some()) && self.live == 0 {
                break Ok(());
            }
            if self.accept_retry.take_due(now) {
                self.accept(now);
            }
            let timeout = [
                self.shutdown_deadline,
                self.accept_retry.deadline(),
                self.timers.next_deadline(),
            ]
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
                        // client a look at its output.
                        if let Some(Some(r)) = self.threads.get(slot) {
                            let slot = r.slot.clone();
                            let id = r.id;
                            self.touch(id, &slot, Instant::now(), |_| true);
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

    /// Changes a client's session with `f` as any other thread would (`f` returns false if it
    /// had nothing to do), then writes its output and keeps its timer.
    fn touch(
        &mut self,
        id: ClientId,
        slot: &Slot,
        now: Instant,
        f: impl FnOnce(&mut State) -> bool,
    ) {
        let timer = {
            let mut st = slot.lock();
            if !f(&mut st) {
                return;
            }
            slot.settle(&mut st, now, true).timer
        };
        if let Some(at) = timer {
            self.schedule(id, at);
        }
    }

    /// Adds a deadline of `id` to the timers.
    fn schedule(&mut self, id: ClientId, at: Instant) {
        let shared = &self.shared;
        self.timers
            .schedule(id, at, self.live, |id| shared.slot(id).is_some());
    }

    /// Writes the output other threads queued for sleeping clients.
    fn write_dirty(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        std::mem::swap(
            &mut dirty,
            &mut *self.shared.dirty.lock().unwrap_or_else(|p| p.into_inner()),
        );
        for &id in &dirty {
            if let Some(slot) = self.shared.slot(id) {
                self.touch(id, &slot, now, |st| {
                    st.dirty = false;
                    true
                });
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Runs the timers that are due: every session's timers run here (keepalive pings,
    /// handshake, pong and close deadlines), so client threads block in `read` with no timeout
    /// and a busy client's deadline, which moves with every message, costs nothing until it
    /// comes due.
    fn run_timers(&mut self, now: Instant) {
        let asked =
            std::mem::take(&mut *self.shared.timers.lock().unwrap_or_else(|p| p.into_inner()));
        for (at, id) in asked {
            self.schedule(id, at);
        }
        while let Some((at, id)) = self.timers.pop_due(now) {
            let Some(slot) = self.shared.slot(id) else {
                continue;
            };
            self.touch(id, &slot, now, |st| {
                if st.timer != Some(at) {
                    // Superseded by an earlier deadline, which has run already.
                    return false;
                }
                st.timer = None;
                if st.session.poll_timeout().is_some_and(|t| t <= now) {
                    st.session.handle_timeout(now);
                }
                true
            });
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    self.accept_retry.succeeded();
                    if !self.shared.core.accepts_socket(self.live) {
                        self.shared.core.log_drop(addr, self.live, now);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // The client thread blocks in `read`; writes pass MSG_DONTWAIT instead.
                    if let Err(e) = SockRef::from(&stream).set_nonblocking(false) {
                        log::error!("{addr}: cannot make the socket blocking: {e}");
                        continue;
                    }
                    let core = &self.shared.core;
                    let registry = self.poll.registry();
                    let mut registered = Ok(());
                    let mut handshake_timer = None;
                    let id = {
                        let mut slots =
                            self.shared.slots.write().unwrap_or_else(|p| p.into_inner());
                        slots.insert_with(|id| {
                            // Once, for writability only: an edge comes only after a write
                            // would have blocked, so the readers' traffic costs nothing here.
                            registered = registry.register(
                                &mut stream,
                                Token(id.slot()),
                                Interest::WRITABLE,
                            );
                            let mut session = core.new_session(id, addr, now);
                            // This client's thread writes most of its output: see
                            // `Connection::keep_output_buffers`.
                            session.connection_mut().keep_output_buffers(true);
                            let mut state = State {
                                session,
                                reader: Reader::Turning,
                                timer: None,
                                dirty: false,
                                read_shut: false,
                                write_shut: false,
                            };
                            handshake_timer = state.schedule();
                            Arc::new(Slot {
                                state: state.into(),
                                stream,
                                thread: Default::default(),
                            })
                        })
                    };
                    if let Some(at) = handshake_timer {
                        self.schedule(id, at);
                    }
                    let started = registered.and_then(|()| self.spawn(id));
                    if let Err(e) = started {
                        log::error!("{addr}: cannot start a client thread: {e}");
                        if let Some(slot) = self.remove_slot(id) {
                            self.refuse(&slot.stream);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE: the backlog keeps the clients; try again shortly.
                    self.accept_retry.failed(&e, now);
                    break;
                }
            }
        }
    }

    fn spawn(&mut self, id: ClientId) -> io::Result<()> {
        let slot = self.shared.slot(id).expect("just inserted");
        let shared = self.shared.clone();
        let mut builder = std::thread::Builder::new().name("ws-std-client".into());
        if let Some(stack) = self.stack {
            builder = builder.stack_size(stack);
        }
        let running_slot = slot.clone();
        let thread = builder.spawn(move || conn::run(shared, slot))?;
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

    fn remove_slot(&self, id: ClientId) -> Option<Arc<Slot>> {
        let mut slots = self.shared.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.remove(id)
    }

    /// Answers a client that got no thread with a 503 rather than a bare reset, best effort:
    /// the socket is new, so its send buffer has room. What the client sent already is read
    /// first, since closing a socket with unread input resets the connection.
    fn refuse(&self, stream: &mio::net::TcpStream) {
        let Some(answer) = self.shared.core.refusal() else {
            return;
        };
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match rustix::net::recv(stream, &mut sink, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) if n > 0 => {}
                _ => break,
            }
        }
        let _ = rustix::net::send(stream, &answer, crate::socket_io::SEND_FLAGS);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }

    fn carry_out_shutdown(&mut self, now: Instant) {
        let requested = self.shared.lifecycle.requested();
        match requested {
            Some(Shutdown::Graceful) if self.shutdown_deadline.is_none() && !self.aborted => {
                log::info!("graceful shutdown of {} connections", self.live);
                self.stop_accepting();
                self.shutdown_deadline = Some(now + self.shared.core.config().shutdown_timeout);
                for (id, slot) in self.shared.all_slots() {
                    self.touch(id, &slot, now, |st| {
                        // Starts the close timer from now, not from the client's last input.
                        st.session.connection_mut().set_time(now);
                        st.session.begin_shutdown();
                        true
                    });
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

    /// Drops every connection now: each client thread wakes (its socket shut down), finds its
    /// session closed, delivers the "left" callback and ends.
    fn abort_all(&mut self) {
        self.stop_accepting();
        self.aborted = true;
        let now = Instant::now();
        for (id, slot) in self.shared.all_slots() {
            self.touch(id, &slot, now, |st| {
                st.session.connection_mut().abort();
                true
            });
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
