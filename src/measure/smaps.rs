//! Reading a process's memory from `/proc/PID/smaps_rollup` and
//! `/proc/PID/smaps`: PSS (shared pages divided among the processes that map
//! them) and RSS, in total and inside given address ranges (a VMM's guest
//! RAM). One parser serves both files: smaps_rollup is smaps with a single
//! `[rollup]` mapping.

/// Resident memory of a set of mappings, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PssRss {
    pub pss: u64,
    pub rss: u64,
}

impl std::ops::Add for PssRss {
    type Output = PssRss;
    fn add(self, o: PssRss) -> PssRss {
        PssRss { pss: self.pss + o.pss, rss: self.rss + o.rss }
    }
}

/// A process's memory: in total, and the part in mappings that start inside
/// the ranges asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Smaps {
    pub total: PssRss,
    pub in_ranges: PssRss,
}

impl Smaps {
    /// What lies outside the ranges.
    pub fn outside(&self) -> PssRss {
        PssRss { pss: self.total.pss.saturating_sub(self.in_ranges.pss), rss: self.total.rss.saturating_sub(self.in_ranges.rss) }
    }
}

/// Why a process's memory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SmapsError {
    #[error("cannot read {path}: {source} (the process may have exited; smaps_rollup needs Linux 4.14 or later)")]
    Read { path: String, source: std::io::Error },
    #[error("{path} has no `{field}` line: not a smaps file of this kernel's format")]
    Missing { path: String, field: &'static str },
}

/// PSS and RSS of `pid` (smaps_rollup).
pub fn rollup(pid: i32) -> Result<PssRss, SmapsError> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).map_err(|source| SmapsError::Read { path: path.clone(), source })?;
    parse(&text, &[]).map(|s| s.total).map_err(|field| SmapsError::Missing { path, field })
}

/// PSS and RSS of `pid`, in total and inside `ranges` (host address,
/// length), from the per-mapping smaps.
pub fn split(pid: i32, ranges: &[(u64, u64)]) -> Result<Smaps, SmapsError> {
    let path = format!("/proc/{pid}/smaps");
    let text = std::fs::read_to_string(&path).map_err(|source| SmapsError::Read { path: path.clone(), source })?;
    parse(&text, ranges).map_err(|field| SmapsError::Missing { path, field })
}

/// The address ranges (start, length) of `pid`'s mappings whose path
/// contains `needle` (a VMM's guest RAM: QEMU's `/memfd:memory-backend-memfd`).
pub fn ranges_named(pid: i32, needle: &str) -> Result<Vec<(u64, u64)>, SmapsError> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|source| SmapsError::Read { path, source })?;
    Ok(parse_ranges(&text, needle))
}

/// [`ranges_named`] of a maps text.
pub fn parse_ranges(text: &str, needle: &str) -> Vec<(u64, u64)> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(5).is_some_and(|p| p.contains(needle)))
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            let (a, b) = (u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?);
            (b > a).then_some((a, b - a))
        })
        .collect()
}

/// Parses an smaps or smaps_rollup text. A missing `Pss:` or `Rss:` line
/// (no mapping at all, or another format) is an error naming the field, not
/// a zero.
pub fn parse(text: &str, ranges: &[(u64, u64)]) -> Result<Smaps, &'static str> {
    let mut s = Smaps::default();
    let (mut seen_pss, mut seen_rss) = (false, false);
    let mut inside = false;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(first) = it.next() else { continue };
        if let Some((a, _)) = first.split_once('-') {
            if let Ok(start) = u64::from_str_radix(a, 16) {
                inside = ranges.iter().any(|&(g, len)| start >= g && start < g.saturating_add(len));
                continue;
            }
        }
        let kb = || it.clone().next().and_then(|v| v.parse::<u64>().ok()).map(|v| v * 1024);
        match first {
            "Rss:" => {
                let v = kb().ok_or("Rss")?;
                seen_rss = true;
                s.total.rss += v;
                if inside {
                    s.in_ranges.rss += v;
                }
            }
            "Pss:" => {
                let v = kb().ok_or("Pss")?;
                seen_pss = true;
                s.total.pss += v;
                if inside {
                    s.in_ranges.pss += v;
                }
            }
            _ => {}
        }
    }
    match (seen_pss, seen_rss) {
        (false, _) => Err("Pss"),
        (_, false) => Err("Rss"),
        _ => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rollup_and_per_mapping_text() {
        let rollup_text = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:                1024 kB\nPss:                 600 kB\nPss_Anon: 500 kB\n";
        assert_eq!(parse(rollup_text, &[]).unwrap().total, PssRss { pss: 600 * 1024, rss: 1024 * 1024 });
        let smaps = "55d000000000-55d000001000 r-xp 00000000 08:01 1 /bin/x\nRss:                   8 kB\nPss:                   4 kB\n\
7f0000000000-7f0000600000 rw-p 00000000 00:00 0\nRss:                2048 kB\nPss:                2048 kB\n";
        let s = parse(smaps, &[(0x7f00_0000_0000, 0x60_0000)]).unwrap();
        assert_eq!(s.total, PssRss { pss: 2052 * 1024, rss: 2056 * 1024 });
        assert_eq!(s.in_ranges, PssRss { pss: 2048 * 1024, rss: 2048 * 1024 });
        assert_eq!(s.outside(), PssRss { pss: 4 * 1024, rss: 8 * 1024 });
    }

    #[test]
    fn finds_named_mappings() {
        let maps = "55d000000000-55d000001000 r-xp 00000000 08:01 1 /usr/bin/qemu-system-x86_64\n\
7f0000000000-7f0010000000 rw-s 00000000 00:01 77 /memfd:memory-backend-memfd (deleted)\n\
7f0010000000-7f0010001000 rw-p 00000000 00:00 0\n";
        assert_eq!(parse_ranges(maps, "memfd:memory-backend-memfd"), vec![(0x7f00_0000_0000, 0x1000_0000)]);
        assert!(parse_ranges(maps, "nothing").is_empty());
    }

    #[test]
    fn missing_fields_are_errors() {
        assert_eq!(parse("", &[]), Err("Pss"));
        assert_eq!(parse("0-1 r 0 0 0\nPss: 4 kB\n", &[]), Err("Rss"));
        assert_eq!(parse("0-1 r 0 0 0\nPss: x kB\nRss: 4 kB\n", &[]), Err("Pss"));
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let r = rollup(me).unwrap();
        assert!(r.pss > 0 && r.rss >= r.pss, "{r:?}");
        let s = split(me, &[]).unwrap();
        assert!(s.total.rss > 0 && s.in_ranges == PssRss::default());
        assert!(matches!(rollup(-1), Err(SmapsError::Read { .. })));
    }
}
