//! `versus plan`: figures recomputed by hand from a real run
//! (reports/example), and one-line errors for bad input.

use std::path::Path;
use std::process::Command;

use versus::export::json::read_env;
use versus::export::{read_samples, read_summary};
use versus::model::Metric;

fn versus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_versus"))
}

/// A copy of a run directory's files (not its report), to plan in.
fn copy_run(from: &Path, to: &Path) {
    for f in ["samples.csv", "summary.csv", "env.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| panic!("{}: {e}", from.join(f).display()));
    }
}

#[derive(Debug, serde::Deserialize)]
struct Row {
    platform: String,
    figure: String,
    value: f64,
    unit: String,
    bound_by: String,
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn plan_of_the_example_run_matches_a_hand_computation() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example");
    let d = tempfile::tempdir().unwrap();
    copy_run(&example, d.path());
    let o = versus().arg("plan").arg(d.path()).args(["--host-memory", "512GiB", "--host-cores", "64", "--instances", "10000"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("instances/host") && stdout.contains("bound by"), "{stdout}");
    for f in ["plan.md", "plan.csv", "report.md", "report.html", "charts/plan.svg"] {
        assert!(d.path().join(f).is_file(), "{f} written");
    }
    let rows: Vec<Row> = csv::Reader::from_path(d.path().join("plan.csv")).unwrap().deserialize().collect::<Result<_, _>>().unwrap();
    let summary = read_summary(&d.path().join("summary.csv")).unwrap();
    let samples = read_samples(&d.path().join("samples.csv")).unwrap();
    let cores = read_env(&d.path().join("env.json")).unwrap().host.cores as f64;
    let med = |p: &str, w: &str, m: Metric| summary.iter().find(|r| r.platform == p && r.workload == w && r.metric == m && r.unit == "bytes").map(|r| r.median);
    let platforms: Vec<String> = {
        let mut v: Vec<String> =
            summary.iter().filter(|r| r.metric == Metric::DensityPerInstancePss && !r.workload.ends_with("+ksm")).map(|r| r.platform.clone()).collect();
        v.dedup();
        v
    };
    assert!(platforms.len() >= 3, "the example run has the density fit of process, container and vm-bare: {platforms:?}");
    for p in &platforms {
        let get = |f: &str| rows.iter().find(|r| r.platform == *p && r.figure == f).unwrap_or_else(|| panic!("{p} {f} in plan.csv"));
        let w =
            summary.iter().find(|r| r.platform == *p && r.metric == Metric::DensityPerInstancePss && !r.workload.ends_with("+ksm")).unwrap().workload.clone();
        // Memory: the fitted line of summary.csv.
        let per = med(p, &w, Metric::DensityPerInstancePss).unwrap();
        let fixed = med(p, &w, Metric::DensityFixedPss).unwrap().max(0.0);
        let usable = 512.0 * 1073741824.0 * 0.9;
        let per_host = ((usable - fixed) / per).floor();
        let ph = get("instances_per_host");
        assert!(close(ph.value, per_host), "{p}: instances per host {} vs {per_host} by hand", ph.value);
        assert_eq!((ph.unit.as_str(), ph.bound_by.as_str()), ("instances", "memory"));
        let hosts = (10000.0 / per_host).ceil();
        assert!(close(get("hosts").value, hosts), "{p}: hosts");
        // Start: the storm's rate at its largest N (median over its storms),
        // scaled from the measuring host's cores to 64.
        let storm: Vec<(u32, f64)> =
            samples.iter().filter(|s| s.platform == *p && s.metric == Metric::StormLaunchRate && s.workload == w).map(|s| (s.iteration, s.value)).collect();
        let n_max = storm.iter().map(|s| s.0).max().unwrap();
        let at_max: Vec<f64> = storm.iter().filter(|s| s.0 == n_max).map(|s| s.1).collect();
        let rate = versus::stats::median(&at_max) * 64.0 / cores;
        assert!(close(get("host_start_rate").value, rate), "{p}: host start rate {} vs {rate}", get("host_start_rate").value);
        assert!(close(get("start_fleet").value, (10000.0 / hosts).ceil() / rate), "{p}: fleet start time");
        assert!(close(get("start_one_host").value, 10000f64.min(per_host) / rate), "{p}: one host's start time");
        // Disk: the storage the platform really uses, from summary.csv.
        let method = summary
            .iter()
            .filter(|r| r.platform == *p && r.metric == Metric::ImagePerInstance && r.unit == "bytes")
            .map(|r| r.workload.clone())
            .find(|m| !m.contains("synthetic"))
            .unwrap();
        let per_disk = med(p, &method, Metric::ImagePerInstance).unwrap();
        let shared = med(p, &method, Metric::ImageShared).unwrap();
        assert!(close(get("disk").value, hosts * shared + 10000.0 * per_disk), "{p}: disk");
    }
}

#[test]
fn malformed_plan_input_gets_one_line_errors() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example");
    let d = tempfile::tempdir().unwrap();
    copy_run(&example, d.path());
    // A run without the capacity figures: its boot rows only.
    let old = tempfile::tempdir().unwrap();
    copy_run(&example, old.path());
    let boot_only: Vec<_> = read_samples(&old.path().join("samples.csv")).unwrap().into_iter().filter(|s| s.metric == Metric::Boot).collect();
    versus::export::write_samples(&old.path().join("samples.csv"), &boot_only).unwrap();
    let run = d.path().to_string_lossy().to_string();
    let old_run = old.path().to_string_lossy().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&run, "--host-memory", "12XB", "--host-cores", "64"], "invalid size `12XB`"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "0"], "--host-cores must be a whole number of at least 1"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "many"], "--host-cores"),
        (vec![&run, "--host-memory", "0", "--host-cores", "8"], "--host-memory must be more than 0"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "8", "--instances", "0"], "--instances must be"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "8", "--reserve", "150"], "invalid percentage"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "8", "--start-rate", "fast"], "invalid rate"),
        (vec![&run, "--host-memory", "512GiB", "--host-cores", "8", "--basis", "rss"], "unknown memory basis"),
        (vec![&old_run, "--host-memory", "512GiB", "--host-cores", "8"], "no `density.pss_total` rows"),
        (vec!["/nonexistent/run", "--host-memory", "512GiB", "--host-cores", "8"], "has no samples.csv"),
    ];
    for (args, want) in cases {
        let o = versus().arg("plan").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: stderr {err:?} should contain {want:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line, not {err:?}");
    }
    // The missing-metric error names the command that measures it.
    let o = versus().arg("plan").arg(&old_run).args(["--host-memory", "512GiB", "--host-cores", "8"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("versus run --density-budget"));
    assert!(!old.path().join("plan.md").exists(), "nothing written on errors");
}
