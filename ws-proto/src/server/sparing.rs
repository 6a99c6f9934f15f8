//! Saying a repeated thing sparingly: a log line when it starts, then at most one per period,
//! with how many times it happened meanwhile.

use std::time::{Duration, Instant};

/// While something keeps happening (`accept` failing, clients refused at the connection limit),
/// at most one report per period: a server under a flood of them does not write a log line for
/// each, which would cost it more than the flood itself (a blocking write to a slow terminal
/// stalls a single-threaded server).
#[derive(Debug, Default)]
pub(crate) struct Sparing {
    /// When it was last reported.
    reported: Option<Instant>,
    /// Times since then.
    unreported: u64,
}

/// What to say of one more occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Say {
    /// Nothing: reported less than a period ago.
    Nothing,
    /// The first since it started.
    First,
    /// A report a period or more after the last, with the occurrences left unreported meanwhile.
    Again { meanwhile: u64 },
}

impl Sparing {
    /// One more occurrence at `now`: whether and how to report it, at most once per `every`.
    pub(crate) fn occurred(&mut self, now: Instant, every: Duration) -> Say {
        let say = match self.reported {
            None => Say::First,
            Some(last) if now.saturating_duration_since(last) >= every => Say::Again {
                meanwhile: self.unreported,
            },
            Some(_) => {
                self.unreported += 1;
                return Say::Nothing;
            }
        };
        self.reported = Some(now);
        self.unreported = 0;
        say
    }

    /// It stopped: the next occurrence is a first again. Returns whether it had been reported.
    pub(crate) fn ended(&mut self) -> bool {
        self.unreported = 0;
        self.reported.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock::t0;

    #[test]
    fn reports_the_first_then_once_per_period_with_the_count_then_a_first_again() {
        let mut s = Sparing::default();
        let t0 = t0();
        let every = Duration::from_secs(10);
        let ms = Duration::from_millis;
        assert_eq!(s.occurred(t0, every), Say::First);
        for i in 1..1000 {
            assert_eq!(s.occurred(t0 + ms(i), every), Say::Nothing);
        }
        assert_eq!(s.occurred(t0 + every, every), Say::Again { meanwhile: 999 });
        assert_eq!(s.occurred(t0 + every + ms(1), every), Say::Nothing);
        assert!(s.ended());
        assert!(!s.ended());
        assert_eq!(s.occurred(t0 + every + ms(2), every), Say::First);
    }
}
