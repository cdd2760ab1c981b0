//! Markdown for a CI step summary or a pull-request comment: the verdict,
//! one table row per changed metric (old, new, change, interval, p,
//! verdict) and per flipped probe, and the unchanged metrics folded in a
//! `<details>` block.

use super::{fmt_change, fmt_ci, fmt_p, fmt_reasons, fmt_value, is_changed, probe_changed};
use crate::compare::verdict::{Comparison, MetricResult, Overall, Side, Verdict};

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn value(m: &MetricResult, s: &Option<Side>) -> String {
    s.as_ref().map(|s| fmt_value(s.value, &m.key.unit)).unwrap_or_else(|| "-".into())
}

fn row(m: &MetricResult, verdict: bool) -> String {
    let mut cols =
        vec![format!("`{}`", m.label()), cell(&m.key.unit), value(m, &m.base), value(m, &m.new), fmt_change(m.change), fmt_ci(m.ci), fmt_p(m.q_value)];
    if verdict {
        let v = if m.gated() { format!("**{}**", m.verdict.as_str()) } else { format!("{} (reported only)", m.verdict.as_str()) };
        let why = fmt_reasons(m);
        cols.push(if why.is_empty() { v } else { format!("{v}: {}", cell(&why)) });
    }
    format!("| {} |\n", cols.join(" | "))
}

/// Renders the comparison as Markdown.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let title = match c.overall {
        Overall::NoRegression => "no regression",
        Overall::Regression => "REGRESSION",
        Overall::Inconclusive => "inconclusive",
    };
    out.push_str(&format!("### versus compare: {title}\n\n"));
    let rev = |r: &Option<String>| r.as_deref().map(|r| format!(" `{}`", r.chars().take(12).collect::<String>())).unwrap_or_default();
    out.push_str(&format!(
        "BASE `{}` (versus {}{}, {} run{}) vs NEW `{}` (versus {}{}, {} run{}) on {}\n\n",
        c.base.run_id,
        c.base.versus_version,
        rev(&c.base.git_revision),
        c.base.blocks,
        if c.base.blocks == 1 { "" } else { "s" },
        c.new.run_id,
        c.new.versus_version,
        rev(&c.new.git_revision),
        c.new.blocks,
        if c.new.blocks == 1 { "" } else { "s" },
        cell(&c.base.host.to_string())
    ));
    for s in &c.summary {
        out.push_str(&format!("- {}\n", cell(s)));
    }
    out.push('\n');

    let header = "| metric | unit | old | new | change | 95% CI | p (BH) |";
    let rule = "|---|---|---:|---:|---:|---|---:|";
    let changed: Vec<&MetricResult> = c.metrics.iter().filter(|m| is_changed(m)).collect();
    if !changed.is_empty() {
        out.push_str(&format!("{header} verdict |\n{rule}---|\n"));
        for m in &changed {
            out.push_str(&row(m, true));
        }
        out.push('\n');
    }
    let flips: Vec<_> = c.probes.iter().filter(|p| probe_changed(p)).collect();
    if !flips.is_empty() {
        out.push_str("| probe | old | new | verdict |\n|---|---|---|---|\n");
        for p in flips {
            let why = p.reasons.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ");
            out.push_str(&format!(
                "| `{}/{}` | {} | {} | **{}**{} |\n",
                p.platform,
                p.probe,
                p.base.as_deref().unwrap_or("-"),
                p.new.as_deref().unwrap_or("-"),
                p.verdict.as_str(),
                if why.is_empty() { String::new() } else { format!(": {}", cell(&why)) }
            ));
        }
        out.push('\n');
    }
    let folded: Vec<&MetricResult> = c.metrics.iter().filter(|m| !is_changed(m) && m.verdict != Verdict::Ignored).collect();
    if !folded.is_empty() {
        out.push_str(&format!("<details><summary>{} unchanged or reported-only metrics</summary>\n\n", folded.len()));
        out.push_str(&format!("{header} verdict |\n{rule}---|\n"));
        for m in folded {
            out.push_str(&row(m, true));
        }
        out.push_str("\n</details>\n");
    }
    out
}
