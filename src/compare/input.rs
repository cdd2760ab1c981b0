//! The adapter between a run's files and [`RunData`]: the one module of
//! `compare` and `history` that knows the run-file types (`Sample`,
//! `ProbeRow`, `EnvDoc`) and their readers. When those types move, this is
//! the file whose imports change.

use std::collections::BTreeMap;
use std::path::Path;

use super::data::{HostFingerprint, MetricKey, Observation, ProbeObservation, RunData};
use super::error::{CompareError, Result};
use crate::export::json::{read_env, EnvDoc};
use crate::export::{read_probes, read_samples, ExportError};
use crate::host::{Host, KvmMode};

/// The files of a run directory versus reads.
pub const SAMPLES_FILE: &str = "samples.csv";
pub const ENV_FILE: &str = "env.json";
pub const PROBES_FILE: &str = "probes.csv";

/// The host fingerprint of an env.json `host` record. Fields a run did not
/// record read `unknown`, so that two such runs still compare equal.
pub fn fingerprint_of_host(host: &Host) -> HostFingerprint {
    let s = |v: &str| if v.is_empty() { "unknown".to_string() } else { v.to_string() };
    let kvm = match &host.kvm_mode {
        KvmMode::Hardware { module, nested_host: true } => format!("hardware {module} nested"),
        KvmMode::Hardware { module, nested_host: false } => format!("hardware {module}"),
        KvmMode::Pvm => "pvm".into(),
        KvmMode::Absent => "absent".into(),
        KvmMode::Unknown => "unknown".into(),
    };
    let cgroup = serde_json::to_value(host.cgroup_mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "unknown".into());
    HostFingerprint { kernel: s(&host.kernel), cpu_model: s(&host.cpu_model), kvm_mode: kvm, cgroup_mode: cgroup }
}

fn from_env(doc: &EnvDoc) -> RunData {
    RunData {
        run_id: doc.run_id.clone(),
        started_at_unix: doc.started_at_unix,
        versus_version: doc.versus_version.clone(),
        git_revision: doc.git_revision.clone(),
        hostname: if doc.host.hostname.is_empty() { "unknown".into() } else { doc.host.hostname.clone() },
        host: fingerprint_of_host(&doc.host),
        blocks: 1,
        foreign_cpu_load: doc.host_measurements.foreign_cpu_load,
        samples: BTreeMap::new(),
        probes: Vec::new(),
    }
}

/// A run's env.json text, parsed into the run's identity (no samples).
pub fn run_from_env_json(text: &str) -> std::result::Result<RunData, String> {
    let doc: EnvDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(from_env(&doc))
}

/// Reads a run directory: env.json and samples.csv (both required) and
/// probes.csv (when the run wrote one).
pub fn read_run_dir(dir: &Path) -> Result<RunData> {
    if !dir.is_dir() {
        let message = if dir.exists() { "not a directory" } else { "no such directory" };
        return Err(CompareError::Read { path: dir.into(), message: message.into() });
    }
    for f in [ENV_FILE, SAMPLES_FILE] {
        if !dir.join(f).is_file() {
            return Err(CompareError::NotARunDir { path: dir.into(), missing: f });
        }
    }
    let read_err = |path: &Path, e: ExportError| CompareError::Read { path: path.into(), message: e.to_string() };
    let env_path = dir.join(ENV_FILE);
    let doc = read_env(&env_path).map_err(|e| read_err(&env_path, e))?;
    let mut run = from_env(&doc);
    let samples_path = dir.join(SAMPLES_FILE);
    for s in read_samples(&samples_path).map_err(|e| read_err(&samples_path, e))? {
        run.samples.entry(MetricKey::new(&s.platform, &s.workload, &s.metric.to_string(), &s.unit)).or_default().push(Observation {
            iteration: s.iteration,
            value: s.value,
            block: 0,
        });
    }
    let probes_path = dir.join(PROBES_FILE);
    if probes_path.is_file() {
        for p in read_probes(&probes_path).map_err(|e| read_err(&probes_path, e))? {
            run.probes.push(ProbeObservation { platform: p.platform, probe: p.probe, category: p.category, result: p.result.as_str().to_string(), block: 0 });
        }
    }
    Ok(run)
}

/// Merges the runs of one side (blocks of `versus ab`) into one: samples
/// and probe verdicts concatenated, each tagged with its block. The runs
/// must come from one host fingerprint and one versus version.
pub fn merge_runs(runs: Vec<RunData>) -> Result<RunData> {
    let mut it = runs.into_iter();
    let mut merged = it.next().ok_or(CompareError::MergeEmpty)?;
    let mut ids = vec![merged.run_id.clone()];
    for (block, r) in it.enumerate() {
        let block = block as u32 + 1;
        if r.host != merged.host || r.versus_version != merged.versus_version {
            return Err(CompareError::MergeHosts {
                first: merged.run_id.clone(),
                first_host: format!("{} (versus {})", merged.host, merged.versus_version),
                other: r.run_id.clone(),
                other_host: format!("{} (versus {})", r.host, r.versus_version),
            });
        }
        ids.push(r.run_id.clone());
        for (k, obs) in r.samples {
            merged.samples.entry(k).or_default().extend(obs.into_iter().map(|o| Observation { block, ..o }));
        }
        merged.probes.extend(r.probes.into_iter().map(|p| ProbeObservation { block, ..p }));
        merged.blocks += 1;
        merged.foreign_cpu_load = match (merged.foreign_cpu_load, r.foreign_cpu_load) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    merged.run_id = ids.join("+");
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `platform`/`workload`/`metric` in a run's samples.csv, counted
    /// from the file itself (the example is regenerated from time to time).
    fn rows_in(dir: &Path, platform: &str, workload: &str, metric: &str) -> usize {
        let text = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
        let n = text.lines().filter(|l| l.split(',').skip(1).take(3).eq([platform, workload, metric])).count();
        assert!(n > 0, "the example has {platform} {workload} {metric} rows");
        n
    }

    #[test]
    fn reads_the_example_run() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example");
        let r = read_run_dir(&dir).unwrap();
        // The example is regenerated from time to time: its own id.
        let id = crate::export::json::read_env(&dir.join("env.json")).unwrap().run_id;
        assert_eq!(r.run_id, id);
        assert_eq!(r.host.kvm_mode, "pvm");
        assert_eq!(r.host.cgroup_mode, "hybrid");
        assert!(r.host.kernel.starts_with("Linux 6.18"));
        assert_eq!(r.values(&MetricKey::new("process", "ready", "boot", "ms")).len(), rows_in(&dir, "process", "ready", "boot"));
        assert!(r.probes.iter().any(|p| p.platform == "container" && p.result == "isolated"));
    }

    #[test]
    fn kvm_modes_and_missing_fields() {
        let h = serde_json::json!({"kernel": "Linux 6.1", "kvm_mode": {"kind": "hardware", "module": "kvm_intel", "nested_host": true}});
        let f = fingerprint_of_host(&serde_json::from_value(h).unwrap());
        assert_eq!(f.kvm_mode, "hardware kvm_intel nested");
        assert_eq!(f.cpu_model, "unknown");
    }

    #[test]
    fn not_a_run_dir_says_what_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let e = read_run_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("env.json") && e.contains("versus run"), "{e}");
    }

    #[test]
    fn merging_tags_blocks_and_refuses_other_hosts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example");
        let a = read_run_dir(&dir).unwrap();
        let mut b = a.clone();
        b.run_id = "second".into();
        let m = merge_runs(vec![a.clone(), b.clone()]).unwrap();
        let k = MetricKey::new("process", "ready", "boot", "ms");
        assert_eq!(m.values(&k).len(), 2 * rows_in(&dir, "process", "ready", "boot"));
        assert_eq!(m.blocks, 2);
        assert!(m.samples[&k].iter().any(|o| o.block == 1));
        assert_eq!(m.run_id, format!("{}+second", a.run_id));
        b.host.kernel = "other".into();
        assert!(merge_runs(vec![a, b]).unwrap_err().to_string().contains("different hosts"));
    }
}
