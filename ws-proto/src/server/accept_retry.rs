//! What an adapter does when `accept` fails: try again a little later, and say so sparingly.

use std::time::{Duration, Instant};

use super::sparing::{Say, Sparing};

/// How long an adapter waits before accepting again after `accept` failed (typically for lack of
/// file descriptors; the pending clients stay in the backlog meanwhile).
pub const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// While accepting keeps failing, at most one log line per this long.
pub const ACCEPT_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Accepting again after `accept` failed, typically for lack of file descriptors (EMFILE).
///
/// The listener stays readable while clients wait in its backlog, so an adapter that simply
/// polled again would spin; it tries again [`ACCEPT_RETRY`] later instead. The failure is logged
/// at error level when it starts, then at most once every [`ACCEPT_REPORT_EVERY`] with how many
/// there were meanwhile, and the recovery at info level: a server short of descriptors does not
/// write twenty lines a second to its log.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_proto::server::{AcceptRetry, ACCEPT_RETRY};
///
/// let mut retry = AcceptRetry::default();
/// let t0 = Instant::now();
/// let emfile = std::io::Error::from_raw_os_error(24);
/// assert!(retry.failed(&emfile, t0)); // logged
/// assert_eq!(retry.deadline(), Some(t0 + ACCEPT_RETRY));
/// assert!(!retry.take_due(t0));
/// assert!(retry.take_due(t0 + ACCEPT_RETRY)); // now call accept again
/// assert!(!retry.failed(&emfile, t0 + ACCEPT_RETRY)); // not logged again so soon
/// retry.succeeded(); // logs that accepting works again
/// ```
#[derive(Debug, Default)]
pub struct AcceptRetry {
    /// When to try again, while accepting fails.
    at: Option<Instant>,
    /// The failures' log lines, while accepting fails.
    log: Sparing,
}

impl AcceptRetry {
    /// Records that `accept` failed at `now` with `error`: the next try is due [`ACCEPT_RETRY`]
    /// later. Returns whether this failure was logged.
    pub fn failed(&mut self, error: &std::io::Error, now: Instant) -> bool {
        self.at = Some(now + ACCEPT_RETRY);
        match self.log.occurred(now, ACCEPT_REPORT_EVERY) {
            Say::First => {
                log::error!("accept failed: {error}; trying again every {ACCEPT_RETRY:?}")
            }
            Say::Again { meanwhile } => log::error!(
                "accept still failing: {error} ({} more times since the last report)",
                meanwhile + 1
            ),
            Say::Nothing => return false,
        }
        true
    }

    /// Records that `accept` worked; logs the recovery if it had been failing.
    pub fn succeeded(&mut self) {
        if self.log.ended() {
            log::info!("accepting again");
        }
    }

    /// When to try again, while accepting fails: a deadline for the adapter's poll timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.at
    }

    /// Whether the retry is due at `now`; if so, it is taken, and the adapter calls `accept`.
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.at.is_some_and(|t| t <= now);
        if due {
            self.at = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock::t0;

    #[test]
    fn failures_are_logged_at_start_then_once_per_period_and_again_after_a_recovery() {
        let mut retry = AcceptRetry::default();
        let t0 = t0();
        let e = std::io::Error::from_raw_os_error(24);
        let logged: Vec<bool> = (0..250u32)
            .map(|i| retry.failed(&e, t0 + ACCEPT_RETRY * i))
            .collect();
        // 250 tries 50 ms apart span 12.45 s: logged at 0 s and at 10 s only.
        let at: Vec<usize> = (0..logged.len()).filter(|&i| logged[i]).collect();
        assert_eq!(at, [0, 200]);
        retry.succeeded();
        assert!(retry.failed(&e, t0 + Duration::from_secs(13)));
    }

    #[test]
    fn a_retry_is_due_once_after_the_delay() {
        let mut retry = AcceptRetry::default();
        let t0 = t0();
        assert_eq!(retry.deadline(), None);
        assert!(!retry.take_due(t0));
        retry.failed(&std::io::Error::from_raw_os_error(24), t0);
        assert!(!retry.take_due(t0 + ACCEPT_RETRY / 2));
        assert!(retry.take_due(t0 + ACCEPT_RETRY));
        assert!(!retry.take_due(t0 + ACCEPT_RETRY * 2));
        assert_eq!(retry.deadline(), None);
    }
}
