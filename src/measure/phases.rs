//! Boot timing: a total and named phases that add up to it.

use serde::Serialize;

/// Boot timing of one launch: from the start of the launch to the host's
/// receipt of the ready signal, with phases that partition that interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Boot {
    /// Monotonic ns at which the launch started.
    pub start_ns: u64,
    /// Monotonic ns at which the host received READY.
    pub ready_ns: u64,
    /// (phase name, ms), in order; they add up to `total_ms()`.
    pub phases: Vec<(&'static str, f64)>,
}

impl Boot {
    /// Builds phases from ordered timestamps: `marks[i]` is the end of phase
    /// `i`; the first phase starts at `start_ns`. A mark earlier than its
    /// predecessor (a clock read in another context that raced) is clamped,
    /// so phases are never negative and always sum to the total.
    pub fn from_marks(start_ns: u64, marks: &[(&'static str, u64)]) -> Boot {
        let mut prev = start_ns;
        let mut phases = Vec::with_capacity(marks.len());
        for &(name, t) in marks {
            let t = t.max(prev);
            phases.push((name, (t - prev) as f64 / 1e6));
            prev = t;
        }
        Boot { start_ns, ready_ns: prev, phases }
    }

    /// Total boot time in ms.
    pub fn total_ms(&self) -> f64 {
        self.ready_ns.saturating_sub(self.start_ns) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_clamp() {
        let b = Boot::from_marks(1_000_000, &[("a", 2_000_000), ("b", 1_500_000), ("c", 4_000_000)]);
        assert_eq!(b.phases, vec![("a", 1.0), ("b", 0.0), ("c", 2.0)]);
        let sum: f64 = b.phases.iter().map(|p| p.1).sum();
        assert!((sum - b.total_ms()).abs() < 1e-9);
    }
}
