//! Deadlines of all of a server's connections in one heap, with lazy deletion: a connection
//! whose deadline moved later (traffic postpones keepalive) leaves a stale entry that is checked
//! and dropped when it comes up, instead of a heap update on every message. The adapter decides
//! what an entry that comes up means (it compares it with the session's current deadline).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::ClientId;

/// Entries allowed beyond four per live connection before the dead ones are dropped.
const SLACK: usize = 1024;

/// The deadlines an adapter sleeps until, one heap for all connections.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_proto::server::{Slab, Timers};
///
/// let mut conns: Slab<()> = Slab::default();
/// let id = conns.insert_with(|_| ());
/// let mut timers = Timers::default();
/// let t0 = Instant::now();
/// timers.schedule(id, t0 + Duration::from_secs(1), conns.len(), |id| conns.get(id).is_some());
/// assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
/// assert_eq!(timers.pop_due(t0), None);
/// assert_eq!(timers.pop_due(t0 + Duration::from_secs(1)), Some((t0 + Duration::from_secs(1), id)));
/// ```
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ClientId)>>,
    /// The heap is not compacted again before it holds this many entries: twice what the last
    /// compaction left, so that compacting stays amortised O(1) per entry whatever it drops.
    floor: usize,
}

impl Timers {
    /// Adds a deadline for `id`. `alive` (the live connections) and `is_alive` let the heap drop
    /// the entries of closed connections once they are many: each closed connection leaves its
    /// last entry until it is due (up to the handshake timeout), so under a churn of short
    /// connections the heap would otherwise grow with the connection rate. Dropping them when
    /// the heap holds more than `4 * alive + 1024` entries keeps it within a few entries per
    /// live connection, at an amortised constant cost per entry.
    pub fn schedule(
        &mut self,
        id: ClientId,
        at: Instant,
        alive: usize,
        is_alive: impl Fn(ClientId) -> bool,
    ) {
        self.heap.push(Reverse((at, id)));
        if self.heap.len() > (4 * alive + SLACK).max(self.floor) {
            self.heap.retain(|Reverse((_, id))| is_alive(*id));
            self.floor = 2 * self.heap.len();
        }
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// The next entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, ClientId)> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Slab;
    use crate::test_clock::t0;
    use std::time::Duration;

    #[test]
    fn entries_of_closed_connections_do_not_pile_up() {
        let mut conns: Slab<()> = Slab::default();
        let mut timers = Timers::default();
        let t0 = t0();
        let keep = conns.insert_with(|_| ());
        timers.schedule(keep, t0, conns.len(), |id| conns.get(id).is_some());
        for i in 0..100_000u32 {
            let id = conns.insert_with(|_| ());
            let at = t0 + Duration::from_millis(u64::from(i));
            timers.schedule(id, at, conns.len(), |id| conns.get(id).is_some());
            conns.remove(id);
            assert!(timers.heap.len() <= 4 * 2 + SLACK + 1);
        }
        // The live connection's entry is still there, first.
        assert_eq!(timers.pop_due(t0), Some((t0, keep)));
    }
}
