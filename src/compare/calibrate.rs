//! `versus calibrate`: an A/A comparison (one build against itself,
//! interleaved) measures each metric's noise floor on this host, the
//! smallest change the gate can see at the sample count used, and suggests
//! a policy file that does not ask the gate for more than that.
//!
//! The gate calls a regression only when the whole bootstrap interval of
//! the change lies beyond the minimum effect. Under A/A the interval is
//! centred near 0 and reaches out to about the noise at this sample count;
//! a real change of size d moves it to about d ± that reach, so it clears
//! 0 only when d exceeds the reach. The noise floor of a metric is
//! therefore max(|low|, |high|) of its A/A interval.

use serde::Serialize;

use super::policy::{Kind, Policy};
use super::verdict::{Comparison, Verdict};

/// One metric's noise floor.
#[derive(Debug, Clone, Serialize)]
pub struct NoiseFloor {
    pub label: String,
    pub pattern: String,
    pub unit: String,
    pub n: usize,
    /// Larger spread (MAD/median) of the two sides.
    pub spread: f64,
    pub change: Option<f64>,
    pub ci: (f64, f64),
    /// max(|low|, |high|): the smallest detectable relative change.
    pub floor: f64,
    pub min_effect: f64,
    pub max_spread: f64,
    pub gated: bool,
    /// The A/A verdict: anything but unchanged (or inconclusive for too
    /// few samples) means the host is not stable enough for this metric.
    pub verdict: Verdict,
}

impl NoiseFloor {
    /// The minimum effect the policy should ask for: the default, or the
    /// floor rounded up to the next whole percent when above it.
    pub fn suggested_min_effect(&self) -> f64 {
        if self.floor > self.min_effect {
            (self.floor * 100.0).ceil() / 100.0
        } else {
            self.min_effect
        }
    }
    /// Whether the default policy asks for more than this host gives.
    pub fn needs_a_rule(&self) -> bool {
        self.suggested_min_effect() > self.min_effect || self.spread > self.max_spread || matches!(self.verdict, Verdict::Regression | Verdict::Improvement)
    }
}

/// The noise floors of the sampled metrics of an A/A comparison.
pub fn noise_floors(c: &Comparison) -> Vec<NoiseFloor> {
    c.metrics
        .iter()
        .filter(|m| m.policy.kind == Kind::Sampled && !m.policy.ignore)
        .filter_map(|m| {
            let (lo, hi) = m.ci?;
            let (b, n) = (m.base.as_ref()?, m.new.as_ref()?);
            Some(NoiseFloor {
                label: m.label(),
                pattern: format!("{}/{}/{}", m.key.platform, m.key.workload, m.key.metric),
                unit: m.key.unit.clone(),
                n: b.n.min(n.n),
                spread: b.spread.max(n.spread),
                change: m.change,
                ci: (lo, hi),
                floor: lo.abs().max(hi.abs()),
                min_effect: m.policy.min_effect,
                max_spread: m.policy.max_spread,
                gated: m.gated(),
                verdict: m.verdict,
            })
        })
        .collect()
}

/// A policy file for this host: a rule for each gated metric whose floor
/// is above its minimum effect, whose spread is above the bound, or which
/// the A/A run flagged; each with the numbers behind it.
pub fn suggest_policy(floors: &[NoiseFloor], context: &str) -> String {
    let mut out = String::new();
    out.push_str("# versus policy suggested by `versus calibrate`\n");
    for line in context.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str("# A rule per gated metric whose noise floor on this host (the smallest change the\n");
    out.push_str("# gate can see at this sample count) is above the built-in minimum effect, or whose\n");
    out.push_str("# spread is above the bound. Use it with `versus compare --policy FILE` / `versus ab --policy FILE`.\n");
    // One rule per pattern (two units of one metric share it): the noisier.
    let mut by_pattern: std::collections::BTreeMap<&str, &NoiseFloor> = std::collections::BTreeMap::new();
    for f in floors.iter().filter(|f| f.gated && f.needs_a_rule()) {
        let e = by_pattern.entry(&f.pattern).or_insert(f);
        if f.floor > e.floor {
            *e = f;
        }
    }
    let any = !by_pattern.is_empty();
    for f in by_pattern.into_values() {
        out.push_str(&format!(
            "\n# {} [{}]: A/A change {:+.1}%, 95% CI [{:+.1}%, {:+.1}%] at n = {}; noise floor {:.1}% (default minimum effect {:.0}%); MAD/median {:.0}%\n",
            f.label,
            f.unit,
            f.change.unwrap_or(0.0) * 100.0,
            f.ci.0 * 100.0,
            f.ci.1 * 100.0,
            f.n,
            f.floor * 100.0,
            f.min_effect * 100.0,
            f.spread * 100.0
        ));
        if matches!(f.verdict, Verdict::Regression | Verdict::Improvement) {
            out.push_str(&format!("# the A/A comparison flagged this metric ({}): the host is not stable for it\n", f.verdict.as_str()));
        }
        out.push_str(&format!("[metric.\"{}\"]\nmin_effect = {:.2}\n", f.pattern, f.suggested_min_effect()));
        if f.spread > f.max_spread {
            out.push_str(&format!(
                "# noisier than the {:.0}% bound: more runs (--runs) would help; or widen the bound:\nmax_spread = {:.2}\n",
                f.max_spread * 100.0,
                (f.spread * 100.0).ceil() / 100.0 + 0.05
            ));
        }
    }
    if !any {
        out.push_str("\n# Every gated metric's noise floor is within its built-in minimum effect: the defaults fit this host.\n");
    }
    // The suggestion must be a valid policy file.
    debug_assert!(Policy::from_toml(&out, "suggestion").is_ok(), "{out}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::verdict::tests::{normal, run};
    use crate::compare::{compare, CompareOptions};

    #[test]
    fn floors_of_an_a_a_comparison_and_a_policy_that_parses() {
        // Quiet memory, noisy boot: only boot needs a rule.
        let a = run("a", &[("p", "ready", "boot", "ms", normal(2.0, 0.15, 40, 1)), ("p", "idle", "mem.host", "bytes", normal(17e6, 0.002, 20, 2))]);
        let b = run("b", &[("p", "ready", "boot", "ms", normal(2.0, 0.15, 40, 3)), ("p", "idle", "mem.host", "bytes", normal(17e6, 0.002, 20, 4))]);
        let c = compare(&a, &b, &Policy::builtin(), &CompareOptions::default());
        let floors = noise_floors(&c);
        assert_eq!(floors.len(), 2);
        let boot = floors.iter().find(|f| f.label == "p/ready/boot").unwrap();
        let mem = floors.iter().find(|f| f.label == "p/idle/mem.host").unwrap();
        assert!(boot.floor > 0.05 && boot.floor == boot.ci.0.abs().max(boot.ci.1.abs()), "{boot:?}");
        assert!(mem.floor < 0.02 && !mem.needs_a_rule(), "{mem:?}");
        assert!(boot.needs_a_rule());
        assert_eq!(boot.suggested_min_effect(), (boot.floor * 100.0).ceil() / 100.0);
        let text = suggest_policy(&floors, "host: test\nsecond line");
        assert!(text.contains("# host: test\n# second line\n"), "{text}");
        let p = Policy::from_toml(&text, "suggested").expect("the suggestion is a policy file");
        let key = crate::compare::MetricKey::new("p", "ready", "boot", "ms");
        assert_eq!(p.resolve(&key).min_effect, boot.suggested_min_effect());
        assert!(!text.contains("mem.host\"]"), "no rule for a quiet metric: {text}");
    }
}
