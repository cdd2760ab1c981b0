//! The comparison itself: each metric of BASE against the same metric of
//! NEW under its policy, each probe verdict against its old one, and the
//! overall verdict that decides the exit code.
//!
//! A sampled metric is a **regression** when the BH-adjusted p-value of the
//! permutation test is below α *and* the whole bootstrap 95% interval of
//! the relative change lies beyond the minimum effect on the worse side; an
//! **improvement** symmetrically. Otherwise it is **unchanged**, unless it
//! is **inconclusive**: fewer than `min_samples` on a side, a spread
//! (MAD/median) above `max_spread` on a side (noise wide enough to hide a
//! change of the minimum effect: a change the interval clears despite the
//! noise is still reported), a zero baseline, a metric missing from NEW, a
//! workload whose parameter one side does not name, or host fingerprints
//! that differ. Every inconclusive verdict says which of these it was.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::bootstrap::relative_change_ci;
use super::data::{HostField, HostFingerprint, MetricKey, RunData};
use super::fdr::bh_adjust;
use super::permutation::permutation_test;
use super::policy::{Direction, Kind, MetricPolicy, Policy};
use super::rng::{seed_for, DEFAULT_SEED};
use super::statistic::{median, spread};

/// Settings of the resampling.
#[derive(Debug, Clone, Serialize)]
pub struct CompareOptions {
    /// Random splits of the permutation test (at least 10 000).
    pub resamples: usize,
    /// Resamples of the bootstrap interval.
    pub bootstrap_resamples: usize,
    /// A metric whose p-value after `resamples` splits is small (fewer than
    /// 20 extreme splits) is re-tested with this many, so that after the BH
    /// correction across many metrics it is not held back by the resolution
    /// of the p-value (1 / (resamples + 1)).
    pub max_resamples: usize,
    pub seed: u64,
    /// Fingerprint fields whose difference does not make the comparison
    /// inconclusive (`versus ab` ignores the versus version: the two builds
    /// are what it compares).
    pub ignore_host_fields: Vec<HostField>,
    /// Multiplies every metric's α (`versus ab` divides α among its looks).
    pub alpha_scale: f64,
    /// A run during which other processes used more than this share of the
    /// host's CPU makes the comparison inconclusive (1 = never).
    pub max_foreign_load: f64,
    /// Worker threads (results do not depend on it).
    pub threads: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            resamples: 10_000,
            bootstrap_resamples: 10_000,
            max_resamples: 200_000,
            seed: DEFAULT_SEED,
            ignore_host_fields: Vec::new(),
            alpha_scale: 1.0,
            // A neighbour using a quarter of the CPUs moves launch times by
            // more than the 5% minimum effect on a small host.
            max_foreign_load: 0.25,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8),
        }
    }
}

/// A metric's (or probe's) verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Regression,
    Inconclusive,
    Improvement,
    Unchanged,
    /// Only in NEW: nothing to compare with.
    Added,
    /// Ignored by the policy.
    Ignored,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Improvement => "improvement",
            Verdict::Unchanged => "unchanged",
            Verdict::Added => "added",
            Verdict::Ignored => "ignored",
        }
    }
}

/// Why a metric is inconclusive.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// Fewer samples than the policy's minimum on a side.
    TooFewSamples { base: usize, new: usize, min: usize },
    /// MAD/median above the bound on a side.
    Noisy { base: f64, new: f64, max: f64 },
    /// The host fingerprints (or versus versions) differ.
    HostDiffers { fields: Vec<HostField>, otherwise: Verdict },
    /// Other processes used much of the host's CPU during a run.
    HostBusy { detail: String, otherwise: Verdict },
    /// In BASE, not in NEW.
    MissingInNew,
    /// BASE's statistic is 0: no relative change.
    ZeroBaseline,
    /// One side names the workload's parameter, the other does not.
    WorkloadParameterUnknown { base: String, new: String },
    /// An exact metric's value differs between the blocks of one side.
    NotDeterministic { side: &'static str, values: Vec<f64> },
    /// A probe's verdict differs between the blocks of one side.
    ProbeFlaky { side: &'static str, results: Vec<String> },
    /// A probe errored, or no longer applies.
    ProbeUnknown { detail: String },
}

impl Reason {
    /// Whether more samples could resolve it (`versus ab` re-tests then).
    pub fn more_samples_may_help(&self) -> bool {
        matches!(self, Reason::TooFewSamples { .. } | Reason::Noisy { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Reason::TooFewSamples { base, new, min } => format!("too few samples ({base} in BASE, {new} in NEW; at least {min} needed)"),
            Reason::Noisy { base, new, max } => {
                format!("too noisy to call unchanged (MAD/median {:.0}% in BASE, {:.0}% in NEW; bound {:.0}%)", base * 100.0, new * 100.0, max * 100.0)
            }
            Reason::HostDiffers { fields, otherwise } => {
                format!("hosts differ ({}); on one host this would be: {}", fields.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "), otherwise.as_str())
            }
            Reason::HostBusy { detail, otherwise } => format!("{detail}; on a quiet host this would be: {}", otherwise.as_str()),
            Reason::MissingInNew => "missing in NEW (the platform or workload did not run, or failed)".into(),
            Reason::ZeroBaseline => "BASE is 0: no relative change".into(),
            Reason::WorkloadParameterUnknown { base, new } => {
                format!("workload `{base}` in BASE and `{new}` in NEW: one side does not name its parameter, so they may be different benchmarks")
            }
            Reason::NotDeterministic { side, values } => format!("not deterministic: {side} has {values:?} across its runs (give it a tolerance)"),
            Reason::ProbeFlaky { side, results } => format!("the probe's verdict varies across the runs of {side}: {}", results.join(", ")),
            Reason::ProbeUnknown { detail } => detail.clone(),
        }
    }
}

/// One side of a metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub n: usize,
    /// The compared statistic (or the exact value).
    pub value: f64,
    pub spread: f64,
}

/// The comparison of one metric (for an exact metric with several
/// iterations, of one iteration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricResult {
    pub key: MetricKey,
    /// The workload as NEW names it, when it differs from BASE's.
    pub new_workload: Option<String>,
    /// Exact metrics: the iteration (the instance count N for image.*).
    pub iteration: Option<u32>,
    pub policy: MetricPolicy,
    pub base: Option<Side>,
    pub new: Option<Side>,
    /// Relative change new / base - 1.
    pub change: Option<f64>,
    /// Bootstrap 95% interval of the relative change.
    pub ci: Option<(f64, f64)>,
    pub p_value: Option<f64>,
    /// BH-adjusted p-value.
    pub q_value: Option<f64>,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
    /// What else the reader should know (a significant change below the
    /// minimum effect, a noisy side).
    pub notes: Vec<String>,
}

impl MetricResult {
    /// `platform/workload/metric`, with `[N]` for an iteration.
    pub fn label(&self) -> String {
        let w = match &self.new_workload {
            Some(n) => format!("{}->{}", self.key.workload, n),
            None => self.key.workload.clone(),
        };
        match self.iteration {
            Some(i) => format!("{}/{}/{}[{}]", self.key.platform, w, self.key.metric, i),
            None => format!("{}/{}/{}", self.key.platform, w, self.key.metric),
        }
    }
    pub fn gated(&self) -> bool {
        self.policy.gate && !self.policy.ignore
    }
}

/// The comparison of one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub platform: String,
    pub probe: String,
    pub category: String,
    pub base: Option<String>,
    pub new: Option<String>,
    pub gate: bool,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
}

/// What is known about a side.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub hostname: String,
    pub host: HostFingerprint,
    pub blocks: u32,
}

impl RunInfo {
    fn of(r: &RunData) -> RunInfo {
        RunInfo {
            run_id: r.run_id.clone(),
            versus_version: r.versus_version.clone(),
            git_revision: r.git_revision.clone(),
            hostname: r.hostname.clone(),
            host: r.host.clone(),
            blocks: r.blocks,
        }
    }
}

/// A fingerprint field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostDifference {
    pub field: HostField,
    pub base: String,
    pub new: String,
    /// Ignored by the options (still reported).
    pub ignored: bool,
}

/// The overall verdict, which is the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    /// Exit 0.
    NoRegression,
    /// Exit 1.
    Regression,
    /// Exit 2.
    Inconclusive,
}

impl Overall {
    pub fn exit_code(self) -> u8 {
        match self {
            Overall::NoRegression => 0,
            Overall::Regression => 1,
            Overall::Inconclusive => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::NoRegression => "no regression",
            Overall::Regression => "regression",
            Overall::Inconclusive => "inconclusive",
        }
    }
}

/// Everything a comparison found.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub base: RunInfo,
    pub new: RunInfo,
    pub policy_source: Option<String>,
    pub options: CompareOptions,
    pub host_differences: Vec<HostDifference>,
    pub metrics: Vec<MetricResult>,
    pub probes: Vec<ProbeResult>,
    pub overall: Overall,
    /// Why the overall verdict is what it is, one line each.
    pub summary: Vec<String>,
}

impl Comparison {
    /// Gated metric and probe verdicts, counted.
    pub fn counts(&self) -> BTreeMap<Verdict, usize> {
        let mut c = BTreeMap::new();
        for m in self.metrics.iter().filter(|m| m.gated()) {
            *c.entry(m.verdict).or_insert(0) += 1;
        }
        for p in self.probes.iter().filter(|p| p.gate) {
            *c.entry(p.verdict).or_insert(0) += 1;
        }
        c
    }
}

/// Pairs BASE's metrics with NEW's: by equal key; a key left over on one
/// side whose workload does not name its parameter is paired with the one
/// key of the other side that differs only by naming it.
fn pair_keys(base: &RunData, new: &RunData) -> Vec<(Option<MetricKey>, Option<MetricKey>)> {
    let bk: BTreeSet<&MetricKey> = base.samples.keys().collect();
    let nk: BTreeSet<&MetricKey> = new.samples.keys().collect();
    let mut out: Vec<(Option<MetricKey>, Option<MetricKey>)> = bk.intersection(&nk).map(|k| (Some((*k).clone()), Some((*k).clone()))).collect();
    let only_base: Vec<&MetricKey> = bk.difference(&nk).copied().collect();
    let mut only_new: Vec<&MetricKey> = nk.difference(&bk).copied().collect();
    let loose = |a: &MetricKey, b: &MetricKey| {
        a.platform == b.platform
            && a.metric == b.metric
            && a.unit == b.unit
            && a.workload_name() == b.workload_name()
            && a.workload_has_parameter() != b.workload_has_parameter()
    };
    for b in only_base {
        let partners: Vec<usize> = only_new.iter().enumerate().filter(|(_, n)| loose(b, n)).map(|(i, _)| i).collect();
        if partners.len() == 1 {
            let n = only_new.remove(partners[0]);
            out.push((Some(b.clone()), Some(n.clone())));
        } else {
            out.push((Some(b.clone()), None));
        }
    }
    out.extend(only_new.into_iter().map(|n| (None, Some(n.clone()))));
    out.sort_by(|a, b| a.0.as_ref().or(a.1.as_ref()).cmp(&b.0.as_ref().or(b.1.as_ref())));
    out
}

fn probe_key(platform: &str, probe: &str) -> MetricKey {
    MetricKey::new(platform, "probe", &format!("probe:{probe}"), "verdict")
}

/// Whether `change` is beyond `min_effect` on the worse (`Some(true)`) or
/// better (`Some(false)`) side of `direction`, for the interval `(lo, hi)`.
fn beyond(direction: Direction, (lo, hi): (f64, f64), min_effect: f64) -> Option<bool> {
    let (worse, better) = match direction {
        Direction::Lower => (lo > min_effect, hi < -min_effect),
        Direction::Higher => (hi < -min_effect, lo > min_effect),
    };
    if worse {
        Some(true)
    } else if better {
        Some(false)
    } else {
        None
    }
}

/// The sampled-metric statistics before the BH step.
struct Tested {
    index: usize,
    p: f64,
}

fn sampled(bkey: &MetricKey, base: &[f64], new: &[f64], policy: &MetricPolicy, opts: &CompareOptions) -> (MetricResult, Option<f64>) {
    let side = |xs: &[f64]| {
        if xs.is_empty() {
            None
        } else {
            Some(Side { n: xs.len(), value: policy.statistic.of(&mut xs.to_vec()), spread: spread(xs) })
        }
    };
    let mut r = MetricResult {
        key: bkey.clone(),
        new_workload: None,
        iteration: None,
        policy: policy.clone(),
        base: side(base),
        new: side(new),
        change: None,
        ci: None,
        p_value: None,
        q_value: None,
        verdict: Verdict::Unchanged,
        reasons: Vec::new(),
        notes: Vec::new(),
    };
    if base.len() < policy.min_samples || new.len() < policy.min_samples {
        r.verdict = Verdict::Inconclusive;
        r.reasons.push(Reason::TooFewSamples { base: base.len(), new: new.len(), min: policy.min_samples });
        if let (Some(b), Some(n)) = (&r.base, &r.new) {
            if b.value != 0.0 {
                r.change = Some(n.value / b.value - 1.0);
            }
        }
        return (r, None);
    }
    let (b, n) = match (&r.base, &r.new) {
        (Some(b), Some(n)) => (b.clone(), n.clone()),
        _ => return (r, None),
    };
    if b.value == 0.0 {
        if base.iter().chain(new.iter()).all(|x| *x == 0.0) {
            r.change = Some(0.0);
            r.p_value = Some(1.0);
            return (r, Some(1.0));
        }
        r.verdict = Verdict::Inconclusive;
        r.reasons.push(Reason::ZeroBaseline);
        return (r, None);
    }
    let seed = seed_for(opts.seed, &[&bkey.platform, &bkey.workload, &bkey.metric, &bkey.unit]);
    let mut test = permutation_test(base, new, policy.statistic, opts.resamples, seed);
    if test.extreme < 20 && opts.max_resamples > opts.resamples {
        test = permutation_test(base, new, policy.statistic, opts.max_resamples, seed);
    }
    r.change = Some(n.value / b.value - 1.0);
    r.ci = relative_change_ci(base, new, policy.statistic, opts.bootstrap_resamples, 0.95, seed ^ 0xb007);
    r.p_value = Some(test.p_value);
    (r, Some(test.p_value))
}

/// Turns a sampled metric's statistics and q-value into its verdict.
fn decide_sampled(r: &mut MetricResult, alpha_scale: f64) {
    if r.verdict == Verdict::Inconclusive {
        return;
    }
    let (Some(q), Some(b), Some(n)) = (r.q_value, &r.base, &r.new) else { return };
    let alpha = r.policy.alpha * alpha_scale;
    let direction_of = r.ci.and_then(|ci| beyond(r.policy.direction, ci, r.policy.min_effect));
    let significant = q < alpha;
    r.verdict = match (significant, direction_of) {
        (true, Some(true)) => Verdict::Regression,
        (true, Some(false)) => Verdict::Improvement,
        _ => Verdict::Unchanged,
    };
    if r.verdict == Verdict::Unchanged {
        if significant && r.change.is_some_and(|c| c != 0.0) {
            r.notes.push(format!("significant (q = {q:.2e}) but the interval does not clear the {:.0}% minimum effect", r.policy.min_effect * 100.0));
        }
        let max = r.policy.max_spread;
        if b.spread > max || n.spread > max {
            r.verdict = Verdict::Inconclusive;
            r.reasons.push(Reason::Noisy { base: b.spread, new: n.spread, max });
        }
    } else if b.spread > r.policy.max_spread || n.spread > r.policy.max_spread {
        r.notes.push(format!(
            "noisy (MAD/median {:.0}% / {:.0}%), but the interval clears the minimum effect all the same",
            b.spread * 100.0,
            n.spread * 100.0
        ));
    }
}

/// Compares exact (deterministic) values, iteration by iteration.
fn exact(bkey: &MetricKey, base: &RunData, new: &RunData, nkey: &MetricKey, policy: &MetricPolicy) -> Vec<MetricResult> {
    let by_iter = |run: &RunData, key: &MetricKey| {
        let mut m: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for o in run.samples.get(key).into_iter().flatten() {
            m.entry(o.iteration).or_default().push(o.value);
        }
        m
    };
    let b = by_iter(base, bkey);
    let n = by_iter(new, nkey);
    let iterations: BTreeSet<u32> = b.keys().chain(n.keys()).copied().collect();
    let multi = iterations.len() > 1;
    let within = |a: f64, c: f64| {
        if a == c {
            true
        } else if a == 0.0 {
            false
        } else {
            ((c / a) - 1.0).abs() <= policy.tolerance
        }
    };
    let mut out = Vec::new();
    for it in iterations {
        let bv = b.get(&it).cloned().unwrap_or_default();
        let nv = n.get(&it).cloned().unwrap_or_default();
        let mut r = MetricResult {
            key: bkey.clone(),
            new_workload: None,
            iteration: multi.then_some(it),
            policy: policy.clone(),
            base: (!bv.is_empty()).then(|| Side { n: bv.len(), value: median(&bv), spread: spread(&bv) }),
            new: (!nv.is_empty()).then(|| Side { n: nv.len(), value: median(&nv), spread: spread(&nv) }),
            change: None,
            ci: None,
            p_value: None,
            q_value: None,
            verdict: Verdict::Unchanged,
            reasons: Vec::new(),
            notes: Vec::new(),
        };
        for (side, vals) in [("BASE", &bv), ("NEW", &nv)] {
            if vals.iter().any(|v| !within(vals[0], *v)) {
                r.reasons.push(Reason::NotDeterministic { side, values: vals.clone() });
            }
        }
        match (bv.first(), nv.first()) {
            (Some(_), None) => {
                r.verdict = Verdict::Inconclusive;
                r.reasons.push(Reason::MissingInNew);
            }
            (None, Some(_)) => r.verdict = Verdict::Added,
            (Some(_), Some(_)) if !r.reasons.is_empty() => r.verdict = Verdict::Inconclusive,
            (Some(&x), Some(&y)) => {
                if x != 0.0 {
                    r.change = Some(y / x - 1.0);
                }
                if !within(x, y) {
                    let worse = match policy.direction {
                        Direction::Lower => y > x,
                        Direction::Higher => y < x,
                    };
                    r.verdict = if worse { Verdict::Regression } else { Verdict::Improvement };
                }
            }
            (None, None) => {}
        }
        out.push(r);
    }
    out
}

/// The verdict of one probe from its results in BASE and NEW.
fn probe_verdict(base: &[String], new: &[String]) -> (Verdict, Vec<Reason>) {
    let distinct = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>();
    let (bd, nd) = (distinct(base), distinct(new));
    if bd.len() > 1 {
        return (Verdict::Inconclusive, vec![Reason::ProbeFlaky { side: "BASE", results: bd }]);
    }
    if nd.len() > 1 {
        return (Verdict::Inconclusive, vec![Reason::ProbeFlaky { side: "NEW", results: nd }]);
    }
    let unknown = |d: &str| (Verdict::Inconclusive, vec![Reason::ProbeUnknown { detail: d.to_string() }]);
    match (bd.first().map(String::as_str), nd.first().map(String::as_str)) {
        (None, None) => (Verdict::Unchanged, vec![]),
        (None, Some(_)) => (Verdict::Added, vec![]),
        (Some("isolated"), None) => unknown("isolated in BASE, not run in NEW"),
        (Some(_), None) => (Verdict::Unchanged, vec![]),
        (Some(b), Some(n)) if b == n => (Verdict::Unchanged, vec![]),
        (Some(_), Some("exposed")) if base.iter().all(|b| b == "isolated" || b == "not_applicable") => (Verdict::Regression, vec![]),
        (Some("exposed"), Some("isolated")) => (Verdict::Improvement, vec![]),
        (Some("error"), Some("exposed")) => unknown("errored in BASE, exposed in NEW: was it exposed before?"),
        (Some(_), Some("error")) => unknown("the probe errored in NEW"),
        (Some("isolated"), Some("not_applicable")) => unknown("isolated in BASE, no longer applies in NEW"),
        (Some(_), Some(_)) => (Verdict::Unchanged, vec![]),
    }
}

/// Compares NEW against BASE under `policy`.
pub fn compare(base: &RunData, new: &RunData, policy: &Policy, opts: &CompareOptions) -> Comparison {
    let host_differences: Vec<HostDifference> = HostField::ALL
        .iter()
        .filter(|f| base.host_field(**f) != new.host_field(**f))
        .map(|&f| HostDifference { field: f, base: base.host_field(f).into(), new: new.host_field(f).into(), ignored: opts.ignore_host_fields.contains(&f) })
        .collect();
    let differing: Vec<HostField> = host_differences.iter().filter(|d| !d.ignored).map(|d| d.field).collect();

    // Sampled metrics are tested in parallel (each with its own seed, so
    // the results do not depend on the split); exact ones are cheap.
    let pairs = pair_keys(base, new);
    let mut metrics: Vec<MetricResult> = Vec::new();
    let mut jobs: Vec<(usize, MetricKey, MetricKey, MetricPolicy)> = Vec::new();
    for (bk, nk) in pairs {
        let key = bk.clone().or(nk.clone()).expect("a pair has a side");
        let policy = policy.resolve(&key);
        let placeholder = |verdict: Verdict, reasons: Vec<Reason>| MetricResult {
            key: key.clone(),
            new_workload: None,
            iteration: None,
            policy: policy.clone(),
            base: None,
            new: None,
            change: None,
            ci: None,
            p_value: None,
            q_value: None,
            verdict,
            reasons,
            notes: Vec::new(),
        };
        if policy.ignore {
            metrics.push(placeholder(Verdict::Ignored, vec![]));
            continue;
        }
        match (bk, nk) {
            (Some(b), None) => {
                let mut r = placeholder(Verdict::Inconclusive, vec![Reason::MissingInNew]);
                let v = base.values(&b);
                r.base = (!v.is_empty()).then(|| Side { n: v.len(), value: policy.statistic.of(&mut v.clone()), spread: spread(&v) });
                metrics.push(r);
            }
            (None, Some(n)) => {
                let mut r = placeholder(Verdict::Added, vec![]);
                let v = new.values(&n);
                r.new = (!v.is_empty()).then(|| Side { n: v.len(), value: policy.statistic.of(&mut v.clone()), spread: spread(&v) });
                metrics.push(r);
            }
            (Some(b), Some(n)) => {
                if policy.kind == Kind::Exact {
                    let mut rs = exact(&b, base, new, &n, &policy);
                    if b != n {
                        for r in &mut rs {
                            r.new_workload = Some(n.workload.clone());
                            r.verdict = Verdict::Inconclusive;
                            r.reasons.push(Reason::WorkloadParameterUnknown { base: b.workload.clone(), new: n.workload.clone() });
                        }
                    }
                    metrics.extend(rs);
                } else {
                    metrics.push(placeholder(Verdict::Unchanged, vec![]));
                    jobs.push((metrics.len() - 1, b, n, policy));
                }
            }
            (None, None) => {}
        }
    }

    let threads = opts.threads.max(1);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<(usize, MetricResult, Option<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(i, b, n, p)| {
                            let (mut r, pv) = sampled(b, &base.values(b), &new.values(n), p, opts);
                            if b != n {
                                r.new_workload = Some(n.workload.clone());
                            }
                            (*i, r, pv)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a comparison thread panicked")).collect()
    });
    let mut tested: Vec<(bool, Tested)> = Vec::new();
    for (i, r, p) in results {
        let gate = r.gated();
        metrics[i] = r;
        if let Some(p) = p {
            tested.push((gate, Tested { index: i, p }));
        }
    }
    // Benjamini-Hochberg within each family: the gated metrics (which
    // decide the exit code) and the reported-only ones, so that adding
    // informational rows never costs the gate power.
    for family in [true, false] {
        let members: Vec<&Tested> = tested.iter().filter(|(g, _)| *g == family).map(|(_, t)| t).collect();
        let q = bh_adjust(&members.iter().map(|t| t.p).collect::<Vec<_>>());
        for (t, q) in members.iter().zip(q) {
            metrics[t.index].q_value = Some(q);
        }
    }
    for m in &mut metrics {
        if m.policy.kind == Kind::Sampled {
            decide_sampled(m, opts.alpha_scale);
        }
        if m.new_workload.is_some() && m.verdict != Verdict::Inconclusive {
            let (b, n) = (m.key.workload.clone(), m.new_workload.clone().unwrap_or_default());
            m.verdict = Verdict::Inconclusive;
            m.reasons.push(Reason::WorkloadParameterUnknown { base: b, new: n });
        }
    }

    // Probes.
    // (platform, probe) -> (category, BASE results, NEW results), one result per block.
    type ProbeResults = (String, Vec<String>, Vec<String>);
    let mut by_probe: BTreeMap<(String, String), ProbeResults> = BTreeMap::new();
    for (run, is_base) in [(base, true), (new, false)] {
        for p in &run.probes {
            let e = by_probe.entry((p.platform.clone(), p.probe.clone())).or_insert_with(|| (p.category.clone(), Vec::new(), Vec::new()));
            if is_base {
                e.1.push(p.result.clone());
            } else {
                e.2.push(p.result.clone());
            }
        }
    }
    let mut probes = Vec::new();
    for ((platform, probe), (category, b, n)) in by_probe {
        let pol = policy.resolve(&probe_key(&platform, &probe));
        let (verdict, reasons) = if pol.ignore { (Verdict::Ignored, vec![]) } else { probe_verdict(&b, &n) };
        let first = |v: &[String]| v.first().cloned();
        probes.push(ProbeResult { platform, probe, category, base: first(&b), new: first(&n), gate: pol.gate && !pol.ignore, verdict, reasons });
    }

    // Hosts that differ make every verdict inconclusive; a host busy with
    // other work during a run, every timing (bytes, counts and probe
    // verdicts do not depend on the CPU). What it would have been is kept
    // in the reason.
    let busy: Vec<String> = [("BASE", base.foreign_cpu_load), ("NEW", new.foreign_cpu_load)]
        .iter()
        .filter_map(|(side, l)| {
            l.filter(|l| *l > opts.max_foreign_load).map(|l| format!("other processes used {:.0}% of the host's CPU during {side}", l * 100.0))
        })
        .collect();
    let why = |otherwise: Verdict, timing: bool| {
        if !differing.is_empty() {
            Some(Reason::HostDiffers { fields: differing.clone(), otherwise })
        } else if !busy.is_empty() && timing {
            Some(Reason::HostBusy { detail: format!("{} (bound {:.0}%)", busy.join(" and "), opts.max_foreign_load * 100.0), otherwise })
        } else {
            None
        }
    };
    for m in metrics.iter_mut().filter(|m| !matches!(m.verdict, Verdict::Ignored | Verdict::Added)) {
        if let Some(r) = why(m.verdict, m.policy.kind == Kind::Sampled) {
            m.reasons.insert(0, r);
            m.verdict = Verdict::Inconclusive;
        }
    }
    for p in probes.iter_mut().filter(|p| !matches!(p.verdict, Verdict::Ignored | Verdict::Added)) {
        if let Some(r) = why(p.verdict, false) {
            p.reasons.insert(0, r);
            p.verdict = Verdict::Inconclusive;
        }
    }

    let mut c = Comparison {
        base: RunInfo::of(base),
        new: RunInfo::of(new),
        policy_source: policy.source.clone(),
        options: opts.clone(),
        host_differences,
        metrics,
        probes,
        overall: Overall::NoRegression,
        summary: Vec::new(),
    };
    let (overall, summary) = overall(&c, &differing, &busy, opts.max_foreign_load);
    c.overall = overall;
    c.summary = summary;
    c
}

fn overall(c: &Comparison, differing: &[HostField], busy: &[String], max_load: f64) -> (Overall, Vec<String>) {
    let gated_metrics: Vec<&MetricResult> = c.metrics.iter().filter(|m| m.gated()).collect();
    let gated_probes: Vec<&ProbeResult> = c.probes.iter().filter(|p| p.gate).collect();
    let regressions: Vec<String> = gated_metrics
        .iter()
        .filter(|m| m.verdict == Verdict::Regression)
        .map(|m| m.label())
        .chain(gated_probes.iter().filter(|p| p.verdict == Verdict::Regression).map(|p| format!("{}/probe:{}", p.platform, p.probe)))
        .collect();
    let mut summary = Vec::new();
    if !differing.is_empty() {
        let what: Vec<String> =
            c.host_differences.iter().filter(|d| !d.ignored).map(|d| format!("{}: `{}` (BASE) vs `{}` (NEW)", d.field.name(), d.base, d.new)).collect();
        summary.push(format!(
            "inconclusive: the runs are not from the same host and build: {}; compare runs from one host (versus ab runs both sides interleaved)",
            what.join("; ")
        ));
        return (Overall::Inconclusive, summary);
    }
    if !busy.is_empty() {
        summary.push(format!(
            "inconclusive: the host was busy with other work: {} (bound {:.0}%), so no timing is judged; measure on a quiet host (versus ab leaves busy blocks out), or pass --max-foreign-load 1",
            busy.join(" and "),
            max_load * 100.0
        ));
    }
    if !regressions.is_empty() {
        summary.push(format!("{} regression{}: {}", regressions.len(), if regressions.len() == 1 { "" } else { "s" }, regressions.join(", ")));
    }
    // Inconclusive metrics, grouped by reason: one line per reason, with
    // the metrics it holds for (noise is per metric, so its spreads follow
    // each label).
    let mut by_reason: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // (Timings made inconclusive by a busy host are said once, above.)
    for m in gated_metrics.iter().filter(|m| m.verdict == Verdict::Inconclusive && !matches!(m.reasons.first(), Some(Reason::HostBusy { .. }))) {
        let (reason, label) = match m.reasons.first() {
            Some(Reason::Noisy { base, new, max }) => (
                format!("too noisy to call unchanged (MAD/median above the {:.0}% bound)", max * 100.0),
                format!("{} ({:.0}%/{:.0}%)", m.label(), base * 100.0, new * 100.0),
            ),
            Some(r) => (r.describe(), m.label()),
            None => ("unknown".to_string(), m.label()),
        };
        by_reason.entry(reason).or_default().push(label);
    }
    for p in gated_probes.iter().filter(|p| p.verdict == Verdict::Inconclusive) {
        let reason = p.reasons.first().map(|r| r.describe()).unwrap_or_default();
        by_reason.entry(reason).or_default().push(format!("{}/probe:{}", p.platform, p.probe));
    }
    for (reason, items) in &by_reason {
        summary.push(format!("inconclusive, {reason}: {}", items.join(", ")));
    }
    let overall = if !regressions.is_empty() {
        Overall::Regression
    } else if !by_reason.is_empty() || !busy.is_empty() {
        Overall::Inconclusive
    } else {
        Overall::NoRegression
    };
    if overall == Overall::NoRegression {
        let n = gated_metrics.len() + gated_probes.len();
        let improvements = gated_metrics.iter().filter(|m| m.verdict == Verdict::Improvement).count();
        summary.push(format!(
            "no regression in {n} gated metrics and probes{}",
            if improvements > 0 { format!(" ({improvements} improved)") } else { String::new() }
        ));
    }
    (overall, summary)
}

impl Comparison {
    /// Makes the whole comparison inconclusive for a reason outside the
    /// data (a host busy with other work while blocks ran); a regression it
    /// found is named as what it would be.
    pub fn make_inconclusive(&mut self, why: String) {
        if self.overall == Overall::Regression {
            let line = self.summary.iter().find(|s| s.contains("regression")).cloned().unwrap_or_default();
            self.summary.retain(|s| !s.contains("regression"));
            self.summary.push(format!("on a quiet host this would be: {line}"));
        }
        self.summary.retain(|s| !s.starts_with("no regression"));
        self.summary.insert(0, format!("inconclusive: {why}"));
        self.overall = Overall::Inconclusive;
    }

    /// Whether the comparison is inconclusive only for reasons more samples
    /// may resolve (too few, too noisy), which `versus ab` acts on.
    pub fn more_samples_may_help(&self) -> bool {
        self.overall == Overall::Inconclusive
            && self.host_differences.iter().all(|d| d.ignored)
            && self.metrics.iter().filter(|m| m.gated() && m.verdict == Verdict::Inconclusive).all(|m| m.reasons.iter().all(Reason::more_samples_may_help))
            && self.probes.iter().filter(|p| p.gate).all(|p| p.verdict != Verdict::Inconclusive)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::data::{Observation, ProbeObservation};
    use crate::compare::rng::SplitMix64;

    /// `n` samples around `center`, normally distributed with relative
    /// standard deviation `rel_sd` (Box-Muller on a seeded stream).
    pub fn normal(center: f64, rel_sd: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        let mut u = || ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (0..n).map(|_| center * (1.0 + rel_sd * (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos())).collect()
    }

    /// `n` values spread evenly over center·[1 - width, 1 + width] (the
    /// quantiles of a uniform distribution), in a seeded random order:
    /// MAD/median = width / 2, exactly up to the grid.
    pub fn uniform(center: f64, width: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut v: Vec<f64> = (0..n).map(|i| center * (1.0 + width * (2.0 * (i as f64 + 0.5) / n as f64 - 1.0))).collect();
        let mut r = SplitMix64::new(seed);
        for i in (1..n).rev() {
            v.swap(i, r.below(i + 1));
        }
        v
    }

    pub fn run(id: &str, metrics: &[(&str, &str, &str, &str, Vec<f64>)]) -> RunData {
        let mut samples = BTreeMap::new();
        for (p, w, m, u, vals) in metrics {
            samples.insert(
                MetricKey::new(p, w, m, u),
                vals.iter().enumerate().map(|(i, v)| Observation { iteration: i as u32, value: *v, block: 0 }).collect::<Vec<_>>(),
            );
        }
        RunData {
            run_id: id.into(),
            started_at_unix: 0,
            versus_version: "0.1.0".into(),
            git_revision: None,
            hostname: "h".into(),
            host: HostFingerprint { kernel: "Linux 6.18".into(), cpu_model: "AMD EPYC".into(), kvm_mode: "pvm".into(), cgroup_mode: "hybrid".into() },
            blocks: 1,
            foreign_cpu_load: None,
            samples,
            probes: Vec::new(),
        }
    }

    fn boot_only(id: &str, vals: Vec<f64>) -> RunData {
        run(id, &[("container", "ready", "boot", "ms", vals)])
    }

    fn cmp(a: &RunData, b: &RunData) -> Comparison {
        compare(a, b, &Policy::builtin(), &CompareOptions::default())
    }

    fn the<'a>(c: &'a Comparison, metric: &str) -> &'a MetricResult {
        c.metrics.iter().find(|m| m.key.metric == metric).unwrap_or_else(|| panic!("no {metric}"))
    }

    #[test]
    fn a_ten_percent_shift_in_boot_with_50_samples_each_is_a_regression() {
        // 3% relative standard deviation: a quiet metric (process boot on an
        // idle host); the noisy case is the next-but-two test.
        let c = cmp(&boot_only("a", normal(2.0, 0.03, 50, 1)), &boot_only("b", normal(2.2, 0.03, 50, 2)));
        let m = the(&c, "boot");
        assert_eq!(m.verdict, Verdict::Regression, "{m:?}");
        let (lo, hi) = m.ci.unwrap();
        assert!(lo > 0.05 && lo < hi && hi < 0.15, "the whole interval beyond 5%: ({lo}, {hi})");
        assert!((0.07..0.13).contains(&m.change.unwrap()), "{:?}", m.change);
        assert!(m.q_value.unwrap() < 0.001);
        assert_eq!(c.overall, Overall::Regression);
        assert_eq!(c.overall.exit_code(), 1);
        assert!(c.summary[0].contains("container/ready/boot"), "{:?}", c.summary);
    }

    #[test]
    fn a_ten_percent_drop_is_an_improvement_not_a_regression() {
        let c = cmp(&boot_only("a", normal(2.2, 0.03, 50, 1)), &boot_only("b", normal(2.0, 0.03, 50, 2)));
        assert_eq!(the(&c, "boot").verdict, Verdict::Improvement);
        assert_eq!(c.overall, Overall::NoRegression);
    }

    #[test]
    fn the_same_data_against_itself_is_no_regression_with_p_one() {
        let r = boot_only("a", normal(2.0, 0.05, 50, 1));
        let c = cmp(&r, &r);
        let m = the(&c, "boot");
        assert_eq!(m.p_value, Some(1.0));
        assert_eq!(m.q_value, Some(1.0));
        assert_eq!(m.change, Some(0.0));
        assert_eq!(m.verdict, Verdict::Unchanged);
        assert_eq!(c.overall, Overall::NoRegression);
        assert_eq!(c.overall.exit_code(), 0);
    }

    #[test]
    fn a_two_percent_shift_with_a_five_percent_minimum_effect_is_not_a_regression() {
        // Little noise, so the shift is significant: only the minimum effect stops it.
        let c = cmp(&boot_only("a", normal(2.0, 0.01, 50, 1)), &boot_only("b", normal(2.04, 0.01, 50, 2)));
        let m = the(&c, "boot");
        assert!(m.q_value.unwrap() < 0.01, "the shift is significant: {m:?}");
        assert_eq!(m.verdict, Verdict::Unchanged, "{m:?}");
        assert!(m.notes[0].contains("minimum effect"), "{:?}", m.notes);
        assert_eq!(c.overall, Overall::NoRegression);
        // With a 1% minimum effect the same data is a regression.
        let p = Policy::from_toml("[metric.\"boot\"]\nmin_effect = 0.01\n", "t").unwrap();
        let c = compare(&boot_only("a", normal(2.0, 0.01, 50, 1)), &boot_only("b", normal(2.04, 0.01, 50, 2)), &p, &CompareOptions::default());
        assert_eq!(the(&c, "boot").verdict, Verdict::Regression);
    }

    #[test]
    fn a_shift_hidden_in_noise_is_inconclusive_and_says_so() {
        // MAD/median 40% on both sides, a 10% shift.
        let (a, b) = (uniform(2.0, 0.8, 50, 1), uniform(2.2, 0.8, 50, 2));
        assert!((spread(&a) - 0.4).abs() < 0.01 && (spread(&b) - 0.4).abs() < 0.01, "{} {}", spread(&a), spread(&b));
        let c = cmp(&boot_only("a", a), &boot_only("b", b));
        let m = the(&c, "boot");
        assert_eq!(m.verdict, Verdict::Inconclusive, "{m:?}");
        assert!(matches!(m.reasons[0], Reason::Noisy { max, .. } if max == 0.30), "{:?}", m.reasons);
        assert_eq!(c.overall, Overall::Inconclusive);
        assert_eq!(c.overall.exit_code(), 2);
        assert!(c.summary.iter().any(|s| s.contains("too noisy") && s.contains("container/ready/boot")), "{:?}", c.summary);
        assert!(c.more_samples_may_help());
    }

    #[test]
    fn different_host_fingerprints_are_inconclusive_and_say_which_field() {
        let a = boot_only("a", normal(2.0, 0.03, 50, 1));
        let mut b = boot_only("b", normal(2.2, 0.03, 50, 2));
        b.host.kernel = "Linux 6.19".into();
        let c = cmp(&a, &b);
        assert_eq!(c.overall, Overall::Inconclusive);
        assert!(c.summary[0].contains("kernel") && c.summary[0].contains("Linux 6.19"), "{:?}", c.summary);
        let m = the(&c, "boot");
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert_eq!(m.reasons[0], Reason::HostDiffers { fields: vec![HostField::Kernel], otherwise: Verdict::Regression });
        assert!(!c.more_samples_may_help());

        // The versus version is part of it, unless ignored (as `versus ab` does).
        let mut b = boot_only("b", normal(2.0, 0.05, 50, 2));
        b.versus_version = "0.2.0".into();
        assert_eq!(cmp(&a, &b).overall, Overall::Inconclusive);
        let opts = CompareOptions { ignore_host_fields: vec![HostField::VersusVersion], ..CompareOptions::default() };
        let c = compare(&a, &b, &Policy::builtin(), &opts);
        assert_eq!(c.overall, Overall::NoRegression, "{:?}", c.summary);
        assert!(c.host_differences[0].ignored);
    }

    fn probe(platform: &str, id: &str, result: &str) -> ProbeObservation {
        ProbeObservation { platform: platform.into(), probe: id.into(), category: "kernel".into(), result: result.into(), block: 0 }
    }

    #[test]
    fn an_isolation_flip_is_a_regression_whatever_the_timing() {
        let vals = normal(2.0, 0.05, 50, 1);
        let mut a = boot_only("a", vals.clone());
        let mut b = boot_only("b", vals);
        a.probes = vec![probe("container", "proc.host_pids", "isolated"), probe("container", "kernel.shared", "exposed")];
        b.probes = vec![probe("container", "proc.host_pids", "exposed"), probe("container", "kernel.shared", "exposed")];
        let c = cmp(&a, &b);
        assert_eq!(the(&c, "boot").verdict, Verdict::Unchanged);
        let p = c.probes.iter().find(|p| p.probe == "proc.host_pids").unwrap();
        assert_eq!((p.base.as_deref(), p.new.as_deref(), p.verdict), (Some("isolated"), Some("exposed"), Verdict::Regression));
        assert_eq!(c.probes.iter().find(|p| p.probe == "kernel.shared").unwrap().verdict, Verdict::Unchanged);
        assert_eq!(c.overall, Overall::Regression);
        assert!(c.summary[0].contains("container/probe:proc.host_pids"), "{:?}", c.summary);
        // The other way is an improvement; an error is inconclusive.
        let c = cmp(&b, &a);
        assert_eq!(c.overall, Overall::NoRegression);
        b.probes[0].result = "error".into();
        assert_eq!(cmp(&a, &b).overall, Overall::Inconclusive);
        // Flaky across the blocks of one side: inconclusive.
        b.probes = vec![probe("container", "proc.host_pids", "isolated"), ProbeObservation { block: 1, ..probe("container", "proc.host_pids", "exposed") }];
        let c = cmp(&a, &b);
        assert!(
            matches!(c.probes[1].reasons[0], Reason::ProbeFlaky { side: "NEW", .. }) || matches!(c.probes[0].reasons.first(), Some(Reason::ProbeFlaky { .. }))
        );
    }

    #[test]
    fn too_few_samples_are_inconclusive() {
        let c = cmp(&boot_only("a", normal(2.0, 0.05, 5, 1)), &boot_only("b", normal(3.0, 0.05, 5, 2)));
        let m = the(&c, "boot");
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert_eq!(m.reasons[0], Reason::TooFewSamples { base: 5, new: 5, min: 10 });
        assert!(m.change.unwrap() > 0.4, "the change is still shown");
        assert_eq!(c.overall, Overall::Inconclusive);
    }

    #[test]
    fn benjamini_hochberg_keeps_a_real_shift_among_many_null_metrics() {
        let mut base = Vec::new();
        let mut new = Vec::new();
        for i in 0..60u64 {
            let name = format!("w{i}");
            base.push(("process", name.clone(), normal(5.0, 0.05, 30, 100 + i)));
            new.push(("process", name, normal(if i == 7 { 5.75 } else { 5.0 }, 0.05, 30, 500 + i)));
        }
        let mk = |v: &Vec<(&str, String, Vec<f64>)>, id: &str| run(id, &v.iter().map(|(p, w, x)| (*p, w.as_str(), "cpu", "ms", x.clone())).collect::<Vec<_>>());
        let c = cmp(&mk(&base, "a"), &mk(&new, "b"));
        let flagged: Vec<String> = c.metrics.iter().filter(|m| m.verdict != Verdict::Unchanged).map(|m| m.label()).collect();
        assert_eq!(flagged, vec!["process/w7/cpu".to_string()]);
        // Raw p-values of the null metrics would have flagged some at 0.05;
        // the adjusted ones never fall below the raw ones.
        for m in &c.metrics {
            assert!(m.q_value.unwrap() >= m.p_value.unwrap());
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_comparison_whatever_the_threads() {
        let a = run("a", &[("p", "ready", "boot", "ms", normal(2.0, 0.1, 40, 1)), ("p", "cpu", "cpu", "ms", normal(70.0, 0.1, 40, 2))]);
        let b = run("b", &[("p", "ready", "boot", "ms", normal(2.1, 0.1, 40, 3)), ("p", "cpu", "cpu", "ms", normal(70.0, 0.1, 40, 4))]);
        let one = compare(&a, &b, &Policy::builtin(), &CompareOptions { threads: 1, ..CompareOptions::default() });
        let four = compare(&a, &b, &Policy::builtin(), &CompareOptions { threads: 4, ..CompareOptions::default() });
        assert_eq!(one.metrics, four.metrics);
        assert_eq!(one.metrics, cmp(&a, &b).metrics);
    }

    #[test]
    fn exact_metrics_compare_value_by_value_within_their_tolerance() {
        let img = |v: f64| vec![v, 2.0 * v];
        let a = run(
            "a",
            &[("container", "overlay", "image.n_instances", "bytes", img(1000.0)), ("process", "probe", "surface.host_syscalls", "count", vec![471.0])],
        );
        let b = run(
            "b",
            &[("container", "overlay", "image.n_instances", "bytes", img(1005.0)), ("process", "probe", "surface.host_syscalls", "count", vec![472.0])],
        );
        let c = cmp(&a, &b);
        let imgs: Vec<&MetricResult> = c.metrics.iter().filter(|m| m.key.metric == "image.n_instances").collect();
        assert_eq!(imgs.len(), 2, "one per iteration");
        assert!(imgs.iter().all(|m| m.verdict == Verdict::Unchanged), "0.5% is within the 1% tolerance");
        assert_eq!(imgs[1].label(), "container/overlay/image.n_instances[1]");
        assert_eq!(the(&c, "surface.host_syscalls").verdict, Verdict::Regression, "one more host syscall");
        let b2 = run("b", &[("container", "overlay", "image.n_instances", "bytes", img(1100.0))]);
        let c = cmp(&a, &b2);
        assert!(c.metrics.iter().filter(|m| m.key.metric == "image.n_instances").all(|m| m.verdict == Verdict::Regression));
        assert_eq!(the(&c, "surface.host_syscalls").verdict, Verdict::Inconclusive, "missing in NEW");
    }

    #[test]
    fn workload_parameters_name_the_benchmark() {
        let v = normal(70.0, 0.05, 20, 1);
        // One side does not name the parameter: paired, but inconclusive.
        let c = cmp(&run("a", &[("p", "cpu", "cpu", "ms", v.clone())]), &run("b", &[("p", "cpu:200000", "cpu", "ms", v.clone())]));
        assert_eq!(c.metrics.len(), 1);
        let m = &c.metrics[0];
        assert_eq!(m.verdict, Verdict::Inconclusive);
        assert!(matches!(&m.reasons[0], Reason::WorkloadParameterUnknown { base, new } if base == "cpu" && new == "cpu:200000"));
        assert_eq!(m.label(), "p/cpu->cpu:200000/cpu");
        // Both name it and differ: different benchmarks.
        let c = cmp(&run("a", &[("p", "cpu:100000", "cpu", "ms", v.clone())]), &run("b", &[("p", "cpu:200000", "cpu", "ms", v.clone())]));
        let verdicts: Vec<(String, Verdict)> = c.metrics.iter().map(|m| (m.key.workload.clone(), m.verdict)).collect();
        assert_eq!(verdicts, vec![("cpu:100000".to_string(), Verdict::Inconclusive), ("cpu:200000".to_string(), Verdict::Added)]);
        // Same parameter: a plain comparison.
        let c = cmp(&run("a", &[("p", "cpu:200000", "cpu", "ms", v.clone())]), &run("b", &[("p", "cpu:200000", "cpu", "ms", v)]));
        assert_eq!(c.overall, Overall::NoRegression);
    }

    #[test]
    fn reported_only_and_ignored_metrics_do_not_decide_the_exit_code() {
        let a = run(
            "a",
            &[("container", "ready", "boot.cgroup", "ms", normal(1.0, 0.03, 40, 1)), ("p", "cpu:50000", "interference.cpu", "ratio", normal(1.5, 0.03, 40, 2))],
        );
        let b = run(
            "b",
            &[("container", "ready", "boot.cgroup", "ms", normal(2.0, 0.03, 40, 3)), ("p", "cpu:50000", "interference.cpu", "ratio", normal(3.0, 0.03, 40, 4))],
        );
        let c = cmp(&a, &b);
        assert_eq!(the(&c, "boot.cgroup").verdict, Verdict::Regression);
        assert!(!the(&c, "boot.cgroup").gated());
        assert_eq!(c.overall, Overall::NoRegression);
        let p = Policy::from_toml("[metric.\"boot.*\"]\ngate = true\n[metric.\"interference.*\"]\nignore = true\n", "t").unwrap();
        let c = compare(&a, &b, &p, &CompareOptions::default());
        assert_eq!(c.overall, Overall::Regression);
        assert_eq!(the(&c, "interference.cpu").verdict, Verdict::Ignored);
    }

    #[test]
    fn higher_is_better_metrics_regress_downwards() {
        let a = run("a", &[("p", "idle", "density.launch_rate", "instances/s", normal(80.0, 0.02, 30, 1))]);
        let b = run("b", &[("p", "idle", "density.launch_rate", "instances/s", normal(60.0, 0.02, 30, 2))]);
        assert_eq!(cmp(&a, &b).metrics[0].verdict, Verdict::Regression);
        assert_eq!(cmp(&b, &a).metrics[0].verdict, Verdict::Improvement);
    }

    #[test]
    fn a_zero_baseline_is_inconclusive_unless_both_are_zero() {
        let c = cmp(&run("a", &[("p", "w", "boot", "ms", vec![0.0; 20])]), &run("b", &[("p", "w", "boot", "ms", vec![1.0; 20])]));
        assert_eq!(c.metrics[0].reasons, vec![Reason::ZeroBaseline]);
        let c = cmp(&run("a", &[("p", "w", "boot", "ms", vec![0.0; 20])]), &run("b", &[("p", "w", "boot", "ms", vec![0.0; 20])]));
        assert_eq!(c.metrics[0].verdict, Verdict::Unchanged);
    }

    #[test]
    fn a_busy_host_makes_a_regression_inconclusive_and_keeps_what_it_would_be() {
        let mut c = cmp(&boot_only("a", normal(2.0, 0.03, 50, 1)), &boot_only("b", normal(2.2, 0.03, 50, 2)));
        assert_eq!(c.overall, Overall::Regression);
        c.make_inconclusive("the host was busy".into());
        assert_eq!(c.overall, Overall::Inconclusive);
        assert_eq!(c.summary[0], "inconclusive: the host was busy");
        assert!(c.summary.iter().any(|s| s.starts_with("on a quiet host this would be: 1 regression")), "{:?}", c.summary);
    }

    #[test]
    fn a_run_measured_on_a_busy_host_is_inconclusive() {
        let a = boot_only("a", normal(2.0, 0.03, 50, 1));
        let mut b = boot_only("b", normal(2.2, 0.03, 50, 2));
        b.foreign_cpu_load = Some(0.6);
        let c = cmp(&a, &b);
        assert_eq!(c.overall, Overall::Inconclusive);
        assert!(c.summary[0].contains("60% of the host's CPU during NEW"), "{:?}", c.summary);
        assert!(matches!(&the(&c, "boot").reasons[0], Reason::HostBusy { otherwise: Verdict::Regression, .. }));
        b.foreign_cpu_load = Some(0.1);
        assert_eq!(cmp(&a, &b).overall, Overall::Regression, "a little background load is fine");
        b.foreign_cpu_load = Some(0.6);
        let opts = CompareOptions { max_foreign_load: 1.0, ..CompareOptions::default() };
        assert_eq!(compare(&a, &b, &Policy::builtin(), &opts).overall, Overall::Regression);
    }

    #[test]
    fn a_busy_host_does_not_hide_an_isolation_flip_or_a_byte_count() {
        let mut a = run("a", &[("p", "ready", "boot", "ms", normal(2.0, 0.03, 30, 1)), ("p", "shared", "image.total", "bytes", vec![1000.0])]);
        let mut b = run("b", &[("p", "ready", "boot", "ms", normal(2.0, 0.03, 30, 2)), ("p", "shared", "image.total", "bytes", vec![1000.0])]);
        a.probes = vec![probe("container", "proc.host_pids", "isolated")];
        b.probes = vec![probe("container", "proc.host_pids", "isolated")];
        b.foreign_cpu_load = Some(0.9);
        let c = cmp(&a, &b);
        assert_eq!(c.overall, Overall::Inconclusive);
        assert_eq!(the(&c, "image.total").verdict, Verdict::Unchanged, "bytes do not depend on the CPU");
        assert_eq!(c.probes[0].verdict, Verdict::Unchanged);
        assert_eq!(c.summary.len(), 1, "{:?}", c.summary);
        b.probes[0].result = "exposed".into();
        let c = cmp(&a, &b);
        assert_eq!(c.overall, Overall::Regression);
        assert!(c.summary.iter().any(|s| s.contains("host was busy")), "{:?}", c.summary);
    }
}
