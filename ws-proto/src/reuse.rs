//! Large message buffers kept for the next large message.
//!
//! A message of many megabytes is received into a fresh buffer, handed to the application,
//! often sent back out (zero-copy), and freed once written. Allocating the next one from the
//! system again costs a page fault and a page clearing per 4 KiB, more than copying the data:
//! a quarter of the CPU time of a 16 MiB echo. Buffers the output queue has finished with are
//! therefore kept here, process-wide and bounded in number and bytes, and a large message
//! that arrives next takes one.
//!
//! Pooled buffers keep their old contents: initialised memory that the next message can be
//! read into without zeroing it first.
//!
//! The pool never raises peak memory (it only holds what was in use a moment before); it
//! delays returning at most [`MAX_POOLED_BYTES`] to the system.
//!
//! Smaller messages have a pool of their own, per thread ([`take_small`], [`give_message`]): an
//! echo or a relay copies a small message into the output, or queues a larger one as it is,
//! and the next message that arrives takes its buffer back instead of a malloc and a free per
//! message.

/// Smallest buffer worth keeping: smaller ones are cheap to allocate, and the per-thread pool
/// of the output queue serves them. Fuzzing lowers it, so that messages of fuzzer size take
/// recycled buffers (and the reads straight into them) too.
pub(crate) const MIN_POOLED_CAPACITY: usize = if cfg!(fuzzing) { 256 } else { 1 << 20 };

/// Most bytes held by the pool.
pub(crate) const MAX_POOLED_BYTES: usize = 64 << 20;
/// Most buffers held by the pool.
const MAX_POOLED: usize = 8;

process_wide!(
    /// Runs `f` on the large-buffer pool.
    with_pool: Pool = Pool { bufs: Vec::new() }
);

/// Keeps `buf` for a later [`take`], if it is large and the pool has room; frees it otherwise.
pub(crate) fn give(buf: Vec<u8>) {
    if buf.capacity() >= MIN_POOLED_CAPACITY {
        with_pool(|p| p.give(buf));
    }
}

/// Fuzzing only: puts a buffer of `len` initialised bytes in the pool, as a large message sent
/// earlier would have, so that fuzz inputs reach the reads straight into recycled buffers.
#[cfg(fuzzing)]
pub fn fuzz_recycle(len: usize) {
    give(vec![0xa5; len]);
}

/// A buffer with room for at least `len` bytes, if the pool has one. It still holds an old
/// message: use its contents as space only.
pub(crate) fn take(len: usize) -> Option<Vec<u8>> {
    with_pool(|p| p.take(len))
}

struct Pool {
    bufs: Vec<Vec<u8>>,
}

/// Largest small-message buffer kept, how many a thread keeps and how many bytes. A thread
/// holds about as many as it had messages in flight at once: one per client thread in ws-std;
/// in ws-mio, one per connection read in a wake-up before the replies are written, so the
/// bounds are those of a busy event loop (at most 256 KiB per thread).
pub(crate) const SMALL_CAPACITY: usize = 32 << 10;
// A predicted message size (`Connection::predicted`) is at most this, and fits in 16 bits.
const _: () = assert!(SMALL_CAPACITY <= u16::MAX as usize);
const SMALL_POOLED: usize = 16;
const SMALL_POOLED_BYTES: usize = 256 << 10;

thread_local! {
    static SMALL: std::cell::RefCell<SmallPool> = const {
        std::cell::RefCell::new(SmallPool { bufs: Vec::new(), held: 0 })
    };
}

struct SmallPool {
    bufs: Vec<Vec<u8>>,
    /// Capacity of `bufs`, in bytes.
    held: usize,
}

impl SmallPool {
    fn pop(&mut self) -> Option<Vec<u8>> {
        let v = self.bufs.pop()?;
        self.held -= v.capacity();
        Some(v)
    }

    fn push(&mut self, v: Vec<u8>) {
        if self.bufs.len() < SMALL_POOLED && self.held + v.capacity() <= SMALL_POOLED_BYTES {
            self.held += v.capacity();
            self.bufs.push(v);
        }
    }
}

/// An empty buffer with room for `len` bytes, recycled when `len` is at most
/// [`SMALL_CAPACITY`] and one is kept: the same few buffers then carry message after message,
/// warm in the cache.
pub(crate) fn take_small(len: usize) -> Vec<u8> {
    if len > SMALL_CAPACITY {
        return Vec::with_capacity(len);
    }
    match SMALL.with(|p| p.borrow_mut().pop()) {
        Some(mut v) => {
            v.clear();
            v.reserve_exact(len);
            v
        }
        None => Vec::with_capacity(len.max(64)),
    }
}

/// A buffer of at least `len` initialised bytes (`len` at most [`SMALL_CAPACITY`]) to read a
/// message into: a kept buffer's old contents serve as such, so usually nothing is cleared.
pub(crate) fn take_initialised(len: usize) -> Vec<u8> {
    debug_assert!(len <= SMALL_CAPACITY);
    let mut v = SMALL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    // Only bytes the buffer never held are zeroed.
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// Keeps a message's buffer for [`take_small`] (or [`give`], if it is large); frees it when the
/// pools are full.
pub(crate) fn give_message(buf: Vec<u8>) {
    let cap = buf.capacity();
    if cap >= MIN_POOLED_CAPACITY {
        give(buf);
    } else if cap != 0 && cap <= SMALL_CAPACITY {
        // Not cleared: its bytes are initialised space for `take_initialised`.
        SMALL.with(|p| p.borrow_mut().push(buf));
    }
}

impl Pool {
    fn give(&mut self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if !(MIN_POOLED_CAPACITY..=MAX_POOLED_BYTES).contains(&cap) {
            return;
        }
        let held: usize = self.bufs.iter().map(Vec::capacity).sum();
        if self.bufs.len() < MAX_POOLED && held + cap <= MAX_POOLED_BYTES {
            // Not cleared: its bytes are initialised memory that the next message can be read
            // into directly (see `Connection::receive_direct`).
            self.bufs.push(buf);
        }
    }

    /// The smallest buffer that fits, so that big ones stay for big messages.
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let best = self
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        Some(self.bufs.swap_remove(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_buffers_are_recycled_within_bounds() {
        let a = take_small(100);
        assert!(a.is_empty() && a.capacity() >= 100);
        let ptr = a.as_ptr();
        give_message(a);
        let b = take_small(10);
        assert_eq!(b.as_ptr(), ptr, "the kept buffer is handed out again");
        assert!(b.is_empty());
        let c = take_small(SMALL_CAPACITY);
        assert!(c.capacity() >= SMALL_CAPACITY, "grown to fit");
        give_message(Vec::with_capacity(SMALL_CAPACITY + 1));
        for _ in 0..SMALL_POOLED + 3 {
            give_message(vec![1; 8]);
        }
        let kept = SMALL.with(|p| p.borrow().bufs.len());
        assert_eq!(
            kept, SMALL_POOLED,
            "large buffers are freed, the pool is bounded"
        );
        SMALL.with(|p| {
            *p.borrow_mut() = SmallPool {
                bufs: Vec::new(),
                held: 0,
            }
        });
        drop((b, c));
    }

    #[test]
    fn keeps_large_buffers_within_bounds_and_hands_out_the_smallest_fit() {
        let mut pool = Pool { bufs: Vec::new() };
        pool.give(Vec::with_capacity(MIN_POOLED_CAPACITY - 1));
        assert!(pool.take(0).is_none(), "small buffers are not kept");
        pool.give(Vec::with_capacity(MAX_POOLED_BYTES + 1));
        assert!(
            pool.take(0).is_none(),
            "a buffer past the byte bound is not kept"
        );
        pool.give(Vec::with_capacity(4 << 20));
        pool.give(vec![7; 2 << 20]);
        assert!(pool.take(8 << 20).is_none());
        let b = pool.take(1 << 20).unwrap();
        assert!(b.capacity() >= 2 << 20 && b.capacity() < 4 << 20);
        assert_eq!(b.len(), 2 << 20, "contents kept as initialised space");
        assert!(pool.take(3 << 20).unwrap().capacity() >= 4 << 20);
        for _ in 0..MAX_POOLED + 4 {
            pool.give(Vec::with_capacity(MIN_POOLED_CAPACITY));
        }
        assert_eq!(pool.bufs.len(), MAX_POOLED);
        pool.bufs.clear();
        for _ in 0..4 {
            pool.give(Vec::with_capacity(MAX_POOLED_BYTES / 3 + 1));
        }
        let held: usize = pool.bufs.iter().map(Vec::capacity).sum();
        assert!(held <= MAX_POOLED_BYTES && pool.bufs.len() == 2, "{held}");
    }
}
