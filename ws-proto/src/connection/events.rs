//! Events decoded but not yet polled. Input is decoded one event at a time (or a few whole
//! messages), so the queue is almost always empty or short: an empty queue is a null pointer,
//! and the storage of drained queues goes to a per-thread pool, so steady traffic allocates no
//! event storage either.

// Boxed on purpose: the connection holds a pointer (8 bytes) instead of a deque (32), and the
// pool keeps the boxes so that taking a queue allocates nothing.
#![allow(clippy::vec_box, clippy::box_collection)]

use std::cell::RefCell;
use std::collections::VecDeque;

use super::Event;

/// Most pooled queues per thread.
const POOL_SIZE: usize = 64;

thread_local! {
    static POOL: RefCell<Vec<Box<VecDeque<Event>>>> = const { RefCell::new(Vec::new()) };
}

/// A FIFO of events that holds no memory while empty.
#[derive(Debug, Default)]
pub(super) struct Events {
    q: Option<Box<VecDeque<Event>>>,
}

impl Events {
    pub(super) fn push_back(&mut self, event: Event) {
        self.q
            .get_or_insert_with(|| POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default())
            .push_back(event);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.q.as_ref().is_none_or(|q| q.is_empty())
    }

    /// The next event. A drained queue keeps its storage until [`Events::release`], so that
    /// decoding a run of messages one at a time does not hand it back and forth.
    pub(super) fn pop_front(&mut self) -> Option<Event> {
        self.q.as_mut()?.pop_front()
    }

    /// How many events wait.
    pub(super) fn len(&self) -> usize {
        self.q.as_ref().map_or(0, |q| q.len())
    }

    /// Drops the last `n` events.
    pub(super) fn drop_back(&mut self, n: usize) {
        if let Some(q) = self.q.as_mut() {
            q.truncate(q.len().saturating_sub(n));
        }
    }

    /// Gives the storage of a drained queue back to the pool.
    pub(super) fn release(&mut self) {
        if !self.is_empty() {
            return;
        }
        if let Some(q) = self.q.take() {
            // A queue grown by an unusual burst is not worth keeping.
            if q.capacity() <= 16 {
                POOL.with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() < POOL_SIZE {
                        p.push(q);
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_empty_means_no_storage() {
        let mut e = Events::default();
        assert!(e.is_empty() && e.pop_front().is_none());
        e.push_back(Event::Ping(vec![1]));
        e.push_back(Event::Pong(vec![2]));
        assert!(!e.is_empty());
        e.release();
        assert_eq!(
            e.pop_front(),
            Some(Event::Ping(vec![1])),
            "not released while in use"
        );
        assert_eq!(e.pop_front(), Some(Event::Pong(vec![2])));
        assert!(e.is_empty() && e.q.is_some());
        e.release();
        assert!(e.q.is_none() && e.is_empty());
    }
}
