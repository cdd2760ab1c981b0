//! Charts and the report: every PNG decodes with the expected size, text is
//! drawn (the bundled font works), and `render_report` reproduces the same
//! report and charts from a run's files.

use std::path::Path;

use versus::chart::SIZE;
use versus::export::json::{write_env, EnvDoc};
use versus::export::{summarize_samples, write_samples, write_summary};
use versus::model::{PlatformStatus, RunStatus, Sample};
use versus::plan::{plan_run, PlanOptions};
use versus::report::render_report;

fn s(p: &str, w: &str, m: &str, unit: &str, i: u32, v: f64) -> Sample {
    Sample { run_id: "20250101-000000".into(), ..Sample::with_unit(p, w, m.into(), unit, i, v) }
}

/// A deterministic run with every kind of row the charts use.
fn synthetic_run(dir: &Path) {
    let mut rows = Vec::new();
    let plats = [
        ("process", 0.45, vec![("spawn", 0.3), ("ready", 0.15)]),
        ("container", 1.1, vec![("cgroup", 0.2), ("namespaces", 0.5), ("rootfs", 0.2), ("exec", 0.1), ("ready", 0.1)]),
        ("vm-bare", 0.6, vec![("create_vm", 0.3), ("memory", 0.1), ("vcpu", 0.1), ("ready", 0.1)]),
    ];
    for (p, base, phases) in &plats {
        for i in 0..20u32 {
            let jitter = 1.0 + ((i * 7919) % 13) as f64 / 40.0 + if i == 19 { 2.0 } else { 0.0 };
            rows.push(s(p, "ready", "boot", "ms", i, base * jitter));
            for (ph, v) in phases {
                rows.push(s(p, "ready", &format!("boot.{ph}"), "ms", i, v * jitter));
            }
        }
        let mem = match *p {
            "process" => 65.0,
            "container" => 66.5,
            _ => 68.0,
        } * 1048576.0;
        for i in 0..5u32 {
            rows.push(s(p, "idle", "mem.host", "bytes", i, mem + i as f64 * 50_000.0));
            if *p == "container" {
                rows.push(s(p, "idle", "mem.cgroup", "bytes", i, mem + 2.0 * 1048576.0));
            }
        }
        // The density ramp (N = 1..24, with a wobble), with KSM on at
        // powers of two, and its fitted lines as the runner writes them.
        let mut ramp = Vec::new();
        for n in 1..=24u32 {
            let wobble = ((n * 7919) % 7) as f64 * 30_000.0;
            let held = 1.2 * 1048576.0 + (mem - 48.0 * 1048576.0) * n as f64 + wobble;
            ramp.push((n, held));
            rows.push(s(p, "idle:16", "density.pss_total", "bytes", n, held));
            rows.push(s(p, "idle:16", "density.mem_available_drop", "bytes", n, held * 1.03 + wobble * 20.0));
            rows.push(s(p, "idle:16", "density.launch_rate", "instances/s", n, 1000.0 / base));
            if n.is_power_of_two() || n == 24 {
                rows.push(s(p, "idle:16+ksm", "density.pss_total", "bytes", n, 1.2 * 1048576.0 + 1.1 * 1048576.0 * n as f64 + wobble));
                rows.push(s(p, "idle:16+ksm", "density.ksm_pages_sharing", "pages", n, 4000.0 * n as f64));
            }
        }
        let fit = versus::stats::linear_fit(&ramp.iter().map(|(n, v)| (*n as f64, *v)).collect::<Vec<_>>()).unwrap();
        rows.push(s(p, "idle:16", "density.fixed_pss", "bytes", 24, fit.intercept));
        rows.push(s(p, "idle:16", "density.per_instance_pss", "bytes", 24, fit.slope));
        rows.push(s(p, "idle:16", "density.fit_rmse_pss", "bytes", 24, fit.rmse));
        // Two boot storms per N.
        for n in [1u32, 2, 4, 8, 16] {
            for rep in 0..2 {
                let t = base * (1.0 + n as f64 * 0.4) * (1.0 + rep as f64 * 0.05);
                rows.push(s(p, "idle:16", "storm.ready_p50", "ms", n, t));
                rows.push(s(p, "idle:16", "storm.ready_p95", "ms", n, t * 1.3));
                rows.push(s(p, "idle:16", "storm.ready_p99", "ms", n, t * 1.4));
                rows.push(s(p, "idle:16", "storm.ready_all", "ms", n, t * 1.45));
                rows.push(s(p, "idle:16", "storm.launch_rate", "instances/s", n, n as f64 / (t * 1.45 / 1000.0)));
                rows.push(s(p, "idle:16", "storm.failures", "count", n, 0.0));
                rows.push(s(p, "idle:16", "storm.harness_cpu_per_launch", "ms", n, 0.05));
            }
        }
    }
    versus::experiment::memory::add_overhead_rows(&mut rows);
    for (p, m, shared, per) in [
        ("process", "shared", 700_000.0, 0.0),
        ("container", "shared", 720_000.0, 0.0),
        ("container", "overlay", 720_000.0, 12_288.0),
        ("vm-linux", "copy", 9e6, 33_554_432.0),
        ("vm-linux", "qcow2", 9e6 + 8.7e6, 200_704.0),
    ] {
        rows.push(s(p, m, "image.shared", "bytes", 0, shared));
        rows.push(s(p, m, "image.total", "bytes", 0, shared + per));
        for n in 1..=8u32 {
            rows.push(s(p, m, "image.per_instance", "bytes", n - 1, per));
            rows.push(s(p, m, "image.n_instances", "bytes", n, shared + per * n as f64));
        }
    }
    write_samples(&dir.join("samples.csv"), &rows).unwrap();
    write_summary(&dir.join("summary.csv"), &summarize_samples(&rows)).unwrap();
    let st = |p: &str, status: RunStatus, reason: Option<&str>, rep: bool| PlatformStatus {
        platform: p.into(),
        status,
        reason: reason.map(String::from),
        representative: rep,
        representative_note: (!rep).then(|| "guest kernel code is emulated by kvm_pvm".to_string()),
        notes: vec![],
    };
    let env = EnvDoc {
        run_id: "20250101-000000".into(),
        versus_version: "0.1.0".into(),
        git_revision: None,
        command_line: vec!["versus".into(), "run".into()],
        started_at_unix: 1_735_689_600,
        host: serde_json::from_value(serde_json::json!({"kernel": "Linux 6.18 x86_64", "cores": 2, "memory_bytes": 25_000_000_000u64, "kvm_mode": {"kind": "pvm"}, "ksm": "off (0)", "transparent_hugepages": "always [madvise] never", "cgroup_mode": "hybrid", "cgroup_controllers": ["cpu", "memory", "pids"], "peers": []})).unwrap(),
        host_measurements: Default::default(),
        platforms: vec![
            st("process", RunStatus::Ran, None, true),
            st("container", RunStatus::Ran, None, true),
            st("oci", RunStatus::Skipped, Some("runc not installed"), false),
            st("vm-bare", RunStatus::Ran, None, true),
            st("vm-linux", RunStatus::Skipped, Some("no kernel given (--kernel)"), false),
        ],
        not_measured: vec!["reflink VM disks: the filesystem cannot reflink".into()],
        limits: None,
        workload_sizes: vec![],
    };
    write_env(&dir.join("env.json"), &env).unwrap();
}

fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut r = dec.read_info().unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn every_chart_decodes_and_the_report_rerenders_identically() {
    let d = tempfile::tempdir().unwrap();
    synthetic_run(d.path());
    render_report(d.path()).unwrap();
    // A capacity plan made from the run, as `versus plan` does.
    let plan = plan_run(d.path(), &PlanOptions { host_memory: 512 << 30, host_cores: 64, instances: Some(10_000), ..PlanOptions::default() }).unwrap();
    plan.write(d.path()).unwrap();
    let report = render_report(d.path()).unwrap();
    let first = std::fs::read_to_string(&report).unwrap();
    for stem in ["boot", "phases", "storm", "memory", "density", "footprint", "plan"] {
        let png = d.path().join("charts").join(format!("{stem}.png"));
        let (w, h, pixels) = decode(&png);
        assert_eq!((w, h), SIZE, "{stem}.png size");
        // Text and marks drawn: a good share of non-white pixels, and more
        // than two colours (anti-aliased glyphs give many grey levels).
        let px: Vec<&[u8]> = pixels.chunks(3).collect();
        let non_white = px.iter().filter(|p| p.iter().any(|c| *c < 250)).count();
        assert!(non_white > px.len() / 100, "{stem}.png is nearly blank");
        let greys = px.iter().filter(|p| p[0] == p[1] && p[1] == p[2] && p[0] > 30 && p[0] < 220).count();
        assert!(greys > 500, "{stem}.png has no anti-aliased text ({greys} grey pixels)");
        let svg = std::fs::read_to_string(d.path().join("charts").join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<text"), "{stem}.svg has no text");
        assert!(first.contains(&format!("charts/{stem}.png")), "report links {stem}");
        let data = std::fs::read_to_string(d.path().join("charts").join(format!("{stem}.csv"))).unwrap();
        assert!(data.lines().count() > 1, "{stem}.csv has the chart's data");
    }
    // The report carries the KVM mode, the five sections and the skips.
    for needle in [
        "kvm_pvm",
        "## 1. OS",
        "## 2. Size",
        "## 3. Boot",
        "## 4. Isolation",
        "## 5. Maintenance",
        "`oci` skipped: runc not installed",
        "a plain process starts in",
        "mem.overhead",
        "### Boot storm: N launches at once",
        "### Density to the memory budget",
        "KSM is a known side channel",
        "## Capacity plan",
        "| platform | status | representative | reason / notes |",
    ] {
        assert!(first.contains(needle), "report lacks {needle:?}");
    }
    // Findings come from the numbers: the container's median boot.
    assert!(first.contains("a container in 1."), "{first}");
    // To look at the charts: VERSUS_CHART_OUT=/some/dir cargo test --test charts
    if let Ok(out) = std::env::var("VERSUS_CHART_OUT") {
        std::fs::create_dir_all(&out).unwrap();
        for e in std::fs::read_dir(d.path().join("charts")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), Path::new(&out).join(e.file_name())).unwrap();
        }
        std::fs::copy(&report, Path::new(&out).join("report.md")).unwrap();
    }

    // report.html: every chart inline, with its data.
    let html = std::fs::read_to_string(d.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<figure id=\"chart-").count(), 7, "a figure per chart");
    assert_eq!(html.matches("<details>").count(), 7, "each with its data table");

    // Re-render from the files alone: same report, same charts.
    let pngs: Vec<Vec<u8>> = ["boot", "memory"].iter().map(|s| std::fs::read(d.path().join(format!("charts/{s}.png"))).unwrap()).collect();
    std::fs::remove_dir_all(d.path().join("charts")).unwrap();
    std::fs::remove_file(&report).unwrap();
    render_report(d.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&report).unwrap(), first);
    for (s, old) in ["boot", "memory"].iter().zip(pngs) {
        assert_eq!(std::fs::read(d.path().join(format!("charts/{s}.png"))).unwrap(), old, "{s}.png differs on re-render");
    }
}

#[test]
fn a_run_without_samples_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let e = render_report(d.path()).unwrap_err().to_string();
    assert!(e.contains("samples.csv"), "{e}");
}

/// Chromium (Debian's `chromium`; harness/setup-test-host installs it), if
/// this host has one: `$VERSUS_CHROMIUM`, else the first on PATH.
fn chromium() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("VERSUS_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless on `url` with `args`, in a fresh profile, with
/// no network use of its own; kills it after two minutes. Returns (exit
/// success, stdout, stderr).
fn headless(chromium: &Path, url: &str, args: &[String]) -> (bool, String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    (status.is_some_and(|s| s.success()), t_out.join().unwrap_or_default(), t_err.join().unwrap_or_default())
}

#[test]
fn report_html_renders_in_headless_chromium_without_console_errors() {
    let Some(chromium) = chromium() else {
        eprintln!("SKIPPED: no Chromium on this host (harness/setup-test-host installs Debian's `chromium`; or set VERSUS_CHROMIUM)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    synthetic_run(d.path());
    let plan = plan_run(d.path(), &PlanOptions { host_memory: 512 << 30, host_cores: 64, instances: Some(10_000), ..PlanOptions::default() }).unwrap();
    plan.write(d.path()).unwrap();
    render_report(d.path()).unwrap();
    let html = d.path().join("report.html");
    let url = format!("file://{}", html.display());
    // The screenshot is kept to look at: under $VERSUS_SCREENSHOT_DIR, else
    // the temp dir.
    let shots = std::env::var_os("VERSUS_SCREENSHOT_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("versus-report-html.png");
    let _ = std::fs::remove_file(&shot);
    let (ok, _, stderr) =
        headless(&chromium, &url, &[format!("--screenshot={}", shot.display()), "--window-size=1280,2400".into(), "--hide-scrollbars".into()]);
    assert!(ok, "chromium failed on the report: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load resource")).collect();
    assert!(console.is_empty(), "console errors: {console:#?}");
    let (w, h, pixels) = decode(&shot);
    assert_eq!((w, h), (1280, 2400));
    let px: Vec<&[u8]> = pixels.chunks(pixels.len() / (w * h) as usize).collect();
    let non_white = px.iter().filter(|p| p.iter().take(3).any(|c| *c < 240)).count();
    assert!(non_white > px.len() / 50, "the screenshot is nearly blank");
    eprintln!("screenshot of report.html: {}", shot.display());
    // What the browser built: the sections, the inline charts, the tables.
    let (ok, dom, stderr) = headless(&chromium, &url, &["--dump-dom".into()]);
    assert!(ok, "chromium --dump-dom failed: {stderr}");
    for needle in ["1. OS and hardware", "2. Size", "3. Boot", "4. Isolation", "5. Maintenance", "Capacity plan", "<svg", "<details>", "<nav>"] {
        assert!(dom.contains(needle), "the page lacks {needle:?}");
    }
    assert_eq!(dom.matches("<figure id=\"chart-").count(), 7);
}
