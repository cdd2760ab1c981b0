//! Section 5, maintenance: patch fan-out.

use std::fmt::Write as _;

use super::{table, Ctx};
use crate::model::SummaryRow;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let _ = writeln!(o, "## 5. Maintenance: patch fan-out\n");
    let patch: Vec<&SummaryRow> = ctx.f.summary.iter().filter(|r| r.metric.family() == "patch").collect();
    if patch.is_empty() {
        missing.push("patch fan-out (no `patch.*` rows: not implemented in this version of versus)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
        return;
    }
    let rows: Vec<Vec<String>> = patch
        .iter()
        .map(|r| vec![ctx.flag(&r.platform), r.workload.clone(), r.metric.to_string(), format!("{:.3} {}", r.median, r.unit), r.n.to_string()])
        .collect();
    table(o, &["platform", "case", "metric", "median", "n"], &rows);
}
