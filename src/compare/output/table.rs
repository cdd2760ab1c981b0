//! The terminal table: the metrics that changed (or could not be decided),
//! the probes that flipped, and the overall verdict with its reasons.

use super::{fmt_change, fmt_ci, fmt_p, fmt_reasons, fmt_value, fmt_verdict, is_changed, probe_changed};
use crate::compare::verdict::{Comparison, Verdict};

/// Renders the comparison; `all` lists every metric, not only the changed.
pub fn render(c: &Comparison, all: bool) -> String {
    let mut out = String::new();
    let rev = |r: &Option<String>| r.as_deref().map(|r| format!(", {}", r.chars().take(12).collect::<String>())).unwrap_or_default();
    out.push_str(&format!(
        "BASE  {} (versus {}{}, {} run{})\n",
        c.base.run_id,
        c.base.versus_version,
        rev(&c.base.git_revision),
        c.base.blocks,
        plural(c.base.blocks as usize)
    ));
    out.push_str(&format!(
        "NEW   {} (versus {}{}, {} run{})\n",
        c.new.run_id,
        c.new.versus_version,
        rev(&c.new.git_revision),
        c.new.blocks,
        plural(c.new.blocks as usize)
    ));
    if c.host_differences.is_empty() {
        out.push_str(&format!("host  {}\n", c.base.host));
    } else {
        for d in &c.host_differences {
            out.push_str(&format!("host  {} differs: `{}` vs `{}`{}\n", d.field.name(), d.base, d.new, if d.ignored { " (ignored)" } else { "" }));
        }
    }
    if let Some(p) = &c.policy_source {
        out.push_str(&format!("policy {p}\n"));
    }
    out.push('\n');

    let shown: Vec<_> = c.metrics.iter().filter(|m| all || is_changed(m)).collect();
    if !shown.is_empty() {
        let w = shown.iter().map(|m| m.label().len()).max().unwrap_or(6).max(6);
        out.push_str(&format!(
            "  {:<w$}  {:<8} {:>12} {:>12} {:>8}  {:<18} {:>8}  {}\n",
            "metric", "unit", "base", "new", "change", "95% CI", "p (BH)", "verdict"
        ));
        for m in &shown {
            let v = |s: &Option<crate::compare::verdict::Side>| s.as_ref().map(|s| fmt_value(s.value, &m.key.unit)).unwrap_or_else(|| "-".into());
            out.push_str(&format!(
                "  {:<w$}  {:<8} {:>12} {:>12} {:>8}  {:<18} {:>8}  {}\n",
                m.label(),
                m.key.unit,
                v(&m.base),
                v(&m.new),
                fmt_change(m.change),
                fmt_ci(m.ci),
                fmt_p(m.q_value),
                fmt_verdict(m)
            ));
            let why = fmt_reasons(m);
            if !why.is_empty() && m.verdict != Verdict::Unchanged {
                out.push_str(&format!("  {:<w$}    {why}\n", ""));
            }
        }
    }
    let unchanged = c.metrics.iter().filter(|m| m.gated() && !is_changed(m) && !matches!(m.verdict, Verdict::Ignored | Verdict::Added)).count();
    let reported = c.metrics.iter().filter(|m| !m.gated() && m.verdict != Verdict::Ignored).count();
    let ignored = c.metrics.iter().filter(|m| m.verdict == Verdict::Ignored).count();
    let added = c.metrics.iter().filter(|m| m.verdict == Verdict::Added).count();
    out.push_str(&format!(
        "  {unchanged} gated metric{} unchanged (or undecided only for the host), {reported} reported only, {ignored} ignored, {added} only in NEW{}\n",
        plural(unchanged),
        if all { "" } else { " (--all lists every metric)" }
    ));

    let flips: Vec<_> = c.probes.iter().filter(|p| all || probe_changed(p)).collect();
    let same = c.probes.iter().filter(|p| p.verdict == Verdict::Unchanged).count();
    if !c.probes.is_empty() {
        out.push_str(&format!("\nprobes: {same} of {} unchanged\n", c.probes.len()));
        for p in flips {
            let why = p.reasons.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ");
            out.push_str(&format!(
                "  {}/{}: {} -> {}  {}{}\n",
                p.platform,
                p.probe,
                p.base.as_deref().unwrap_or("-"),
                p.new.as_deref().unwrap_or("-"),
                p.verdict.as_str(),
                if why.is_empty() { String::new() } else { format!(" ({why})") }
            ));
        }
    }
    out.push_str(&format!("\nverdict: {} (exit {})\n", c.overall.as_str(), c.overall.exit_code()));
    for s in &c.summary {
        out.push_str(&format!("  {s}\n"));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
