//! Deadlines of all connections in one heap, with lazy deletion: a connection whose deadline
//! moved later (traffic postpones keepalive) leaves a stale entry that is checked and dropped when
//! it comes up, instead of a heap update on every message.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use ws_proto::server::ClientId;

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ClientId)>>,
}

impl Timers {
    pub(crate) fn schedule(&mut self, id: ClientId, at: Instant) {
        self.heap.push(Reverse((at, id)));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The next entry due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ClientId)> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}
