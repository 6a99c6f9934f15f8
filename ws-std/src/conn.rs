//! A client's thread: the only code that touches the client's socket. It reads into the
//! session, runs the callbacks with no lock held, writes the session's output, and sleeps until
//! the accept thread reports readiness, another thread wakes it, or the session's next timer.

use std::io::{self, IoSlice, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use ws_proto::server::{Notice, Session};

use crate::{Handle, Shared, Slot};

/// Readiness flags (see `Slot::ready`): data may be waiting.
pub(crate) const READABLE: u8 = 1;
/// The peer closed or the socket failed: read until end of stream, not only until a short read.
pub(crate) const READ_CLOSED: u8 = 2;

/// Read buffer while a client is quiet: on the stack, so an idle client holds none. Small, since
/// every stack page a thread ever touches stays resident: at 4 KiB an idle client costs one more
/// page (about 4 KiB of RSS); bigger reads borrow a pooled buffer.
const SMALL_READ: usize = 1 << 10;
/// Read buffer while data streams in (a read filled the small one), borrowed from a pool for
/// one turn.
pub(crate) const BIG_READ: usize = 64 << 10;
/// Most big buffers kept for reuse: enough for the clients reading at the same moment, while
/// idle clients hold none.
pub(crate) const POOLED_BUFFERS: usize = 64;
/// Most bytes read in one turn: a peer that sends without pause must not keep its thread from
/// writing (replies pile up otherwise) or from running its timers.
const READ_BUDGET: usize = 1 << 20;
/// Most slices per vectored write (own frames coalesce into one; shared frames add one each).
const MAX_SLICES: usize = 32;

struct ClientThread {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    stream: TcpStream,
    api: Handle,
    notices: Vec<Notice>,
    /// The last turn read more than the small buffer holds: start the next one with a big
    /// buffer, saving a small read.
    streaming: bool,
}

/// The body of a client thread.
pub(crate) fn run(shared: Arc<Shared>, slot: Arc<Slot>, stream: TcpStream) {
    let _ = slot.thread.set(std::thread::current());
    let id = slot.lock().id();
    let mut t = ClientThread {
        api: Handle {
            shared: shared.clone(),
        },
        shared,
        slot,
        stream,
        notices: Vec::new(),
        streaming: false,
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
            let ready = self.slot.ready.swap(0, Ordering::Acquire);
            if ready != 0 {
                self.read(&mut small, ready & READ_CLOSED != 0);
            }
            let now = Instant::now();
            let (done, deadline) = {
                let mut s = self.slot.lock();
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
                flush(&mut s, &self.stream, now);
                s.process_next(&self.shared.core, &mut self.notices);
                (s.should_close_transport(), s.poll_timeout())
            };
            if !self.notices.is_empty() {
                // The callbacks may have queued output for this client: turn again.
                self.notify();
                continue;
            }
            if done {
                return;
            }
            if self.slot.ready.load(Ordering::Acquire) != 0 {
                continue;
            }
            match deadline {
                Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
                None => std::thread::park(),
            }
        }
    }

    /// Reads until the socket is drained, handing every chunk to the session and its callbacks
    /// at once.
    ///
    /// A short read means the socket was drained when it was read, unless the peer had already
    /// closed (`to_eof`): data arriving later raises a new readiness edge, but an end of stream
    /// that came before the read does not.
    fn read(&mut self, small: &mut [u8; SMALL_READ], to_eof: bool) {
        let mut big = if self.streaming {
            self.shared.take_buffer()
        } else {
            Vec::new()
        };
        let mut total = 0;
        // Once closed, only flushing remains: further input is left unread.
        let mut closed = self.slot.lock().connection().is_closed();
        while !closed {
            if total >= READ_BUDGET {
                let more = READABLE | if to_eof { READ_CLOSED } else { 0 };
                self.slot.ready.fetch_or(more, Ordering::Release);
                break;
            }
            let buf: &mut [u8] = if big.is_empty() { small } else { &mut big };
            let n = match (&self.stream).read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("{}: read error: {e}", self.slot.lock().id());
                    0
                }
            };
            let now = Instant::now();
            {
                let mut s = self.slot.lock();
                if n == 0 {
                    s.receive_eof(now);
                } else {
                    s.receive(&buf[..n], now);
                }
            }
            self.deliver();
            closed = self.slot.lock().connection().is_closed();
            total += n;
            if n == 0 || n < buf.len() && !to_eof {
                break;
            }
            let filled = n == buf.len();
            if filled && big.is_empty() {
                big = self.shared.take_buffer();
            }
        }
        self.streaming = total > SMALL_READ;
        if !big.is_empty() {
            self.shared.give_buffer(big);
        }
    }

    /// Hands the session's events to the callbacks one at a time: what a callback sends is
    /// queued before the next event is decoded, so replies keep the order of the input.
    fn deliver(&mut self) {
        loop {
            let more = self
                .slot
                .lock()
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
        let client = self.slot.lock().client().clone();
        self.shared
            .core
            .notify(&self.api, &client, &mut self.notices);
    }

    /// Ends the session whatever brought us here (a panic included), so that an announced
    /// client gets its "left" callback exactly once, then closes the socket and reports to the
    /// accept thread.
    fn finish(mut self) {
        let id = {
            let mut s = self.slot.lock();
            if !s.connection().is_closed() {
                s.connection_mut().abort();
            }
            s.process(&self.shared.core, &mut self.notices);
            s.id()
        };
        if panic::catch_unwind(AssertUnwindSafe(|| self.notify())).is_err() {
            log::error!("{id}: the \"left\" callback panicked");
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        let ClientThread { shared, stream, .. } = self;
        drop(stream);
        shared
            .finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
        shared.wake_poller();
    }
}

/// Writes the session's output until the socket would block. A failed write ends the transport.
fn flush(s: &mut Session, stream: &TcpStream, now: Instant) {
    while s.wants_write() {
        let result = {
            let mut slices: [&[u8]; MAX_SLICES] = [&[]; MAX_SLICES];
            let n = s.output_slices(&mut slices);
            let io: [IoSlice<'_>; MAX_SLICES] = slices.map(IoSlice::new);
            let mut w = stream;
            w.write_vectored(&io[..n])
        };
        match result {
            Ok(0) => {
                s.receive_eof(now);
                return;
            }
            Ok(n) => s.consume_output(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                log::debug!("{}: write error: {e}", s.id());
                s.receive_eof(now);
                return;
            }
        }
    }
}
