//! The event loop: accept, read until WouldBlock into the session, run callbacks and commands,
//! write until WouldBlock, sleep until the next socket event or timer.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustix::net::RecvFlags;
use ws_proto::connection::{Message, MessageRef};
use ws_proto::server::{
    AcceptRetry, Client, ClientId, Command, CommandSink, Notice, ServerCore, ServerError, Session,
    SessionStore, Shutdown, Slab, Timers,
};

use crate::socket_io::{self, recv};
use crate::Shared;

pub(crate) const WAKER: Token = Token(usize::MAX - 1);
const LISTENER: Token = Token(usize::MAX - 2);

/// One read buffer for all connections: idle connections hold no read buffer at all.
const READ_BUF: usize = 64 << 10;
/// Output that is written during a read loop rather than at the end of the wake-up: a write of
/// this much is worth its system call without more to join it, and going out at once frees the
/// buffers it holds while they are still in cache for the next read (a 16 KiB echo costs about
/// half a percent less CPU than when written at the end of the wake-up: scripts/bench-ab.sh).
const FLUSH_EARLY: usize = 8 << 10;

struct Conn {
    session: Session,
    stream: TcpStream,
    writable: bool,
    /// Listed in `dirty` (so it is listed once, with no sort or dedup per wake-up).
    dirty: bool,
    /// The earliest deadline this connection has in the timer heap.
    timer: Option<Instant>,
}

/// Commands issued by callbacks running on the loop thread: run right after the callback
/// returns, so no lock and no wake-up are needed.
struct LocalQueue {
    commands: RefCell<Vec<Command>>,
    shared: Arc<Shared>,
}

impl CommandSink for LocalQueue {
    fn submit(&self, command: Command) {
        self.commands.borrow_mut().push(command);
    }

    fn clients(&self) -> Vec<Client> {
        self.shared.core.clients()
    }
}

/// Gives ServerCore::execute access to sessions, and remembers which ones got output.
struct Store<'a> {
    conns: &'a mut Slab<Conn>,
    dirty: &'a mut Vec<ClientId>,
    now: Instant,
}

impl SessionStore for Store<'_> {
    fn with_session(&mut self, id: ClientId, f: &mut dyn FnMut(&mut Session)) {
        self.command_on(id, f);
    }
}

impl Store<'_> {
    /// Runs a command's `f` on the session of `id`, if it is still there, and lists the session
    /// for a flush.
    fn command_on<R>(&mut self, id: ClientId, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let c = self.conns.get_mut(id)?;
        // A close or a backpressure close started now must count its deadline from now, not
        // from this client's last input.
        c.session.connection_mut().set_time(self.now);
        let r = f(&mut c.session);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
        Some(r)
    }
}

/// The API of a callback that runs for one connection's event. Its sends go straight to the
/// receiving session, with no command queued, swapped and dispatched per message (the bulk of
/// an echo's user time). Everything else goes to the local queue, and so does a send issued
/// while queued commands wait, which keeps every command in the order it was issued.
struct Direct<'a> {
    queue: &'a LocalQueue,
    /// In a cell because the API is `&self`. A send runs no callback, so it is never borrowed
    /// twice; should it be, the command is queued instead.
    store: RefCell<Store<'a>>,
    /// Sends that failed: the error callback hears of them once this callback has returned.
    dropped: RefCell<Vec<Dropped>>,
}

/// A send that failed, for the error callback.
type Dropped = (Client, ServerError);

impl<'a> Direct<'a> {
    fn new(
        queue: &'a LocalQueue,
        conns: &'a mut Slab<Conn>,
        dirty: &'a mut Vec<ClientId>,
        now: Instant,
    ) -> Direct<'a> {
        Direct {
            queue,
            store: RefCell::new(Store { conns, dirty, now }),
            dropped: RefCell::default(),
        }
    }

    /// Sends `message` to `to` at once with `send`, unless commands wait ahead of it (or the
    /// store is in use): then it is queued, as `owned(message)`, behind them.
    fn send_or_queue<M>(
        &self,
        to: ClientId,
        message: M,
        send: fn(&mut Session, M) -> Option<Box<Dropped>>,
        owned: fn(M) -> Message,
    ) {
        if self.queue.commands.borrow().is_empty() {
            if let Ok(mut store) = self.store.try_borrow_mut() {
                if let Some(Some(failed)) = store.command_on(to, |s| send(s, message)) {
                    self.dropped.borrow_mut().push(*failed);
                }
                return;
            }
        }
        self.queue.submit(Command::Send(to, owned(message)));
    }

    /// Whether the callbacks left something to run before the next event: commands, or sends
    /// that failed.
    fn left_work(&self) -> bool {
        !self.queue.commands.borrow().is_empty() || !self.dropped.borrow().is_empty()
    }
}

impl CommandSink for Direct<'_> {
    fn submit(&self, command: Command) {
        match command {
            Command::Send(to, message) => self.submit_send(to, message),
            other => self.queue.submit(other),
        }
    }

    fn submit_send_ref(&self, to: ClientId, message: MessageRef<'_>) {
        self.send_or_queue(to, message, ServerCore::send_ref_now, |m| m.to_message());
    }

    fn submit_send(&self, to: ClientId, message: Message) {
        self.send_or_queue(to, message, ServerCore::send_now, |m| m);
    }

    fn clients(&self) -> Vec<Client> {
        self.queue.clients()
    }
}

/// What a socket's event reported.
#[derive(Clone, Copy)]
struct Ready {
    readable: bool,
    /// The peer's input has ended (FIN) or the socket has an error.
    ended: bool,
    writable: bool,
}

pub(crate) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    timers: Timers,
    read_buf: Vec<u8>,
    notices: Vec<Notice>,
    local: LocalQueue,
    /// The other half of `local.commands`: see `execute_local`.
    spare_commands: Vec<Command>,
    dirty: Vec<ClientId>,
    /// Graceful shutdown in progress, until this deadline.
    shutdown_deadline: Option<Instant>,
    /// When accepting failed for lack of file descriptors, try again at this time.
    accept_retry: AcceptRetry,
    stop: bool,
}

impl EventLoop {
    pub(crate) fn new(
        poll: Poll,
        mut listener: TcpListener,
        shared: Arc<Shared>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            spare_commands: Vec::new(),
            local: LocalQueue {
                commands: RefCell::new(Vec::new()),
                shared: shared.clone(),
            },
            shared,
            conns: Slab::default(),
            timers: Timers::default(),
            read_buf: vec![0; READ_BUF],
            notices: Vec::new(),
            dirty: Vec::new(),
            shutdown_deadline: None,
            accept_retry: AcceptRetry::default(),
            stop: false,
        })
    }

    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut now = Instant::now();
        while !self.stop {
            // From the time this wake-up's work started, not a fresh clock read: the sleep is
            // longer by that work's duration, the time by which timers are late anyway (they
            // run after it), and a message per wake-up saves a clock read.
            let timeout = self.poll_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(slot) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        // The peer's FIN (or an error) is in already: a short read then does
                        // not drain the socket, and no later edge announces what is left.
                        let ended = event.is_read_closed() || event.is_error();
                        let ready = Ready {
                            readable,
                            ended,
                            writable: event.is_writable(),
                        };
                        self.on_socket(slot, ready, now);
                    }
                }
            }
            self.run_commands(now);
            self.run_timers(now);
            if self.accept_retry.take_due(now) {
                self.accept(now);
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    self.stop = true;
                } else if deadline <= now {
                    log::info!(
                        "shutdown timeout: dropping {} remaining connections",
                        self.conns.len()
                    );
                    self.abort_all(now);
                }
            }
        }
        self.abort_all(Instant::now());
        log::info!("stopped");
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        let next = [
            self.timers.next_deadline(),
            self.shutdown_deadline,
            self.accept_retry.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Round up so a timer is never woken a hair early and then slept on again.
        Some(next.saturating_duration_since(now) + Duration::from_micros(500))
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => {
                    self.accept_retry.succeeded();
                    if !self.shared.core.accepts_socket(self.conns.len()) {
                        self.shared.core.log_drop(addr, self.conns.len(), now);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let core = &self.shared.core;
                    let id = self.conns.insert_with(|id| Conn {
                        session: core.new_session(id, addr, now),
                        stream,
                        writable: false,
                        dirty: false,
                        timer: None,
                    });
                    let conn = self.conns.get_mut(id).expect("just inserted");
                    if let Err(e) = self.poll.registry().register(
                        &mut conn.stream,
                        Token(id.slot()),
                        Interest::READABLE,
                    ) {
                        log::error!("{addr}: register failed: {e}");
                        self.conns.remove(id);
                        continue;
                    }
                    self.schedule(id);
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

    fn on_socket(&mut self, slot: usize, ready: Ready, now: Instant) {
        let Some((id, _)) = self.conns.get_slot_mut(slot) else {
            return;
        };
        if ready.readable {
            self.read(id, ready.ended, now);
            // Written at the end of this wake-up, with everything else it gets meanwhile (a
            // broadcast from another client's message, say): one write per socket per wake-up,
            // but for large output, written during the read (see `FLUSH_EARLY`).
            self.mark_dirty(id);
        } else if ready.writable {
            self.flush(id, now);
        }
    }

    /// Reads until WouldBlock, handing each chunk to the session and its callbacks at once, so
    /// memory stays bounded by one read however much the peer sends. `ended`: the event said the
    /// peer's input has ended, so reads go on until they say so too (see the short read below).
    fn read(&mut self, id: ClientId, ended: bool, now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(id) else {
                return;
            };
            if conn.session.connection().is_closed() {
                // Closed: only flushing remains; leave further input unread.
                return;
            }
            // A large payload goes straight into its message, and so does a mid-sized one the
            // previous message predicts; anything else goes through read_buf.
            let mut asked = 0;
            let stream = &mut conn.stream;
            let direct = conn.session.receive_direct(now, |space| {
                asked = space.len();
                recv(stream, space, RecvFlags::empty())
            });
            let direct = direct.or_else(|| {
                conn.session.receive_predicted(now, |buf| {
                    asked = buf.len();
                    recv(stream, buf, RecvFlags::empty())
                })
            });
            let (result, direct) = match direct {
                Some(r) => (r, true),
                None => {
                    asked = self.read_buf.len();
                    (
                        recv(&conn.stream, &mut self.read_buf, RecvFlags::empty()),
                        false,
                    )
                }
            };
            match result {
                Ok(0) => {
                    // Replies to what came before the FIN go out first, as far as the socket
                    // takes them now: the peer may have shut only its sending side.
                    self.flush(id, now);
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.session.receive_eof(now);
                        self.deliver(id, now);
                    }
                    return;
                }
                Ok(n) => {
                    if !direct {
                        // Taken out for the callbacks, which borrow `self`.
                        let mut buf = std::mem::take(&mut self.read_buf);
                        let used = self.deliver_in_place(id, &mut buf[..n], now);
                        let conn = self.conns.get_mut(id);
                        let rest = match conn {
                            Some(conn) if used < n => {
                                conn.session.receive(&buf[used..n], now);
                                true
                            }
                            // All taken in place: only a failure there (or a command) can have
                            // left an event.
                            Some(conn) => conn.session.connection().has_event(),
                            None => false,
                        };
                        self.read_buf = buf;
                        if rest {
                            self.deliver(id, now);
                        }
                    } else {
                        self.deliver(id, now);
                    }
                    // A peer sending a lot gets its replies written as they pile up, not only
                    // at the end of the wake-up.
                    if self
                        .conns
                        .get(id)
                        .is_some_and(|c| c.session.connection().buffered_amount() > FLUSH_EARLY)
                    {
                        self.flush(id, now);
                    }
                    // A short read drained the socket; epoll's edge trigger fires again for any
                    // later data or FIN, so the read that would only say WouldBlock is skipped.
                    // Not when the FIN came with this event: it is still to be read, and no
                    // edge will come for it.
                    if n < asked && !ended && cfg!(target_os = "linux") {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read error: {e}");
                    conn.session.receive_eof(now);
                    self.deliver(id, now);
                    return;
                }
            }
        }
    }

    /// Turns the session's events into callbacks, one event at a time: the commands a callback
    /// issues run before the next event is decoded, so replies keep the order of the input that
    /// caused them (an echo goes out before the reply to a close frame read with it). Nothing is
    /// written here; the caller flushes once.
    fn deliver(&mut self, id: ClientId, now: Instant) {
        loop {
            // Borrowed field by field, as in `deliver_in_place`.
            let core = &self.shared.core;
            let Some(conn) = self.conns.get_mut(id) else {
                return;
            };
            if !conn.session.process_next(core, &mut self.notices) {
                return;
            }
            let client = Arc::clone(conn.session.shared_client());
            let api = Direct::new(&self.local, &mut self.conns, &mut self.dirty, now);
            // One callback context serves event after event while the callbacks only send
            // (their sends ran at once): then nothing waits to run between two events.
            loop {
                core.notify(&api, &client, &mut self.notices);
                if api.left_work() {
                    break;
                }
                let more = match api.store.borrow_mut().conns.get_mut(id) {
                    Some(conn) => conn.session.process_next(core, &mut self.notices),
                    None => false,
                };
                if !more {
                    return;
                }
            }
            let dropped = api.dropped.into_inner();
            self.after_callbacks(dropped, now);
        }
    }

    /// Hands the whole small messages that start `data` (just read) to the callbacks where they
    /// lie, lent, and returns the bytes they took: the rest goes to the session as usual. See
    /// `deliver` for the order of callbacks and commands, which is the same.
    fn deliver_in_place(&mut self, id: ClientId, data: &mut [u8], now: Instant) -> usize {
        let mut pos = 0;
        loop {
            // Borrowed field by field (no `Arc` clone per read: an atomic increment and
            // decrement); `after_callbacks` below needs all of `self` again.
            let core = &self.shared.core;
            let Some(conn) = self.conns.get_mut(id) else {
                return pos;
            };
            let Some((mut message, used)) = conn.session.receive_in_place(&mut data[pos..], now)
            else {
                return pos;
            };
            pos += used;
            let client = Arc::clone(conn.session.shared_client());
            let api = Direct::new(&self.local, &mut self.conns, &mut self.dirty, now);
            loop {
                core.notify_message(&api, &client, message);
                if api.left_work() {
                    break;
                }
                let next = match api.store.borrow_mut().conns.get_mut(id) {
                    Some(conn) => conn.session.receive_in_place(&mut data[pos..], now),
                    None => None,
                };
                let Some((m, used)) = next else {
                    return pos;
                };
                message = m;
                pos += used;
            }
            let dropped = api.dropped.into_inner();
            self.after_callbacks(dropped, now);
        }
    }

    /// What the callbacks of a [`Direct`] context left: failed sends to report, then commands.
    fn after_callbacks(&mut self, dropped: Vec<Dropped>, now: Instant) {
        for (client, e) in dropped {
            self.shared
                .core
                .handler()
                .on_error(&self.local, Some(&client), &e);
        }
        self.execute_local(now);
    }

    /// Runs the commands callbacks issued on this thread.
    fn execute_local(&mut self, now: Instant) {
        loop {
            // The two lists trade places, so that neither is reallocated per message.
            let mut commands = std::mem::take(&mut self.spare_commands);
            std::mem::swap(&mut commands, &mut *self.local.commands.borrow_mut());
            if commands.is_empty() {
                self.spare_commands = commands;
                return;
            }
            for command in commands.drain(..) {
                self.execute(command, now);
            }
            self.spare_commands = commands;
        }
    }

    fn mark_dirty(&mut self, id: ClientId) {
        if let Some(c) = self.conns.get_mut(id) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    fn execute(&mut self, command: Command, now: Instant) {
        let mut store = Store {
            conns: &mut self.conns,
            dirty: &mut self.dirty,
            now,
        };
        match self.shared.core.execute(command, &mut store, &self.local) {
            Some(Shutdown::Graceful) => self.begin_graceful_shutdown(now),
            Some(Shutdown::Abrupt) => self.abort_all(now),
            None => {}
        }
    }

    /// Writes until WouldBlock, keeps WRITABLE interest only while output is pending, closes the
    /// transport when the session says so, and reschedules the timer.
    fn flush(&mut self, id: ClientId, now: Instant) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Err(e) = socket_io::write_output(&mut conn.session, &conn.stream) {
            log::debug!("{id}: write error: {e}");
            conn.session.receive_eof(now);
            self.deliver(id, now);
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.session.should_close_transport() {
            self.close(id);
            return;
        }
        let want = conn.session.wants_write();
        if want != conn.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut conn.stream, Token(id.slot()), interest)
            {
                log::error!("{id}: reregister failed: {e}");
            }
            conn.writable = want;
        }
        self.schedule(id);
    }

    fn schedule(&mut self, id: ClientId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Some(t) = conn.session.poll_timeout() {
            if conn.timer.is_none_or(|s| t < s) {
                conn.timer = Some(t);
                let conns = &self.conns;
                self.timers
                    .schedule(id, t, conns.len(), |id| conns.get(id).is_some());
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some((t, id)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            if conn.timer == Some(t) {
                conn.timer = None;
            }
            if conn.session.poll_timeout().is_some_and(|d| d <= now) {
                conn.session.handle_timeout(now);
                self.deliver(id, now);
                self.run_commands(now);
            }
            self.flush(id, now);
        }
    }

    /// Runs commands from callbacks and from other threads until none are left, then flushes the
    /// sessions they touched.
    fn run_commands(&mut self, now: Instant) {
        loop {
            self.execute_local(now);
            let remote = self.shared.take_queued();
            let had_remote = !remote.is_empty();
            for command in remote {
                self.execute(command, now);
                self.execute_local(now);
            }
            if self.dirty.is_empty() {
                if had_remote {
                    continue;
                }
                return;
            }
            let mut dirty = std::mem::take(&mut self.dirty);
            for &id in &dirty {
                if let Some(c) = self.conns.get_mut(id) {
                    c.dirty = false;
                }
                // A command may have ended the session (backpressure close): its callbacks run
                // now, not at the client's next read. Its input is decoded already (reads
                // deliver until nothing is left), so only a command's event can be waiting.
                if self
                    .conns
                    .get(id)
                    .is_some_and(|c| c.session.connection().has_event())
                {
                    self.deliver(id, now);
                }
                self.flush(id, now);
            }
            if self.dirty.is_empty() {
                dirty.clear();
                self.dirty = dirty;
            }
        }
    }

    fn begin_graceful_shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("graceful shutdown of {} connections", self.conns.len());
        self.stop_accepting();
        self.shutdown_deadline = Some(now + self.shared.core.config().shutdown_timeout);
        for id in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.session.connection_mut().set_time(now);
                conn.session.begin_shutdown();
            }
            self.deliver(id, now);
            self.flush(id, now);
        }
    }

    /// Drops every connection now; each announced client still gets its "left" callback.
    fn abort_all(&mut self, now: Instant) {
        self.stop_accepting();
        for id in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.session.connection_mut().abort();
            }
            self.deliver(id, now);
            self.close(id);
        }
        // Callbacks of departing clients may have queued commands; they find nobody now.
        self.local.commands.borrow_mut().clear();
        let _ = now;
        self.stop = true;
    }

    fn stop_accepting(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
    }

    fn close(&mut self, id: ClientId) {
        let Some(mut conn) = self.conns.remove(id) else {
            return;
        };
        if !conn.session.connection().is_closed() {
            conn.session.connection_mut().abort();
            conn.session.process(&self.shared.core, &mut self.notices);
            self.shared
                .core
                .notify(&self.local, conn.session.client(), &mut self.notices);
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
    }
}
