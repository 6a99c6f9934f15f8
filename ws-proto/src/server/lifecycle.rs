//! A server's life, shared by its threads and handles: shutdown requested (which kind), stopped,
//! and a way to wait for the end.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::Shutdown;

#[derive(Debug, Default)]
struct State {
    requested: Option<Shutdown>,
    stopped: bool,
}

/// Shutdown request and end of a server, under one lock so that a request and the end cannot
/// cross.
#[derive(Debug, Default)]
pub struct Lifecycle {
    state: Mutex<State>,
    stopped_cv: Condvar,
}

impl Lifecycle {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a shutdown request. Returns false when it changes nothing: the server has stopped,
    /// or an abrupt shutdown is already under way (a graceful one can still be made abrupt).
    pub fn request(&self, kind: Shutdown) -> bool {
        let mut s = self.state();
        if s.stopped || s.requested == Some(Shutdown::Abrupt) {
            return false;
        }
        s.requested = Some(kind);
        true
    }

    /// The shutdown requested so far, if any.
    pub fn requested(&self) -> Option<Shutdown> {
        self.state().requested
    }

    /// Marks the server stopped and wakes every waiter.
    pub fn set_stopped(&self) {
        self.state().stopped = true;
        self.stopped_cv.notify_all();
    }

    /// Whether the server has stopped.
    pub fn is_stopped(&self) -> bool {
        self.state().stopped
    }

    /// Blocks until the server has stopped.
    pub fn wait_stopped(&self) {
        let mut s = self.state();
        while !s.stopped {
            s = self.stopped_cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graceful_can_become_abrupt_but_not_back_and_nothing_after_stop() {
        let l = Lifecycle::default();
        assert!(l.request(Shutdown::Graceful));
        assert!(l.request(Shutdown::Abrupt));
        assert!(!l.request(Shutdown::Graceful));
        assert_eq!(l.requested(), Some(Shutdown::Abrupt));
        l.set_stopped();
        assert!(!l.request(Shutdown::Abrupt));
    }

    #[test]
    fn stopped_is_seen_and_waiting_returns_at_once() {
        // Waiting across threads is exercised by both adapters' shutdown tests; ws-proto itself
        // starts no thread.
        let l = Lifecycle::default();
        assert!(!l.is_stopped());
        l.set_stopped();
        assert!(l.is_stopped());
        l.wait_stopped();
    }
}
