//! The regression policy: for each metric, which way is better, which
//! statistic is compared, the smallest change that counts, α, and the
//! sample count and spread below which the gate will not call a metric
//! unchanged. The defaults live here, in [`BUILTIN`], each with its reason;
//! a TOML policy file (`--policy FILE`) overrides them per metric.
//!
//! ```toml
//! [defaults]            # every metric (overrides the built-in rules)
//! alpha = 0.01
//!
//! [metric."boot"]       # a metric name, `*` matches any characters
//! min_effect = 0.08
//!
//! [metric."vm-bare/*/call"]   # or platform/workload/metric
//! min_effect = 0.10
//!
//! [metric."interference.*"]
//! ignore = true
//!
//! [metric."probe:kernel.*"]   # probe verdicts are metrics `probe:<id>`
//! gate = false
//! ```
//!
//! Order: the global defaults, then the built-in rules, then the file's
//! `[defaults]`, then the file's rules; within the built-in rules and within
//! the file, a more specific pattern (platform/workload/metric over metric,
//! then more literal characters) applies after, and so over, a less specific
//! one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::data::MetricKey;
use super::error::CompareError;
use super::statistic::Statistic;

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Lower is better (times, bytes, ratios of slowdown).
    Lower,
    /// Higher is better (rates, verified instances).
    Higher,
}

/// How a metric is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Repeated measurements: permutation test and bootstrap interval.
    Sampled,
    /// Deterministic values (bytes on disk, counts): compared exactly, value
    /// by value (iteration by iteration), within `tolerance`.
    Exact,
}

/// The policy of one metric, all fields resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPolicy {
    pub kind: Kind,
    pub direction: Direction,
    pub statistic: Statistic,
    /// Smallest relative change that counts (0.05 = 5%): a regression needs
    /// the whole confidence interval of the change beyond it.
    pub min_effect: f64,
    /// Significance level for the BH-adjusted p-value.
    pub alpha: f64,
    /// Fewer samples on either side: inconclusive.
    pub min_samples: usize,
    /// MAD/median above this on either side, and no clear change:
    /// inconclusive (the noise could hide a change of `min_effect`).
    pub max_spread: f64,
    /// Exact metrics: relative difference tolerated (0 = exactly equal).
    pub tolerance: f64,
    /// Not compared at all.
    pub ignore: bool,
    /// Counts for the verdict and the exit code; `false` = reported only.
    pub gate: bool,
}

/// Overrides of one rule; `None` leaves the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFields {
    pub kind: Option<Kind>,
    pub direction: Option<Direction>,
    pub statistic: Option<Statistic>,
    pub min_effect: Option<f64>,
    pub alpha: Option<f64>,
    pub min_samples: Option<usize>,
    pub max_spread: Option<f64>,
    pub tolerance: Option<f64>,
    pub ignore: Option<bool>,
    pub gate: Option<bool>,
}

impl RuleFields {
    const NONE: RuleFields = RuleFields {
        kind: None,
        direction: None,
        statistic: None,
        min_effect: None,
        alpha: None,
        min_samples: None,
        max_spread: None,
        tolerance: None,
        ignore: None,
        gate: None,
    };

    fn apply(&self, p: &mut MetricPolicy) {
        if let Some(v) = self.kind {
            p.kind = v;
        }
        if let Some(v) = self.direction {
            p.direction = v;
        }
        if let Some(v) = self.statistic {
            p.statistic = v;
        }
        if let Some(v) = self.min_effect {
            p.min_effect = v;
        }
        if let Some(v) = self.alpha {
            p.alpha = v;
        }
        if let Some(v) = self.min_samples {
            p.min_samples = v;
        }
        if let Some(v) = self.max_spread {
            p.max_spread = v;
        }
        if let Some(v) = self.tolerance {
            p.tolerance = v;
        }
        if let Some(v) = self.ignore {
            p.ignore = v;
        }
        if let Some(v) = self.gate {
            p.gate = v;
        }
    }

    fn validate(&self) -> Result<(), String> {
        let frac = |name: &str, v: Option<f64>, max: f64| match v {
            Some(x) if !(0.0..=max).contains(&x) || x.is_nan() => Err(format!("`{name}` = {x} is outside 0..={max}")),
            _ => Ok(()),
        };
        frac("min_effect", self.min_effect, 10.0)?;
        frac("max_spread", self.max_spread, f64::MAX)?;
        frac("tolerance", self.tolerance, 10.0)?;
        match self.alpha {
            Some(a) if !(a > 0.0 && a < 1.0) => return Err(format!("`alpha` = {a} must be between 0 and 1 (exclusive)")),
            _ => {}
        }
        if self.min_samples == Some(0) {
            return Err("`min_samples` must be at least 1".into());
        }
        Ok(())
    }
}

/// The policy of a metric nothing else says anything about. Every number
/// here is a default a rule below or a policy file may override.
pub const GLOBAL: MetricPolicy = MetricPolicy {
    kind: Kind::Sampled,
    // Almost everything versus measures is a cost: time, bytes, slowdown.
    direction: Direction::Lower,
    statistic: Statistic::Median,
    // A change below 5% of a launch or compute time is within what a shared
    // host moves between two runs of the same build (this project's 2-core
    // CI host: container boot MAD/median about 20%, cpu about 10%), and
    // below what a user of the platform would notice.
    min_effect: 0.05,
    // With Benjamini-Hochberg across the ~50 gated metrics of a default run,
    // 1% keeps false regressions in A/A comparisons rarer than one in a
    // hundred CI runs, while a 10% shift of boot at 20-50 samples per side
    // still reaches p < 0.001.
    alpha: 0.01,
    // Below 10 samples per side the permutation test cannot reach small
    // p-values at all (5 against 5: the smallest p is 2/252 = 0.008, gone
    // after BH) and a bootstrap interval of the median rests on a handful
    // of order statistics.
    min_samples: 10,
    // MAD/median above 30% means the median's 95% interval at 20-50 samples
    // is wider than about ±10%: a 5% change could hide in it, so "no change"
    // cannot be claimed. The noisiest gated metric of a default run on the
    // CI host (container boot) sits at about 21%.
    max_spread: 0.30,
    tolerance: 0.0,
    ignore: false,
    gate: true,
};

/// A built-in rule: a pattern, its overrides and why.
pub struct BuiltinRule {
    pub pattern: &'static str,
    pub fields: RuleFields,
    pub reason: &'static str,
}

macro_rules! rule {
    ($pattern:expr, $reason:expr, { $($field:ident : $value:expr),* $(,)? }) => {
        BuiltinRule { pattern: $pattern, fields: RuleFields { $($field: Some($value),)* ..RuleFields::NONE }, reason: $reason }
    };
}

/// The built-in per-metric defaults, with the reason for each. The one
/// place they live; docs/compare.md lists them and `versus compare
/// --print-policy` prints them as a policy file.
pub const BUILTIN: &[BuiltinRule] = &[
    rule!("boot", "launch-to-ready latency: 5%, the noise of launches on a shared host; smaller is not user-visible", { min_effect: 0.05 }),
    rule!("teardown", "stop-to-released: 5%, as boot", { min_effect: 0.05 }),
    rule!("boot.*", "phases add up to boot, which is gated: a phase change that matters shows there, and gating each phase as well multiplies the tests (and BH's penalty) for one cause; reported only", { gate: false }),
    rule!("cpu", "compute time: 5%, frequency scaling and neighbours move it by a few %", { min_effect: 0.05 }),
    rule!("mem_touch", "page-touch time: 5%, as cpu", { min_effect: 0.05 }),
    rule!("call", "per-call time: 5%, as cpu", { min_effect: 0.05 }),
    rule!("mem.*", "memory per idle instance: 2%: counted in pages and nearly deterministic (A/A spread ~1%), and an instance 2% fatter is 2% fewer per host", { min_effect: 0.02 }),
    rule!("mem.overhead", "mem.host minus the process baseline: a difference of two measurements near 0, whose relative change means little; mem.host is gated", { gate: false }),
    rule!("density.*", "one value per instance count N (the iteration column is N): a curve, not repeated samples; reported only", { gate: false, min_effect: 0.02 }),
    rule!("density.launch_rate", "instances started per second: higher is better", { direction: Direction::Higher, min_effect: 0.05 }),
    rule!("storm.*", "boot storm figures: one value per storm and N (the iteration column is N), a curve over N with 1-3 storms per N: too few samples to gate; reported only", { gate: false, min_effect: 0.10 }),
    rule!("storm.launch_rate", "instances ready per second in a storm: higher is better", { direction: Direction::Higher }),
    rule!("interference.*", "victim slowdown ratios from 1-2 repetitions per run: too few samples to gate; reported only", { gate: false, min_effect: 0.10 }),
    rule!("image.*", "bytes on disk are deterministic for a given build: compared exactly; 1% tolerated, so that a workload program a few KiB larger is not a regression", { kind: Kind::Exact, tolerance: 0.01 }),
    rule!("surface.*", "attack-surface counts (host system calls, VM exit kinds) are deterministic: any increase is a regression", { kind: Kind::Exact, tolerance: 0.0 }),
    rule!("patch.artifacts", "artefacts to rewrite to patch N instances: a deterministic count", { kind: Kind::Exact, tolerance: 0.0 }),
    rule!("patch.bytes_written", "bytes written to patch N instances: deterministic; 1% tolerated as image.*", { kind: Kind::Exact, tolerance: 0.01 }),
    rule!("patch.verified_instances", "instances verified patched: a deterministic count, higher is better", { kind: Kind::Exact, tolerance: 0.0, direction: Direction::Higher }),
    rule!("patch.ms", "time to patch N instances: a timing, 5% as boot", { min_effect: 0.05 }),
    rule!("probe:*", "isolation probe verdicts: isolated -> exposed is a regression whatever the timing", { kind: Kind::Exact }),
];

/// A pattern over metric keys: `metric` or `platform/workload/metric`, each
/// part a glob where `*` matches any characters.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    platform: Option<String>,
    workload: Option<String>,
    metric: String,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [m] if !m.is_empty() => Ok(Pattern { text: text.into(), platform: None, workload: None, metric: m.to_string() }),
            [p, w, m] if !p.is_empty() && !w.is_empty() && !m.is_empty() => {
                Ok(Pattern { text: text.into(), platform: Some(p.to_string()), workload: Some(w.to_string()), metric: m.to_string() })
            }
            _ => Err(format!(
                "`{text}` is not a metric pattern: write `METRIC` or `PLATFORM/WORKLOAD/METRIC` (`*` matches anything, e.g. `boot.*`, `vm-bare/*/call`)"
            )),
        }
    }

    pub fn matches(&self, key: &MetricKey) -> bool {
        glob(&self.metric, &key.metric)
            && self.platform.as_deref().is_none_or(|p| glob(p, &key.platform))
            && self.workload.as_deref().is_none_or(|w| glob(w, &key.workload) || glob(w, key.workload_name()))
    }

    /// More specific patterns sort after less specific ones.
    fn specificity(&self) -> (usize, usize) {
        (self.platform.is_some() as usize, self.text.chars().filter(|&c| c != '*' && c != '/').count())
    }
}

/// `*` matches any run of characters (none included); everything else
/// matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The `[defaults]` table of a policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    statistic: Option<Statistic>,
    min_effect: Option<f64>,
    alpha: Option<f64>,
    min_samples: Option<usize>,
    max_spread: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    defaults: DefaultsFile,
    #[serde(default)]
    metric: BTreeMap<String, RuleFields>,
}

/// A rule in effect.
#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    fields: RuleFields,
}

/// The built-in defaults plus what a policy file overrides.
#[derive(Debug, Clone)]
pub struct Policy {
    builtin: Vec<Rule>,
    file_defaults: RuleFields,
    file_rules: Vec<Rule>,
    /// Where the overrides came from (for messages), if anywhere.
    pub source: Option<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::builtin()
    }
}

fn sort_rules(rules: &mut [Rule]) {
    rules.sort_by_key(|r| r.pattern.specificity());
}

impl Policy {
    /// The built-in defaults alone.
    pub fn builtin() -> Policy {
        let mut builtin: Vec<Rule> =
            BUILTIN.iter().map(|b| Rule { pattern: Pattern::parse(b.pattern).expect("built-in patterns parse"), fields: b.fields.clone() }).collect();
        sort_rules(&mut builtin);
        Policy { builtin, file_defaults: RuleFields::default(), file_rules: Vec::new(), source: None }
    }

    /// The defaults overridden by a policy file's text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let d = file.defaults;
        let file_defaults = RuleFields {
            statistic: d.statistic,
            min_effect: d.min_effect,
            alpha: d.alpha,
            min_samples: d.min_samples,
            max_spread: d.max_spread,
            ..RuleFields::default()
        };
        file_defaults.validate().map_err(|e| format!("[defaults]: {e}"))?;
        let mut file_rules = Vec::new();
        for (pattern, fields) in file.metric {
            fields.validate().map_err(|e| format!("[metric.\"{pattern}\"]: {e}"))?;
            file_rules.push(Rule { pattern: Pattern::parse(&pattern)?, fields });
        }
        sort_rules(&mut file_rules);
        let mut p = Policy::builtin();
        p.file_defaults = file_defaults;
        p.file_rules = file_rules;
        p.source = Some(origin.to_string());
        Ok(p)
    }

    /// Reads a policy file.
    pub fn load(path: &Path) -> Result<Policy, CompareError> {
        let text = std::fs::read_to_string(path).map_err(|e| CompareError::Policy { path: path.into(), message: format!("cannot read it: {e}") })?;
        Policy::from_toml(&text, &path.display().to_string()).map_err(|message| CompareError::Policy { path: path.into(), message })
    }

    /// The policy of one metric.
    pub fn resolve(&self, key: &MetricKey) -> MetricPolicy {
        let mut p = GLOBAL.clone();
        for r in self.builtin.iter().filter(|r| r.pattern.matches(key)) {
            r.fields.apply(&mut p);
        }
        self.file_defaults.apply(&mut p);
        for r in self.file_rules.iter().filter(|r| r.pattern.matches(key)) {
            r.fields.apply(&mut p);
        }
        p
    }

    /// The built-in policy as a policy file, each rule with its reason.
    pub fn builtin_as_toml() -> String {
        let g = GLOBAL;
        let mut out = String::from("# versus compare: the built-in regression policy (`versus compare --print-policy`).\n");
        out.push_str("# Copy what you want to change into your own file; docs/compare.md explains each field.\n\n[defaults]\n");
        out.push_str(&format!(
            "statistic = \"{}\"\nmin_effect = {}\nalpha = {}\nmin_samples = {}\nmax_spread = {}\n",
            g.statistic.name(),
            g.min_effect,
            g.alpha,
            g.min_samples,
            g.max_spread
        ));
        for b in BUILTIN {
            out.push_str(&format!("\n# {}\n[metric.\"{}\"]\n", b.reason, b.pattern));
            out.push_str(&toml::to_string(&b.fields).unwrap_or_default());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str, w: &str, m: &str) -> MetricKey {
        MetricKey::new(p, w, m, "ms")
    }

    #[test]
    fn globs() {
        assert!(glob("boot.*", "boot.cgroup"));
        assert!(!glob("boot.*", "boot"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYc"));
        assert!(!glob("a*b*c", "aXXbY"));
        assert!(glob("mem.*", "mem.host"));
    }

    #[test]
    fn builtin_defaults_by_metric() {
        let p = Policy::builtin();
        let boot = p.resolve(&key("process", "ready", "boot"));
        assert_eq!((boot.kind, boot.min_effect, boot.alpha, boot.min_samples, boot.gate), (Kind::Sampled, 0.05, 0.01, 10, true));
        assert!(!p.resolve(&key("container", "ready", "boot.cgroup")).gate);
        assert_eq!(p.resolve(&key("process", "idle", "mem.host")).min_effect, 0.02);
        assert!(!p.resolve(&key("process", "idle", "mem.overhead")).gate, "the more specific rule wins over mem.*");
        let rate = p.resolve(&key("process", "idle", "density.launch_rate"));
        assert_eq!((rate.direction, rate.gate, rate.min_effect), (Direction::Higher, false, 0.05));
        assert_eq!(p.resolve(&key("vm-bare", "shared", "image.total")).kind, Kind::Exact);
        assert_eq!(p.resolve(&key("container", "probe", "probe:kernel.shared")).kind, Kind::Exact);
    }

    #[test]
    fn a_policy_file_overrides_and_the_more_specific_pattern_wins() {
        let text = r#"
            [defaults]
            alpha = 0.05

            [metric."boot"]
            min_effect = 0.08

            [metric."vm-bare/*/boot"]
            min_effect = 0.20
            statistic = "mean"

            [metric."interference.*"]
            ignore = true

            [metric."boot.*"]
            gate = true
        "#;
        let p = Policy::from_toml(text, "test").unwrap();
        let b = p.resolve(&key("process", "ready", "boot"));
        assert_eq!((b.min_effect, b.alpha, b.statistic), (0.08, 0.05, Statistic::Median));
        let v = p.resolve(&key("vm-bare", "cpu:200000", "boot"));
        assert_eq!((v.min_effect, v.statistic), (0.20, Statistic::Mean));
        assert!(p.resolve(&key("process", "cpu:50000", "interference.cpu")).ignore);
        assert!(p.resolve(&key("process", "ready", "boot.spawn")).gate);
        assert_eq!(p.resolve(&key("process", "idle", "mem.host")).alpha, 0.05, "[defaults] reaches every metric");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, want) in [
            ("[metric.\"boot\"]\nmin_efect = 0.1\n", "min_efect"),
            ("[metric.\"a/b\"]\ngate = true\n", "not a metric pattern"),
            ("[defaults]\nalpha = 2.0\n", "alpha"),
            ("[metric.\"boot\"]\ndirection = \"up\"\n", "direction"),
            ("[metric.\"boot\"]\nmin_effect = -0.1\n", "min_effect"),
            ("[defaults]\ndirection = \"lower\"\n", "direction"),
        ] {
            let e = Policy::from_toml(text, "t").unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_builtin_policy_prints_as_a_file_that_parses_back_to_itself() {
        let text = Policy::builtin_as_toml();
        let p = Policy::from_toml(&text, "printed").unwrap();
        let b = Policy::builtin();
        for k in
            [key("process", "ready", "boot"), key("container", "ready", "boot.cgroup"), key("p", "idle", "density.launch_rate"), key("p", "x", "image.total")]
        {
            assert_eq!(p.resolve(&k), b.resolve(&k), "{k}");
        }
    }
}
