//! The capacity plan section: plan.md of `versus plan`, when the run has one.

use std::fmt::Write as _;

use super::{chart_ref, Ctx};
use crate::chart::plan::PlanBar;
use crate::model::Metric;
use crate::plan::PlanRow;

/// The plan chart's bars: instances per host per platform.
pub fn bars(rows: &[PlanRow]) -> Vec<PlanBar> {
    rows.iter()
        .filter(|r| r.figure == "instances_per_host")
        .map(|r| PlanBar { platform: r.platform.clone(), per_host: r.value, low: r.low, high: r.high, bound_by: r.bound_by.clone() })
        .collect()
}

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, _missing: &mut [String]) {
    let has_inputs = ctx.f.samples.iter().any(|s| s.metric == Metric::StormLaunchRate) && ctx.f.samples.iter().any(|s| s.metric == Metric::DensityPssTotal);
    let Some(md) = &ctx.f.plan_md else {
        if has_inputs {
            let _ = writeln!(o, "## Capacity plan\n");
            let _ = writeln!(
                o,
                "No plan yet: `versus plan <this run> --host-memory 512GiB --host-cores 64 --instances 10000` computes one from this run's density and storm figures and adds it here.\n"
            );
        }
        return;
    };
    let _ = writeln!(o, "## Capacity plan\n");
    for line in md.lines() {
        if line.starts_with("# ") {
            continue;
        }
        match line.strip_prefix("## ") {
            Some(h) => {
                let _ = writeln!(o, "### {h}");
            }
            None => {
                let _ = writeln!(o, "{line}");
            }
        }
    }
    o.push('\n');
    chart_ref(o, ctx.charts, "plan", "capacity plan: instances per host");
}
