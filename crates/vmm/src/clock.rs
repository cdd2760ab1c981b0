//! The one clock of versus: CLOCK_MONOTONIC in nanoseconds. The workload
//! program reads the same clock (namespaces do not change it; versus creates
//! no time namespace), so host, VMM and workload timestamps subtract.

/// Monotonic time in nanoseconds since an arbitrary origin (boot).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the local above.
    // CLOCK_MONOTONIC cannot fail on Linux; a zero would only make a phase
    // look wrong, never crash.
    match unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } {
        0 => ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        _ => 0,
    }
}
