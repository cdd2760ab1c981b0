//! Bencher Metric Format (BMF) JSON of a run, for `bencher run --adapter
//! json` and other tools that read it:
//!
//! ```json
//! { "process/ready/boot": { "milliseconds": { "value": 1.10, "lower_value": 1.02, "upper_value": 1.21 } } }
//! ```
//!
//! One benchmark per `platform/workload/metric` (deterministic metrics
//! with several iterations, such as `image.n_instances`, one per iteration:
//! `.../image.n_instances/4`), one measure per unit (`milliseconds`,
//! `microseconds`, `bytes`, `ratio`, ...). `value` is the median; for
//! repeated measurements `lower_value`/`upper_value` are the bootstrap 95%
//! interval of the median, as in summary.csv.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::compare::data::RunData;
use crate::compare::policy::{Kind, Policy};
use crate::compare::statistic::median;

/// One measure's values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_value: Option<f64>,
}

/// Benchmark name -> measure slug -> metric.
pub type Bmf = BTreeMap<String, BTreeMap<String, Metric>>;

/// The measure slug of a unit.
pub fn measure_slug(unit: &str) -> String {
    match unit {
        "ms" => "milliseconds".into(),
        "us" => "microseconds".into(),
        "ns" => "nanoseconds".into(),
        "bytes" => "bytes".into(),
        "instances/s" => "instances-per-second".into(),
        other => {
            let slug: String = other.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
            let slug = slug.trim_matches('-').to_string();
            if slug.is_empty() {
                "value".into()
            } else {
                slug
            }
        }
    }
}

/// The BMF document of a run; `policy` says which metrics are exact
/// (reported per iteration) and which are ignored.
pub fn of_run(run: &RunData, policy: &Policy) -> Bmf {
    let mut out = Bmf::new();
    for (key, obs) in &run.samples {
        let p = policy.resolve(key);
        if p.ignore {
            continue;
        }
        let name = format!("{}/{}/{}", key.platform, key.workload, key.metric);
        let slug = measure_slug(&key.unit);
        let finite: Vec<f64> = obs.iter().map(|o| o.value).filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            continue;
        }
        let iterations: BTreeSet<u32> = obs.iter().map(|o| o.iteration).collect();
        if p.kind == Kind::Exact && iterations.len() > 1 {
            for it in iterations {
                let vals: Vec<f64> = obs.iter().filter(|o| o.iteration == it).map(|o| o.value).filter(|v| v.is_finite()).collect();
                if !vals.is_empty() {
                    out.entry(format!("{name}/{it}")).or_default().insert(slug.clone(), Metric { value: median(&vals), lower_value: None, upper_value: None });
                }
            }
        } else if p.kind == Kind::Exact || finite.len() == 1 {
            out.entry(name).or_default().insert(slug, Metric { value: median(&finite), lower_value: None, upper_value: None });
        } else {
            let (lo, hi) = crate::stats::bootstrap_median_ci(&finite, crate::stats::BOOTSTRAP_RESAMPLES);
            out.entry(name).or_default().insert(slug, Metric { value: median(&finite), lower_value: Some(lo), upper_value: Some(hi) });
        }
    }
    out
}

/// The BMF document as JSON text.
pub fn to_json(bmf: &Bmf) -> String {
    serde_json::to_string_pretty(bmf).unwrap_or_else(|_| "{}".into()) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::data::MetricKey;

    #[test]
    fn the_example_run_in_bmf() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example");
        let run = crate::compare::input::read_run_dir(&dir).unwrap();
        let bmf = of_run(&run, &Policy::builtin());
        let boot = &bmf["process/ready/boot"]["milliseconds"];
        let vals = run.values(&MetricKey::new("process", "ready", "boot", "ms"));
        assert_eq!(boot.value, median(&vals));
        let (lo, hi) = (boot.lower_value.unwrap(), boot.upper_value.unwrap());
        assert!(lo <= boot.value && boot.value <= hi);
        // Exact metrics with several iterations: one benchmark per iteration.
        // (The overlay storage is `overlay`, or `overlay-synthetic` in runs
        // that label storage versus wrote itself.)
        let overlay = ["overlay", "overlay-synthetic"].into_iter().find(|m| bmf.contains_key(&format!("container/{m}/image.total")));
        let overlay = overlay.unwrap_or_else(|| panic!("{:?}", bmf.keys().filter(|k| k.contains("image")).collect::<Vec<_>>()));
        assert!(bmf.contains_key(&format!("container/{overlay}/image.n_instances/4")));
        assert!(bmf[&format!("container/{overlay}/image.n_instances/4")].contains_key("bytes-apparent"));
        assert!(bmf[&format!("container/{overlay}/image.total")]["bytes"].lower_value.is_none());
        // It is the JSON BMF describes: an object of objects of {value, ...}.
        let v: serde_json::Value = serde_json::from_str(&to_json(&bmf)).unwrap();
        for (_, measures) in v.as_object().unwrap() {
            for (_, m) in measures.as_object().unwrap() {
                assert!(m["value"].is_number());
            }
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(measure_slug("instances/s"), "instances-per-second");
        assert_eq!(measure_slug("bytes_apparent"), "bytes-apparent");
        assert_eq!(measure_slug("ratio"), "ratio");
    }
}
