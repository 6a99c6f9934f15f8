//! The one clock read in ws-proto, for unit tests only: an origin that tests offset virtual
//! times from. Library code never reads the clock (the time is an argument); scripts/test.sh's
//! purity check allows this file by name.

use std::time::Instant;

/// A fixed origin, the same for every test of the process.
pub(crate) fn t0() -> Instant {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(Instant::now)
}
