//! JUnit XML (via `quick-junit`): one test case per metric and per probe,
//! so that CI systems show the gate's verdicts in their test views. A
//! gated regression is a failure, a gated inconclusive metric is skipped
//! (with the reason), everything else passes; reported-only metrics pass
//! with their verdict in the output.

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::{fmt_change, fmt_ci, fmt_p, fmt_reasons, fmt_value};
use crate::compare::error::CompareError;
use crate::compare::verdict::{Comparison, Verdict};

pub fn render(c: &Comparison) -> Result<String, CompareError> {
    let mut report = Report::new("versus compare");
    let mut metrics = TestSuite::new(format!("metrics {} vs {}", c.base.run_id, c.new.run_id));
    metrics.add_property(Property::new("overall", c.overall.as_str()));
    metrics.add_property(Property::new("base", c.base.run_id.as_str()));
    metrics.add_property(Property::new("new", c.new.run_id.as_str()));
    for m in &c.metrics {
        let v = |s: &Option<crate::compare::verdict::Side>| s.as_ref().map(|s| fmt_value(s.value, &m.key.unit)).unwrap_or_else(|| "-".into());
        let detail = format!(
            "{} [{}]: base {}, new {}, change {}, 95% CI {}, p (BH) {}: {}{}",
            m.label(),
            m.key.unit,
            v(&m.base),
            v(&m.new),
            fmt_change(m.change),
            fmt_ci(m.ci),
            fmt_p(m.q_value),
            m.verdict.as_str(),
            match fmt_reasons(m) {
                r if r.is_empty() => String::new(),
                r => format!(" ({r})"),
            }
        );
        let status = match (m.gated(), m.verdict) {
            (true, Verdict::Regression) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("regression: {} ({})", fmt_change(m.change), fmt_ci(m.ci))).set_type("regression").set_description(detail.clone());
                s
            }
            (true, Verdict::Inconclusive) | (_, Verdict::Ignored) => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(format!("{}: {}", m.verdict.as_str(), fmt_reasons(m))).set_type(m.verdict.as_str());
                s
            }
            _ => TestCaseStatus::success(),
        };
        let mut tc = TestCase::new(m.label(), status);
        tc.set_classname(format!("versus.{}", m.key.platform));
        tc.set_system_out(detail);
        metrics.add_test_case(tc);
    }
    report.add_test_suite(metrics);
    if !c.probes.is_empty() {
        let mut probes = TestSuite::new("isolation probes");
        for p in &c.probes {
            let detail =
                format!("{}/{}: {} -> {}: {}", p.platform, p.probe, p.base.as_deref().unwrap_or("-"), p.new.as_deref().unwrap_or("-"), p.verdict.as_str());
            let status = match (p.gate, p.verdict) {
                (true, Verdict::Regression) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(format!("isolation lost: {detail}")).set_type("regression");
                    s
                }
                (true, Verdict::Inconclusive) | (_, Verdict::Ignored) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(p.reasons.iter().map(|r| r.describe()).collect::<Vec<_>>().join("; ")).set_type(p.verdict.as_str());
                    s
                }
                _ => TestCaseStatus::success(),
            };
            let mut tc = TestCase::new(format!("{}/{}", p.platform, p.probe), status);
            tc.set_classname(format!("versus.probes.{}", p.category));
            tc.set_system_out(detail);
            probes.add_test_case(tc);
        }
        report.add_test_suite(probes);
    }
    report.to_string().map_err(|e| CompareError::Output(format!("cannot serialise the JUnit report: {e}")))
}
