//! Section 2, size: image and disk footprint.

use std::fmt::Write as _;

use super::{and_list, chart_ref, grouped_table, Ctx};
use crate::chart::data::{by_iteration, median_of};
use crate::chart::fmt_bytes;
use crate::model::Metric;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let _ = writeln!(o, "## 2. Size: image and disk footprint\n");
    let mut fp: Vec<(String, String)> = Vec::new();
    for x in s.iter().filter(|x| x.metric == Metric::ImageTotal && x.unit == "bytes") {
        let key = (x.platform.clone(), x.workload.clone());
        if !fp.contains(&key) {
            fp.push(key);
        }
    }
    if fp.is_empty() {
        missing.push("image footprint (no `image.*` rows)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
        return;
    }
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    for (p, m) in &fp {
        let get = |metric: Metric, unit: &str| median_of(s, p, Some(m), &metric, Some(unit)).unwrap_or(0.0);
        let curve = by_iteration(s, p, Some(m), &Metric::ImageNInstances, Some("bytes"));
        let (nmax, tmax) = curve.last().copied().unwrap_or((1, get(Metric::ImageTotal, "bytes")));
        rows.push((
            p.clone(),
            vec![
                ctx.flag(p),
                m.clone(),
                format!("{} ({})", fmt_bytes(get(Metric::ImageShared, "bytes")), fmt_bytes(get(Metric::ImageShared, "bytes_apparent"))),
                format!("{} ({})", fmt_bytes(get(Metric::ImagePerInstance, "bytes")), fmt_bytes(get(Metric::ImagePerInstance, "bytes_apparent"))),
                fmt_bytes(get(Metric::ImageTotal, "bytes")),
                format!("{} at N={nmax}", fmt_bytes(tmax)),
            ],
        ));
        parts.push(format!("{p} ({m}) adds {} per instance", fmt_bytes(get(Metric::ImagePerInstance, "bytes"))));
    }
    grouped_table(o, &["platform", "storage", "shared: allocated (apparent)", "per instance: allocated (apparent)", "1 instance", "N instances"], rows);
    chart_ref(o, ctx.charts, "footprint", "footprint vs N");
    let _ = writeln!(
        o,
        "**Finding.** On disk, {}. Allocated bytes are what the filesystem holds (`st_blocks`); apparent bytes (in parentheses) are file sizes as `ls` shows them, larger for sparse disk images.\n",
        and_list(&parts)
    );
    if fp.iter().any(|(_, m)| m.ends_with("-synthetic")) {
        let _ = writeln!(
            o,
            "Storage marked `-synthetic` is not what the platform uses today (without `--image`, versus' container runs on a read-only rootfs and vm-linux boots from its initramfs; on the OS image vm-linux boots the image's disk): versus built it and wrote each instance's data into it itself, to show what it would cost.\n"
        );
    }
}
