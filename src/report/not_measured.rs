//! The closing section: what was not measured, and why.

use std::fmt::Write as _;

use super::Ctx;
use crate::model::RunStatus;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &[String]) {
    let _ = writeln!(o, "## Not measured, and why\n");
    let mut any = false;
    if let Some(e) = &ctx.f.env {
        for p in &e.platforms {
            if p.status != RunStatus::Ran {
                let _ = writeln!(o, "- `{}` {}: {}", p.platform, p.status, p.reason.clone().unwrap_or_else(|| "no reason recorded".into()));
                any = true;
            }
        }
        for n in &e.not_measured {
            let _ = writeln!(o, "- {n}");
            any = true;
        }
    }
    for (p, note) in &ctx.not_representative {
        let _ = writeln!(o, "- `{p}` ran, but its numbers are not representative of a typical host: {note}");
        any = true;
    }
    for m in missing {
        let _ = writeln!(o, "- {m}");
        any = true;
    }
    if !any {
        let _ = writeln!(o, "- nothing: every platform and measurement ran.");
    }
}
