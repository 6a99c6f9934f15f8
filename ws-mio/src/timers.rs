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
    /// The heap is not compacted again before it holds this many entries: twice what the last
    /// compaction left, so that compacting stays amortised O(1) per entry whatever it drops.
    floor: usize,
}

/// Entries allowed beyond four per live connection before the dead ones are dropped.
const SLACK: usize = 1024;

impl Timers {
    /// Adds a deadline for `id`. `alive` (the live connections) and `is_alive` let the heap drop
    /// the entries of closed connections once they are many: each closed connection leaves its
    /// last entry until it is due (up to the handshake timeout), so under a churn of short
    /// connections the heap would otherwise grow with the connection rate. Dropping them when
    /// the heap holds more than `4 * alive + SLACK` entries keeps it within a few entries per
    /// live connection, at an amortised constant cost per entry.
    pub(crate) fn schedule(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use ws_proto::server::Slab;

    #[test]
    fn entries_of_closed_connections_do_not_pile_up() {
        let mut conns: Slab<()> = Slab::default();
        let mut timers = Timers::default();
        let t0 = Instant::now();
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
