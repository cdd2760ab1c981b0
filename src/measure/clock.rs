//! The one clock of versus: CLOCK_MONOTONIC in nanoseconds. The workload
//! program reads the same clock (namespaces do not change it; versus creates
//! no time namespace), so host and workload timestamps subtract.

use nix::time::{clock_gettime, ClockId};

/// Monotonic time in nanoseconds since an arbitrary origin (boot).
pub fn now_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; a zero would only make a phase
    // look wrong, never crash.
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// Milliseconds between two `now_ns` readings, as f64.
pub fn ms_between(start_ns: u64, end_ns: u64) -> f64 {
    end_ns.saturating_sub(start_ns) as f64 / 1e6
}
