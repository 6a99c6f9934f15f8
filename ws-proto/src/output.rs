//! The output queue: bytes waiting for the transport, plus pre-encoded shared frames.
//!
//! Frames this connection encodes are appended to one contiguous buffer, so a burst of replies
//! (say, 16 pipelined echoes) goes out in one write. A [`SharedFrame`] is queued by reference:
//! broadcasting to N connections encodes once and copies nothing per connection.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::frame::{FrameHeader, OpCode};

/// A server-to-client frame encoded once and shareable between connections (broadcast, publish).
///
/// ```
/// let frame = ws_proto::SharedFrame::text("hello everyone");
/// assert_eq!(&frame.as_bytes()[..2], &[0x81, 14]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedFrame {
    bytes: Arc<[u8]>,
}

impl SharedFrame {
    /// An unmasked, uncompressed, final text frame.
    pub fn text(text: &str) -> SharedFrame {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// An unmasked, uncompressed, final binary frame.
    pub fn binary(data: &[u8]) -> SharedFrame {
        Self::encode(OpCode::Binary, data)
    }

    /// A frame carrying `message`.
    pub fn message(message: &crate::Message) -> SharedFrame {
        match message {
            crate::Message::Text(t) => Self::text(t),
            crate::Message::Binary(b) => Self::binary(b),
        }
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> SharedFrame {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut v = Vec::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut v);
        v.extend_from_slice(payload);
        SharedFrame { bytes: v.into() }
    }

    /// The encoded frame.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Encoded length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a frame has at least a header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// A chunk queued ahead of the tail buffer.
#[derive(Debug)]
enum Chunk {
    /// This connection's own frames: a tail buffer closed because something else was queued
    /// after it.
    Owned(Vec<u8>),
    /// A message's payload, queued as it is: never appended to, and given back to the message
    /// buffer pools once written.
    Payload(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) | Chunk::Payload(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// Bytes waiting to be written, in order.
///
/// A drained queue holds no memory: its buffer and chunk list go back to a small per-thread
/// pool, where the next connection with something to send picks them up. Steady traffic then
/// allocates nothing, and an idle connection holds nothing.
#[derive(Debug, Default)]
pub struct OutputQueue {
    /// `None` while nothing waits: an idle connection's queue is a single null pointer.
    q: Option<Box<Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    /// What waits ahead of `tail`, in order.
    chunks: VecDeque<Chunk>,
    /// This connection's latest frames, appended one after another: always the last bytes in
    /// the queue. Kept (emptied) with the queue once written, so that a connection with one
    /// reply at a time takes queue and buffer from the pool together, and appending a frame is
    /// a plain `Vec` append.
    tail: Vec<u8>,
    /// Bytes already written of the first chunk, or of `tail` when there are no chunks.
    head: usize,
    len: usize,
}

impl Queue {
    /// Moves the tail's bytes into a chunk of their own, so that something else can follow them
    /// (once per large payload or shared frame queued).
    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.chunks.push_back(Chunk::Owned(tail));
        }
    }

    /// The tail, written out: kept for the next frames unless it grew too large to pool (one
    /// frame of a large message).
    fn drain_tail(&mut self) {
        if self.tail.capacity() > POOL_BUFFER_MAX {
            self.tail = Vec::new();
        } else {
            self.tail.clear();
        }
    }
}

/// Pooled buffers per thread, and the largest buffer worth pooling.
const POOL_SIZE: usize = 256;
const POOL_BUFFER_MAX: usize = 16 << 10;

thread_local! {
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    // Boxed, so that handing a queue to a connection moves a pointer and allocates nothing: the
    // connection holds a pointer (8 bytes) instead of the queue (48).
    #[allow(clippy::vec_box)]
    static QUEUES: RefCell<Vec<Box<Queue>>> = const { RefCell::new(Vec::new()) };
}

fn pooled_buffer() -> Vec<u8> {
    BUFFERS.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

fn recycle_buffer(mut v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > POOL_BUFFER_MAX {
        return;
    }
    v.clear();
    BUFFERS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_SIZE {
            p.push(v);
        }
    });
}

fn pooled_queue() -> Box<Queue> {
    QUEUES.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

fn recycle_queue(q: Box<Queue>) {
    if q.chunks.capacity() > 64 {
        return;
    }
    debug_assert!(q.chunks.is_empty() && q.tail.is_empty() && q.head == 0 && q.len == 0);
    QUEUES.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL_SIZE {
            p.push(q);
        }
    });
}

impl OutputQueue {
    /// Total bytes waiting.
    pub fn len(&self) -> usize {
        self.q.as_ref().map_or(0, |q| q.len)
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn queue(&mut self) -> &mut Queue {
        self.q.get_or_insert_with(pooled_queue)
    }

    /// Appends this connection's own bytes with `write` (to the tail buffer), and counts what it
    /// wrote.
    #[inline]
    pub fn append<R>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let q = self.queue();
        if q.tail.capacity() == 0 {
            q.tail = pooled_buffer();
        }
        let before = q.tail.len();
        let r = write(&mut q.tail);
        q.len += q.tail.len() - before;
        r
    }

    /// Queues a message's payload as it is (no copy into the coalescing buffer). Once written,
    /// its buffer goes to the next message that arrives.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        debug_assert!(!bytes.is_empty(), "an empty chunk would stop `front`");
        let q = self.queue();
        q.close_tail();
        q.len += bytes.len();
        q.chunks.push_back(Chunk::Payload(bytes));
    }

    /// Queues a shared frame without copying it.
    pub fn push_shared(&mut self, frame: &SharedFrame) {
        let q = self.queue();
        q.close_tail();
        q.len += frame.bytes.len();
        q.chunks.push_back(Chunk::Shared(frame.bytes.clone()));
    }

    /// The next bytes to write (possibly only part of what is waiting).
    pub fn front(&self) -> &[u8] {
        match &self.q {
            Some(q) => match q.chunks.front() {
                Some(c) => &c.bytes()[q.head..],
                None => &q.tail[q.head..],
            },
            None => &[],
        }
    }

    /// Fills `dst` with the waiting chunks, in order, for a vectored write; returns how many.
    pub fn slices<'a>(&'a self, dst: &mut [&'a [u8]]) -> usize {
        let Some(q) = &self.q else {
            return 0;
        };
        let tail = (!q.tail.is_empty()).then_some(q.tail.as_slice());
        let all = q.chunks.iter().map(Chunk::bytes).chain(tail);
        let mut n = 0;
        for (slot, b) in dst.iter_mut().zip(all) {
            *slot = if n == 0 { &b[q.head..] } else { b };
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front. Once all is written, the queue's memory goes back
    /// to the thread's pool (see [`Self::consume_keeping`] for the alternative).
    pub fn consume(&mut self, n: usize) {
        self.consume_keeping(n, false);
    }

    /// [`Self::consume`], but with `keep` a drained queue keeps its memory (up to a pooled
    /// buffer's size) instead of returning it to the thread's pool: for a connection that has a
    /// thread of its own, whose pool serves no other connection, and whose next reply would
    /// otherwise fetch it back from a pool gone cold in the CPU's cache while other threads ran.
    pub fn consume_keeping(&mut self, mut n: usize, keep: bool) {
        assert!(n <= self.len(), "consumed more than was pending");
        let Some(q) = self.q.as_mut() else {
            return;
        };
        q.len -= n;
        while n > 0 {
            let Some(front) = q.chunks.front() else {
                // Only the tail is left, and `n` is within it.
                q.head += n;
                break;
            };
            let front_len = front.bytes().len() - q.head;
            if n < front_len {
                q.head += n;
                return;
            }
            n -= front_len;
            q.head = 0;
            match q.chunks.pop_front() {
                // A closed tail comes back as the tail, if that is still unallocated (a header
                // queued before a payload, then written with it): no trip through the pool.
                Some(Chunk::Owned(mut v))
                    if q.tail.capacity() == 0 && v.capacity() <= POOL_BUFFER_MAX =>
                {
                    v.clear();
                    q.tail = v;
                }
                Some(Chunk::Owned(v)) => recycle_buffer(v),
                Some(Chunk::Payload(v)) => crate::reuse::give_message(v),
                _ => {}
            }
        }
        if q.len == 0 {
            q.head = 0;
            q.drain_tail();
            if !keep {
                if let Some(q) = self.q.take() {
                    recycle_queue(q);
                }
            }
        }
    }

    /// Drops everything (abrupt close), freeing buffers.
    pub fn clear(&mut self) {
        self.q = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_writes_coalesce_and_partial_consume_works() {
        let mut q = OutputQueue::default();
        q.append(|b| b.extend_from_slice(b"abc"));
        q.append(|b| b.extend_from_slice(b"def"));
        assert_eq!(q.front(), b"abcdef");
        q.consume(2);
        assert_eq!(q.front(), b"cdef");
        let f = SharedFrame::binary(b"xy");
        q.push_shared(&f);
        q.append(|b| b.extend_from_slice(b"z"));
        assert_eq!(q.len(), 4 + 4 + 1);
        let mut s: [&[u8]; 8] = [&[]; 8];
        assert_eq!(q.slices(&mut s), 3);
        assert_eq!(s[1], &[0x82, 2, b'x', b'y']);
        q.consume(5);
        assert_eq!(q.front(), &[2, b'x', b'y']);
        q.consume(4);
        assert!(q.is_empty());
        assert_eq!(q.front(), b"");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        Owned(Vec<u8>),
        Shared(Vec<u8>),
        Consume(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            bytes().prop_map(Op::Append),
            // A payload is queued as it is only from 4 KiB up: never empty.
            proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::Owned),
            proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::Shared),
            (0usize..100).prop_map(Op::Consume),
        ]
    }

    proptest::proptest! {
        /// Whatever is queued in whatever order comes out in that order, through `front` and
        /// through `slices`, however it is consumed.
        #[test]
        fn the_queue_writes_what_was_queued_in_order(
            ops in proptest::collection::vec(op(), 0..40),
            keep in proptest::prelude::any::<bool>(),
        ) {
            let mut q = OutputQueue::default();
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(b) => {
                        q.append(|buf| buf.extend_from_slice(&b));
                        model.extend_from_slice(&b);
                    }
                    Op::Owned(b) => {
                        model.extend_from_slice(&b);
                        q.push_owned(b);
                    }
                    Op::Shared(b) => {
                        q.push_shared(&SharedFrame { bytes: b.clone().into() });
                        model.extend_from_slice(&b);
                    }
                    Op::Consume(n) => {
                        let n = n.min(q.front().len());
                        q.consume_keeping(n, keep);
                        model.drain(..n);
                    }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
                proptest::prop_assert_eq!(q.is_empty(), model.is_empty());
                let mut s: [&[u8]; 64] = [&[]; 64];
                let n = q.slices(&mut s);
                let joined: Vec<u8> = s[..n].concat();
                proptest::prop_assert_eq!(&joined, &model);
                proptest::prop_assert!(model.starts_with(q.front()));
                proptest::prop_assert!(q.front().is_empty() == model.is_empty());
            }
            // Draining through `front` alone gives the rest.
            let mut rest = Vec::new();
            while !q.is_empty() {
                rest.extend_from_slice(q.front());
                q.consume_keeping(q.front().len(), keep);
            }
            proptest::prop_assert_eq!(rest, model);
        }
    }
}
