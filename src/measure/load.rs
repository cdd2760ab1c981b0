//! How busy the host was with other work while versus measured: the share
//! of the host's CPU time (all CPUs, /proc/stat) that processes other than
//! versus' own used. A run or block measured while a neighbour's build
//! took half the CPUs says more about the neighbour than about versus, so
//! `versus ab` leaves such blocks out and `versus compare` calls such runs
//! inconclusive.

/// Whose CPU time counts as versus' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// This process and its waited-for descendants (`versus run`: the VMM
    /// threads are its own, the workloads its children).
    SelfAndChildren,
    /// Only waited-for descendants (`versus ab`: each block is a child).
    Children,
}

/// CPU time counters of the whole host and of versus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuClock {
    /// Busy and total clock ticks of all CPUs.
    pub host_busy: u64,
    pub host_total: u64,
    /// versus' own CPU seconds.
    pub own_s: f64,
    whose: Whose,
}

fn rusage_s(who: nix::sys::resource::UsageWho) -> Option<f64> {
    let u = nix::sys::resource::getrusage(who).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Some(secs(u.user_time()) + secs(u.system_time()))
}

impl CpuClock {
    /// Reads the counters now; `None` where /proc/stat cannot be read.
    pub fn now(whose: Whose) -> Option<CpuClock> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let f: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        if f.len() < 8 {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is in
        // user; steal is time a hypervisor gave to someone else: foreign).
        let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
        let total = busy + f[3] + f[4];
        let mut own = rusage_s(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
        if whose == Whose::SelfAndChildren {
            own += rusage_s(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
        }
        Some(CpuClock { host_busy: busy, host_total: total, own_s: own, whose })
    }

    /// The foreign load from this reading to now.
    pub fn foreign_load_since(&self) -> Option<f64> {
        foreign_load(*self, CpuClock::now(self.whose)?)
    }
}

/// The share of the host's CPU time other processes used between two
/// readings: host busy time minus versus' own, over the host's total.
pub fn foreign_load(before: CpuClock, after: CpuClock) -> Option<f64> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten()? as f64;
    let total_s = after.host_total.checked_sub(before.host_total)? as f64 / ticks;
    if total_s <= 0.0 {
        return None;
    }
    let busy_s = after.host_busy.checked_sub(before.host_busy)? as f64 / ticks;
    let own_s = (after.own_s - before.own_s).max(0.0);
    Some(((busy_s - own_s) / total_s).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_load_is_host_time_minus_our_own() {
        let c = |busy, total, own_s| CpuClock { host_busy: busy, host_total: total, own_s, whose: Whose::Children };
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).unwrap().unwrap() as u64;
        // 10 s of two CPUs = 20 s; 12 s busy, 2 s of it ours: 50% foreign.
        let l = foreign_load(c(0, 0, 1.0), c(12 * hz, 20 * hz, 3.0)).unwrap();
        assert!((l - 0.5).abs() < 1e-9, "{l}");
        assert_eq!(foreign_load(c(0, 0, 0.0), c(hz, 20 * hz, 5.0)), Some(0.0), "clamped at 0");
        assert_eq!(foreign_load(c(5, 5, 0.0), c(5, 5, 0.0)), None, "no time passed");
    }

    #[test]
    fn our_own_busy_loop_is_not_foreign() {
        // Spin one thread of this process for a while: counted as ours, so
        // the foreign share stays below what the spin alone would be.
        let before = CpuClock::now(Whose::SelfAndChildren).expect("this host has /proc/stat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = CpuClock::now(Whose::SelfAndChildren).unwrap();
        assert!(after.own_s - before.own_s > 0.1, "the spin is counted as ours");
        assert!(foreign_load(before, after).is_some());
    }
}
