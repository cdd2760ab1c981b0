//! The host's /proc/meminfo.

/// A field of /proc/meminfo (`MemAvailable:`), in bytes.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text, key)
}

/// Parses `key` (e.g. `MemAvailable:`) from a /proc/meminfo text, in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<u64>().ok()).map(|kb| kb * 1024)
}

/// The host's MemAvailable, in bytes; `None` before Linux 3.14 or without /proc.
pub fn mem_available() -> Option<u64> {
    meminfo("MemAvailable:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let t = "MemTotal:       24000000 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_meminfo(t, "MemAvailable:"), Some(12_000_000 * 1024));
        assert_eq!(parse_meminfo(t, "Nope:"), None);
        assert!(mem_available().is_some_and(|b| b > 0));
    }
}
