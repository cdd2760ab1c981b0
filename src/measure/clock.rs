//! The one clock of versus: CLOCK_MONOTONIC in nanoseconds. The workload
//! program reads the same clock (namespaces do not change it; versus creates
//! no time namespace), so host and workload timestamps subtract.

/// Monotonic time in nanoseconds since an arbitrary origin (boot); the
/// VMM's clock, so that its timestamps and versus' subtract.
pub use versus_vmm::clock::now_ns;

/// UTC calendar fields `[year, month, day, hour, minute, second]` of a Unix
/// time in seconds (Howard Hinnant's days-to-civil algorithm).
pub fn utc_fields(secs: u64) -> [u64; 6] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    [y as u64, m as u64, d as u64, rem / 3600, rem % 3600 / 60, rem % 60]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fields_of_known_times() {
        assert_eq!(utc_fields(0), [1970, 1, 1, 0, 0, 0]);
        assert_eq!(utc_fields(951_782_400), [2000, 2, 29, 0, 0, 0]);
        assert_eq!(utc_fields(1_735_689_600 + 3661), [2025, 1, 1, 1, 1, 1]);
    }
}
