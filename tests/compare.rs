//! `versus compare`, `history` and `export` as a user runs them: the built
//! binary on run directories written here (plain CSV and JSON text, as
//! `versus run` writes them), checking exit codes, the files it writes and
//! the history database, including a versus killed while it writes it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use versus::compare::rng::SplitMix64;

fn versus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_versus"))
}

fn run_versus(args: &[&str]) -> Output {
    versus().args(args).output().expect("versus runs")
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `n` values around `center` with relative standard deviation `rel_sd`.
fn normal(center: f64, rel_sd: f64, n: usize, seed: u64) -> Vec<f64> {
    let mut r = SplitMix64::new(seed);
    let mut u = || ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n).map(|_| center * (1.0 + rel_sd * (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos())).collect()
}

/// `n` values spread evenly over center·[1 - w, 1 + w]: MAD/median = w/2.
fn spread_out(center: f64, w: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| center * (1.0 + w * (2.0 * (i as f64 + 0.5) / n as f64 - 1.0))).collect()
}

/// A run directory as `versus run` writes it.
struct Fixture<'a> {
    run_id: &'a str,
    kernel: &'a str,
    started_at: u64,
    metrics: Vec<(&'a str, &'a str, &'a str, &'a str, Vec<f64>)>,
    probes: Vec<(&'a str, &'a str, &'a str)>,
}

impl<'a> Fixture<'a> {
    fn new(run_id: &'a str) -> Fixture<'a> {
        Fixture { run_id, kernel: "Linux 6.18.44 x86_64", started_at: 1_795_818_398, metrics: Vec::new(), probes: Vec::new() }
    }
    fn metric(mut self, platform: &'a str, workload: &'a str, metric: &'a str, unit: &'a str, values: Vec<f64>) -> Self {
        self.metrics.push((platform, workload, metric, unit, values));
        self
    }
    fn probe(mut self, platform: &'a str, probe: &'a str, result: &'a str) -> Self {
        self.probes.push((platform, probe, result));
        self
    }
    fn write(&self, parent: &Path) -> PathBuf {
        let dir = parent.join(self.run_id);
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = String::from("run_id,platform,workload,metric,unit,iteration,value\n");
        for (p, w, m, u, vals) in &self.metrics {
            for (i, v) in vals.iter().enumerate() {
                s.push_str(&format!("{},{p},{w},{m},{u},{i},{v}\n", self.run_id));
            }
        }
        std::fs::write(dir.join("samples.csv"), s).unwrap();
        if !self.probes.is_empty() {
            let mut s = String::from("run_id,platform,probe,category,result,evidence\n");
            for (p, id, r) in &self.probes {
                s.push_str(&format!("{},{p},{id},processes,{r},seen\n", self.run_id));
            }
            std::fs::write(dir.join("probes.csv"), s).unwrap();
        }
        let env = serde_json::json!({
            "run_id": self.run_id,
            "versus_version": "0.1.0",
            "git_revision": null,
            "command_line": ["versus", "run"],
            "started_at_unix": self.started_at,
            "host": {
                "hostname": "ci", "kernel": self.kernel, "cpu_model": "AMD EPYC", "cgroup_mode": "hybrid",
                "kvm_mode": {"kind": "pvm"}, "cores": 2
            },
            "host_measurements": {},
            "platforms": [],
            "not_measured": []
        });
        std::fs::write(dir.join("env.json"), serde_json::to_string_pretty(&env).unwrap()).unwrap();
        dir
    }
}

fn boot_run<'a>(id: &'a str, values: Vec<f64>) -> Fixture<'a> {
    Fixture::new(id).metric("container", "ready", "boot", "ms", values)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn exit_codes_are_as_documented() {
    let d = tempfile::tempdir().unwrap();
    let base = boot_run("base", normal(2.0, 0.03, 50, 1)).write(d.path());
    let slower = boot_run("slower", normal(2.2, 0.03, 50, 2)).write(d.path());
    let noisy_a = boot_run("noisy-a", spread_out(2.0, 0.8, 50)).write(d.path());
    let noisy_b = boot_run("noisy-b", spread_out(2.2, 0.8, 50)).write(d.path());
    let other_host = Fixture { kernel: "Linux 6.19.0 x86_64", ..boot_run("other-host", normal(2.0, 0.03, 50, 3)) }.write(d.path());

    let o = run_versus(&["compare", s(&base), s(&base)]);
    assert_eq!(o.status.code(), Some(0), "the same run against itself: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no regression"), "{}", text(&o));

    let o = run_versus(&["compare", s(&base), s(&slower)]);
    assert_eq!(o.status.code(), Some(1), "10% slower boot: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("container/ready/boot"), "{}", text(&o));

    let o = run_versus(&["compare", s(&noisy_a), s(&noisy_b)]);
    assert_eq!(o.status.code(), Some(2), "a shift hidden in 40% noise: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("too noisy"), "{}", text(&o));

    let o = run_versus(&["compare", s(&base), s(&other_host)]);
    assert_eq!(o.status.code(), Some(2), "another kernel: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("kernel"), "{}", text(&o));
    // Accepting the difference makes it comparable again.
    let o = run_versus(&["compare", s(&base), s(&other_host), "--ignore-host", "kernel"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Usage errors: a directory that is not a run, a bad policy, a bad flag.
    let o = run_versus(&["compare", s(d.path()), s(&base)]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a versus run directory"), "{}", text(&o));
    let policy = d.path().join("policy.toml");
    std::fs::write(&policy, "[metric.\"boot\"]\nminimum = 3\n").unwrap();
    let o = run_versus(&["compare", s(&base), s(&slower), "--policy", s(&policy)]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("minimum"), "{}", text(&o));
    let o = run_versus(&["compare", s(&base), s(&slower), "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let o = run_versus(&["compare", s(&base)]);
    assert_eq!(o.status.code(), Some(3), "NEW missing: {}", text(&o));

    // A policy that raises the minimum effect above the shift passes it.
    std::fs::write(&policy, "[metric.\"boot\"]\nmin_effect = 0.25\n").unwrap();
    let o = run_versus(&["compare", s(&base), s(&slower), "--policy", s(&policy)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // --help documents them and exits 0.
    let o = run_versus(&["compare", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for want in ["Exit codes", "0  no regression", "1  regression", "2  inconclusive", "3  usage error"] {
        assert!(help.contains(want), "--help lacks `{want}`: {help}");
    }
}

#[test]
fn an_isolation_flip_fails_the_gate() {
    let d = tempfile::tempdir().unwrap();
    let vals = normal(2.0, 0.03, 30, 1);
    let base = boot_run("base", vals.clone()).probe("container", "proc.host_pids", "isolated").probe("container", "kernel.shared", "exposed").write(d.path());
    let new = boot_run("new", vals).probe("container", "proc.host_pids", "exposed").probe("container", "kernel.shared", "exposed").write(d.path());
    let o = run_versus(&["compare", s(&base), s(&new)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("container/proc.host_pids: isolated -> exposed  regression"), "{out}");
}

#[test]
fn markdown_junit_and_json_outputs_parse() {
    let d = tempfile::tempdir().unwrap();
    let base = Fixture::new("base")
        .metric("container", "ready", "boot", "ms", normal(2.0, 0.03, 50, 1))
        .metric("process", "cpu", "cpu", "ms", normal(70.0, 0.03, 50, 2))
        .metric("process", "idle", "mem.host", "bytes", normal(17e6, 0.005, 10, 3))
        .probe("container", "proc.host_pids", "isolated")
        .write(d.path());
    let new = Fixture::new("new")
        .metric("container", "ready", "boot", "ms", normal(2.2, 0.03, 50, 4))
        .metric("process", "cpu", "cpu", "ms", normal(70.0, 0.03, 50, 5))
        .metric("process", "idle", "mem.host", "bytes", normal(17e6, 0.005, 10, 6))
        .probe("container", "proc.host_pids", "isolated")
        .write(d.path());
    let (md, junit, json) = (d.path().join("c.md"), d.path().join("c.xml"), d.path().join("c.json"));
    let o = run_versus(&["compare", s(&base), s(&new), "--markdown", s(&md), "--junit", s(&junit), "--json", s(&json)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // Markdown: a table whose header is as documented, one row for the one
    // changed metric, and the unchanged ones folded in <details>.
    let md = std::fs::read_to_string(&md).unwrap();
    let mut opts = pulldown_cmark::Options::empty();
    opts.insert(pulldown_cmark::Options::ENABLE_TABLES);
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    let (mut in_cell, mut cell, mut row) = (false, String::new(), Vec::new());
    let mut html = String::new();
    use pulldown_cmark::{Event, Tag, TagEnd};
    for ev in pulldown_cmark::Parser::new_ext(&md, opts) {
        match ev {
            Event::Start(Tag::Table(_)) => tables.push(Vec::new()),
            Event::Start(Tag::TableCell) => {
                in_cell = true;
                cell.clear();
            }
            Event::End(TagEnd::TableCell) => {
                in_cell = false;
                row.push(cell.trim().to_string());
            }
            Event::End(TagEnd::TableHead) | Event::End(TagEnd::TableRow) => tables.last_mut().unwrap().push(std::mem::take(&mut row)),
            Event::Text(t) | Event::Code(t) if in_cell => cell.push_str(&t),
            Event::Html(h) | Event::InlineHtml(h) => html.push_str(&h),
            _ => {}
        }
    }
    assert!(tables.len() >= 2, "a table of changes and one of unchanged metrics: {md}");
    assert_eq!(tables[0][0], ["metric", "unit", "old", "new", "change", "95% CI", "p (BH)", "verdict"], "{md}");
    assert_eq!(tables[0].len(), 2, "one changed metric: {md}");
    assert_eq!(tables[0][1][0], "container/ready/boot");
    assert!(tables[0][1][7].starts_with("regression"), "{:?}", tables[0][1]);
    assert!(tables[0][1][4].starts_with('+'), "{:?}", tables[0][1]);
    assert!(html.contains("<details>") && html.contains("</details>"), "{md}");
    let folded: Vec<&str> = tables[1].iter().skip(1).map(|r| r[0].as_str()).collect();
    assert!(folded.contains(&"process/cpu/cpu") && folded.contains(&"process/idle/mem.host"), "{folded:?}");

    // JUnit: read back by quick-junit's reader; one case per metric and probe.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("the JUnit XML parses");
    assert_eq!(report.test_suites.len(), 2, "metrics and probes");
    let metrics = &report.test_suites[0];
    assert_eq!(metrics.test_cases.len(), 3);
    assert_eq!(metrics.failures, 1);
    let failed: Vec<&str> =
        metrics.test_cases.iter().filter(|t| matches!(t.status, quick_junit::TestCaseStatus::NonSuccess { .. })).map(|t| t.name.as_str()).collect();
    assert_eq!(failed, ["container/ready/boot"]);
    assert_eq!(report.test_suites[1].test_cases.len(), 1);

    // JSON: the whole comparison.
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["overall"], "regression");
    assert_eq!(v["metrics"].as_array().unwrap().len(), 3);
    let boot = v["metrics"].as_array().unwrap().iter().find(|m| m["key"]["metric"] == "boot").unwrap();
    assert_eq!(boot["verdict"], "regression");
    assert!(boot["ci"][0].as_f64().unwrap() > 0.05);
}

#[test]
fn history_imports_three_runs_and_trends_them_in_time_order() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("db/history.db");
    // Written and imported out of order; the trend is by start time.
    let runs = [("run-b", 2_000u64, 2.2), ("run-c", 3_000, 2.4), ("run-a", 1_000, 2.0)];
    for (id, at, center) in runs {
        let dir = Fixture { started_at: at, ..boot_run(id, normal(center, 0.02, 20, at)) }.write(d.path());
        let o = run_versus(&["history", "--history-db", s(&db), "import", s(&dir)]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("recorded {id}")), "{}", text(&o));
    }
    // Importing one again changes nothing.
    let o = run_versus(&["history", "--history-db", s(&db), "import", s(&d.path().join("run-a"))]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("already recorded"), "{}", text(&o));

    let o = run_versus(&["history", "--history-db", s(&db), "trend", "boot"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let pos: Vec<usize> = ["run-a", "run-b", "run-c"].iter().map(|id| out.find(id).unwrap_or_else(|| panic!("{id} missing: {out}"))).collect();
    assert!(pos[0] < pos[1] && pos[1] < pos[2], "{out}");
    assert!(out.contains("container/ready/boot [ms]"), "{out}");

    let o = run_versus(&["history", "--history-db", s(&db), "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("run-").count(), 3, "{}", text(&o));

    // A recorded run is a valid side of `versus compare`, by id.
    let o = run_versus(&["compare", "run-a", "run-c", "--history-db", s(&db)]);
    assert_eq!(o.status.code(), Some(1), "20% slower: {}", text(&o));

    // ... and can be exported.
    let o = run_versus(&["export", "run-a", "--history-db", s(&db), "--bmf", "-"]);
    assert!(o.status.success(), "{}", text(&o));
    let bmf: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(bmf["container/ready/boot"]["milliseconds"]["value"].as_f64().unwrap() > 1.9);
}

#[test]
fn a_corrupt_database_is_a_clear_error_and_the_run_stays() {
    let d = tempfile::tempdir().unwrap();
    let run = boot_run("run-x", normal(2.0, 0.02, 20, 1)).write(d.path());
    let db = d.path().join("history.db");
    std::fs::write(&db, "this is not a database, it is a note someone left here\n".repeat(200)).unwrap();
    let before = std::fs::read(run.join("samples.csv")).unwrap();
    let o = run_versus(&["history", "--history-db", s(&db), "import", s(&run)]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a readable versus history database") && err.contains("move it aside"), "{err}");
    assert_eq!(std::fs::read(run.join("samples.csv")).unwrap(), before);
}

#[test]
fn killing_versus_while_it_writes_the_database_leaves_it_readable() {
    let d = tempfile::tempdir().unwrap();
    let db = d.path().join("history.db");
    // A first run, recorded whole.
    let small = boot_run("run-small", normal(2.0, 0.02, 20, 1)).write(d.path());
    assert!(run_versus(&["history", "--history-db", s(&db), "import", s(&small)]).status.success());
    // A big one, killed inside its transaction after 150 000 of 200 000
    // sample rows (the test hook stops it there and says so).
    let n = 200_000;
    let big = Fixture::new("run-big").metric("process", "ready", "boot", "ms", normal(2.0, 0.02, n, 2)).write(d.path());
    let mut child = versus()
        .args(["history", "--history-db", s(&db), "import", s(&big)])
        .env("VERSUS_HISTORY_STALL_AFTER_ROWS", "150000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("versus ended before it stalled mid-write: {seen} ({:?})", child.wait());
        }
        seen.push_str(&line);
        if line.contains("stalling the import") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");

    // The database opens, passes SQLite's integrity check and holds the
    // first run whole and nothing of the killed one.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let runs: Vec<String> = conn.prepare("SELECT run_id FROM runs").unwrap().query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(runs, ["run-small"]);
    let samples: i64 = conn.query_row("SELECT COUNT(*) FROM samples", [], |r| r.get(0)).unwrap();
    assert_eq!(samples, 20);
    drop(conn);
    // versus reads it, and the run's files are intact: importing it again works.
    let o = run_versus(&["history", "--history-db", s(&db), "import", s(&big)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run_versus(&["history", "--history-db", s(&db), "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("{n:>8}")), "{}", text(&o));
}

#[test]
fn export_bmf_of_a_run_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = boot_run("r", vec![1.0, 2.0, 3.0]).write(d.path());
    let out = d.path().join("bmf.json");
    let o = run_versus(&["export", s(&dir), "--bmf", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let m = &v["container/ready/boot"]["milliseconds"];
    assert_eq!(m["value"], 2.0);
    assert!(m["lower_value"].as_f64().unwrap() <= 2.0 && m["upper_value"].as_f64().unwrap() >= 2.0);
}
