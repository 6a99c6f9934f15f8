//! A client's thread: the only reader of the client's socket. It blocks in `read`, hands what it
//! read to the session, runs the callbacks with no lock held, writes the session's output, and
//! reads again.
//!
//! A message therefore costs what it costs a plain blocking server: one `read`, one write, one
//! context switch (under load mostly a yield instead of a sleep and a wake-up: see
//! `ClientThread::yield_for_input`). Other threads never wake this one to write (what they queue
//! while it sleeps is written by the accept thread, see `Slot::settle`) nor for timers (the
//! accept thread runs them): only to end.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use rustix::net::RecvFlags;
use ws_proto::server::{Client, ClientId, Notice, Session};

use crate::socket_io::recv;
use crate::{flush, Handle, Reader, Shared, Slot, State};

/// Read buffer while a client is quiet: on the stack, so an idle client holds none. Small, since
/// every stack page a thread ever touches stays resident: at 4 KiB an idle client costs one more
/// page (19.8 against 15.8 KiB of RSS per idle client); 2 KiB costs none and holds a batch of
/// pipelined small messages whole (sixteen 64-byte ones are 1,120 bytes with their headers: with
/// 1 KiB they took two reads and a yield per batch, and 1.7× the CPU). Bigger reads borrow a
/// pooled buffer.
const SMALL_READ: usize = 2 << 10;
/// Read buffer while data streams in (a read filled the small one), borrowed from a pool for as
/// long as reads keep coming in bigger than the small buffer.
pub(crate) const BIG_READ: usize = 64 << 10;
/// Most bytes read straight into a message per read (see `ClientThread::read_direct`): bounds
/// the time the session lock is held for the copy (about 10 µs), which other threads may wait
/// for.
const DIRECT_READ: usize = 128 << 10;
/// Most big buffers kept for reuse.
pub(crate) const POOLED_BUFFERS: usize = 64;
/// Most big buffers out at once. A streaming client keeps its buffer while it blocks for the next
/// read (returning it there would cost a system call's worth of pool traffic per read), so this
/// bounds their memory (16 MiB); past it, clients read `SMALL_READ` bytes at a time.
pub(crate) const MAX_LENT_BUFFERS: usize = 256;

struct ClientThread {
    id: ClientId,
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    api: Handle,
    notices: Vec<Notice>,
    /// Who the callbacks are told about; it changes only when the handshake completes.
    client: Option<Client>,
    /// The big read buffer, while the client streams (empty otherwise).
    big: Vec<u8>,
    /// The last read emptied the socket (it did not fill its buffer): the next one would likely
    /// sleep, so the thread yields first (see `yield_for_input`).
    drained: bool,
}

/// How the client thread sleeps after a turn.
enum Sleep {
    /// Blocks in `read`.
    Read,
    /// Only output remains: waits for the thread that writes its last byte, or whose timer
    /// ends the transport.
    Park,
}

/// The body of a client thread.
pub(crate) fn run(shared: Arc<Shared>, slot: Arc<Slot>) {
    shared.awake.fetch_add(1, Ordering::Relaxed);
    let _ = slot.thread.set(std::thread::current());
    let id = slot.lock().session.id();
    let mut t = ClientThread {
        id,
        api: Handle {
            shared: shared.clone(),
        },
        shared,
        slot,
        notices: Vec::new(),
        client: None,
        big: Vec::new(),
        drained: true,
    };
    if panic::catch_unwind(AssertUnwindSafe(|| t.serve())).is_err() {
        log::error!("{id}: a callback panicked; dropping the client");
    }
    t.finish();
}

impl ClientThread {
    /// Turns until the session says the transport is done.
    fn serve(&mut self) {
        let mut small = [0u8; SMALL_READ];
        loop {
            self.deliver();
            if self.yield_for_input(&mut small) {
                continue;
            }
            let Some(sleep) = self.end_turn() else {
                return;
            };
            match sleep {
                Sleep::Park => {
                    asleep(&self.shared, std::thread::park);
                    self.slot.lock().reader = Reader::Turning;
                }
                Sleep::Read => {
                    self.read(&mut small, RecvFlags::empty());
                }
            }
        }
    }

    /// Sleeping in `read` and being woken for the next message is the dearest part of a
    /// message here: a context switch plus a wake-up from the CPU the data came in on, about a
    /// fifth of the CPU time of a 64-byte echo. So a thread that emptied its socket, while
    /// other client threads are awake, writes its replies, lets those run first (`yield_now`),
    /// and then reads without waiting: under load its next message is often in by then
    /// (64-byte echo, 100 clients: 0.97 sleeps per message without this, under 0.1 with it).
    /// The thread stays the session's writer meanwhile, so what others send it in that time
    /// goes out with its own output rather than through the accept thread (yielding as a
    /// sleeping reader made fan-out three times dearer). A yield that finds nothing costs two
    /// system calls more than sleeping at once; with no other client thread awake there is
    /// nothing to yield to, and it is skipped. Not while streaming: a read that filled its
    /// buffer finds more anyway, and yields between the reads of a large message were seen to
    /// hold one connection's transfer back for seconds. Returns whether it read anything.
    fn yield_for_input(&mut self, small: &mut [u8; SMALL_READ]) -> bool {
        if !self.drained || self.shared.awake.load(Ordering::Relaxed) < 2 {
            return false;
        }
        let now = Instant::now();
        let timer = {
            let mut st = self.slot.lock();
            let s = &mut st.session;
            // As `end_turn` before a sleep, but the reader stays awake: a client whose messages
            // keep coming may not reach `end_turn` for a long time.
            tend(s, &self.slot.stream, now);
            let c = s.connection();
            if c.has_event() || c.is_closed() || s.should_close_transport() {
                return false;
            }
            st.schedule()
        };
        self.schedule(timer);
        std::thread::yield_now();
        self.read(small, RecvFlags::DONTWAIT)
    }

    /// Writes the output, with the lock that also tells the other threads that the reader
    /// sleeps. `None` when the transport is done.
    fn end_turn(&mut self) -> Option<Sleep> {
        loop {
            let now = Instant::now();
            let mut st = self.slot.lock();
            let s = &mut st.session;
            tend(s, &self.slot.stream, now);
            if s.process_next(&self.shared.core, &mut self.notices) {
                // A timer or another thread ended the session: the callbacks first.
                drop(st);
                self.notify();
                self.deliver();
                continue;
            }
            if s.should_close_transport() {
                return None;
            }
            let sleep = if s.connection().is_closed() {
                Sleep::Park
            } else {
                Sleep::Read
            };
            st.reader = Reader::Asleep;
            let timer = st.schedule();
            drop(st);
            self.schedule(timer);
            return Some(sleep);
        }
    }

    /// Tells the accept thread of the session's new deadline, if `State::schedule` gave one.
    fn schedule(&self, timer: Option<Instant>) {
        if let Some(at) = timer {
            self.shared.schedule(at, self.id);
        }
    }

    /// One read (blocking, unless `flags` says `DONTWAIT`), handed to the session. Data is
    /// decoded when events are polled. False when a read that must not wait found nothing.
    fn read(&mut self, small: &mut [u8; SMALL_READ], flags: RecvFlags) -> bool {
        // Only a client that streams can be in the middle of a large frame, or have a message
        // worth reading in place (larger than the small buffer) predicted: small messages skip
        // the look at the session, a lock, before a blocking read.
        let streaming = !self.big.is_empty();
        if flags.is_empty() && streaming && self.read_direct() {
            self.drained = false;
            return true;
        }
        if !flags.is_empty() || streaming {
            if let Some(read) = read_predicted(&self.shared, &self.slot, flags, &mut self.drained) {
                return read;
            }
        }
        let buf: &mut [u8] = if streaming { &mut self.big } else { small };
        let stream = &self.slot.stream;
        let mut read = || loop {
            match recv(stream, buf, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let result = if flags.is_empty() {
            asleep(&self.shared, read)
        } else {
            read()
        };
        if !flags.is_empty() && matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            return false;
        }
        let now = Instant::now();
        let mut st = self.slot.lock();
        st.reader = Reader::Turning;
        let n = match result {
            Ok(n) if n > 0 => {
                // Whole small messages go to the callbacks where they lie, lent, with no lock
                // held (see `notify`); the rest goes to the session.
                let mut pos = 0;
                while let Some((message, used)) = st.session.receive_in_place(&mut buf[pos..n], now)
                {
                    pos += used;
                    drop(st);
                    // Set by now (the handshake's notice came first); a field, not `self`,
                    // as `buf` may be `self.big`.
                    let slot = &self.slot;
                    let client = self
                        .client
                        .get_or_insert_with(|| slot.lock().session.client().clone());
                    self.shared.core.notify_message(&self.api, client, message);
                    st = self.slot.lock();
                }
                if pos < n {
                    st.session.receive(&buf[pos..n], now);
                }
                n
            }
            other => {
                end_of_input(&mut st, &other, now);
                0
            }
        };
        drop(st);
        let filled = n == buf.len();
        self.drained = !filled;
        if self.big.is_empty() {
            if filled {
                if let Some(big) = self.shared.take_buffer() {
                    self.big = big;
                }
            }
        } else if n <= SMALL_READ {
            self.shared.give_buffer(std::mem::take(&mut self.big));
        }
        true
    }

    /// Reads the rest of a large frame straight into its message, saving the copy through a
    /// read buffer, when the session can take it so (see `Session::receive_direct`). That read
    /// runs under the session lock, so it must not wait: it asks for what is there already
    /// (`MSG_DONTWAIT`), at most `DIRECT_READ` bytes, and only when nothing is waits without the
    /// lock (a one-byte peek) before asking again. While a large message streams in, data is
    /// nearly always there: one system call per read, not a peek and a read. Returns false when
    /// the session wants an ordinary read.
    fn read_direct(&mut self) -> bool {
        let mut waited = false;
        loop {
            let now = Instant::now();
            let mut st = self.slot.lock();
            let stream = &self.slot.stream;
            let result = st.session.receive_direct(now, |space| {
                let n = space.len().min(DIRECT_READ);
                recv(stream, &mut space[..n], RecvFlags::DONTWAIT)
            });
            let Some(result) = result else {
                // Not in a large frame; or, after waiting, another thread ended the session
                // meanwhile, and there is nothing more to read.
                return waited;
            };
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !waited => {
                    drop(st);
                    // Whatever the peek says (data, end of stream, an error), the next read
                    // says it again, under the lock.
                    asleep(&self.shared, || {
                        while let Err(e) = self.slot.stream.peek(&mut [0u8; 1]) {
                            if e.kind() != io::ErrorKind::Interrupted {
                                break;
                            }
                        }
                    });
                    waited = true;
                    continue;
                }
                // Else data; or a peek saw data that a read then did not (the next turn asks
                // again); or the end.
                other => end_of_input(&mut st, &other, now),
            }
            st.reader = Reader::Turning;
            return true;
        }
    }

    /// Hands the session's events to the callbacks one at a time: what a callback sends is
    /// queued before the next event is decoded, so replies keep the order of the input.
    fn deliver(&mut self) {
        loop {
            let more = self
                .slot
                .lock()
                .session
                .process_next(&self.shared.core, &mut self.notices);
            if !more {
                return;
            }
            self.notify();
        }
    }

    /// Runs the callbacks for what the session reported, with no lock held, so that they may
    /// send to this very client.
    fn notify(&mut self) {
        if self.notices.is_empty() {
            return;
        }
        if self.client.is_none() || matches!(self.notices[0], Notice::NewClient) {
            self.client = Some(self.slot.lock().session.client().clone());
        }
        let client = self.client.as_ref().expect("just set");
        self.shared
            .core
            .notify(&self.api, client, &mut self.notices);
    }

    /// Ends the session whatever brought us here (a panic included), so that an announced
    /// client gets its "left" callback exactly once, then shuts the socket down and reports to
    /// the accept thread, which closes it.
    fn finish(mut self) {
        let id = {
            let mut st = self.slot.lock();
            st.reader = Reader::Turning;
            let s = &mut st.session;
            if !s.connection().is_closed() {
                s.connection_mut().abort();
            }
            s.process(&self.shared.core, &mut self.notices);
            s.id()
        };
        if panic::catch_unwind(AssertUnwindSafe(|| self.notify())).is_err() {
            log::error!("{id}: the \"left\" callback panicked");
        }
        {
            let mut st = self.slot.lock();
            if !st.write_shut {
                self.slot.shut(&mut st, std::net::Shutdown::Both);
            }
        }
        if !self.big.is_empty() {
            self.shared.give_buffer(std::mem::take(&mut self.big));
        }
        let ClientThread { shared, .. } = self;
        shared.awake.fetch_sub(1, Ordering::Relaxed);
        shared
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
        shared.wake_poller();
    }
}

/// A read of a message the previous one predicts, straight into a buffer of its own (see
/// `Session::plan_predicted`): saves copying it out of the read buffer. The read runs without
/// the session lock, so it may block (unless `flags` says `DONTWAIT`). `None` when the session
/// wants an ordinary read; else whether it read anything, and `drained` says whether the
/// socket was emptied.
fn read_predicted(
    shared: &Shared,
    slot: &Slot,
    flags: RecvFlags,
    drained: &mut bool,
) -> Option<bool> {
    let mut plan = slot.lock().session.plan_predicted()?;
    let (asked, result) = {
        let buf = plan.buffer();
        let asked = buf.len();
        let mut read = || loop {
            match recv(&slot.stream, buf, flags) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && flags.is_empty() => continue,
                other => break other,
            }
        };
        let result = if flags.is_empty() {
            asleep(shared, read)
        } else {
            read()
        };
        (asked, result)
    };
    let now = Instant::now();
    let mut st = slot.lock();
    st.session.finish_predicted(plan, &result, now);
    match result {
        // Interrupted too: the turn ends, and the blocking read that follows asks again.
        Err(e) if not_now(&e) && !flags.is_empty() => return Some(false),
        Ok(n) if n > 0 => *drained = n < asked,
        other => end_of_input(&mut st, &other, now),
    }
    st.reader = Reader::Turning;
    Some(true)
}

/// A read error that only says "nothing yet": no data, a signal, or (with no receive timeout
/// set, only after a signal) a timeout.
fn not_now(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
    )
}

/// Ends the session's input when a read met the end of the stream or failed, unless the read
/// side was shut already (by us: the session knows). Data, and errors that say "nothing yet",
/// change nothing.
fn end_of_input(st: &mut State, result: &io::Result<usize>, now: Instant) {
    let ended = match result {
        Ok(n) => *n == 0,
        Err(e) => !not_now(e),
    };
    if !ended || st.read_shut {
        return;
    }
    if let Err(e) = result {
        log::debug!("{}: read error: {e}", st.session.id());
    }
    st.session.receive_eof(now);
}

/// Runs a timer of the session that is due (the accept thread runs timers; one due now costs
/// nothing extra here), then writes the session's output.
fn tend(s: &mut Session, stream: &TcpStream, now: Instant) {
    if s.poll_timeout().is_some_and(|t| t <= now) {
        s.handle_timeout(now);
    }
    flush(s, stream, now);
}

/// Runs `wait`, which may block, counted out of [`Shared::awake`].
fn asleep<R>(shared: &Shared, wait: impl FnOnce() -> R) -> R {
    shared.awake.fetch_sub(1, Ordering::Relaxed);
    let r = wait();
    shared.awake.fetch_add(1, Ordering::Relaxed);
    r
}
