//! The `versus` binary as a user runs it: a real run and its files, bad
//! input, and Ctrl-C in the middle of a run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use versus::model::{Metric, RunStatus};

use versus::export::json::read_env;
use versus::export::{read_samples, read_summary};

fn versus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_versus"))
}

fn only_run_dir(out: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(out).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    assert_eq!(dirs.len(), 1, "expected one run dir in {}: {dirs:?}", out.display());
    dirs[0].clone()
}

#[test]
fn quick_run_writes_valid_files() {
    assert!(common::is_root(), "needs root for the container platform");
    let out = tempfile::tempdir().unwrap();
    let o = versus()
        .args(["run", "-p", "process,container", "-w", "ready,cpu:2000,call:1000,idle:1", "--runs", "3", "--warmup", "0", "-o"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run failed: {stdout}\n{stderr}");
    assert!(stdout.contains("ready / boot [ms]") && stdout.contains("vs process"), "{stdout}");
    let dir = only_run_dir(out.path());
    let run_id = dir.file_name().unwrap().to_string_lossy().to_string();

    let samples = read_samples(&dir.join("samples.csv")).expect("samples.csv matches the schema");
    let summary = read_summary(&dir.join("summary.csv")).expect("summary.csv matches the schema");
    assert!(samples.iter().all(|s| s.run_id == run_id));
    for p in ["process", "container"] {
        for (w, m) in [("ready", "boot"), ("cpu:2000", "cpu"), ("call:1000", "call"), ("idle:1", "teardown"), ("idle:1", "boot")] {
            let n = samples.iter().filter(|s| s.platform == p && s.workload == w && s.metric == m.into()).count();
            assert_eq!(n, 3, "{p} {w} {m}: 3 samples");
            let row = summary.iter().find(|r| r.platform == p && r.workload == w && r.metric == m.into()).expect("summary row");
            assert_eq!(row.n, 3);
            assert!(row.min <= row.median && row.median <= row.max);
        }
    }
    // Phase rows add up to boot, launch by launch.
    for s in samples.iter().filter(|s| s.metric == Metric::Boot) {
        let sum: f64 = samples
            .iter()
            .filter(|x| x.platform == s.platform && x.workload == s.workload && x.iteration == s.iteration && matches!(x.metric, Metric::BootPhase(_)))
            .map(|x| x.value)
            .sum();
        assert!((sum - s.value).abs() < 1e-3, "{} {} #{}: phases {sum} != boot {}", s.platform, s.workload, s.iteration, s.value);
    }
    let env = read_env(&dir.join("env.json")).unwrap();
    assert_eq!(env.run_id, run_id);
    assert!(env.host.kernel.starts_with("Linux"));
    let st = |p: &str| env.platforms.iter().find(|s| s.platform == p).unwrap().clone();
    assert_eq!(st("process").status, RunStatus::Ran);
    assert_eq!(st("container").status, RunStatus::Ran);
    // Teardown is measured where it does something: on idle instances.
    assert!(!samples.iter().any(|s| s.metric == Metric::Teardown && s.workload != "idle:1"), "teardown rows outside idle");
    // A platform asked for by name that cannot run (qemu where vm-linux
    // would not: no QEMU, no /dev/kvm, kvm_pvm) is an error before anything
    // runs; the defaults skip it with the reason.
    let out2 = tempfile::tempdir().unwrap();
    let o =
        versus().args(["run", "-p", "process,qemu", "-w", "ready", "--runs", "1", "--warmup", "0", "--launch-only", "-o"]).arg(out2.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        let env = read_env(&only_run_dir(out2.path()).join("env.json")).unwrap();
        assert!(env.platforms.iter().any(|s| s.platform == "qemu" && s.status == RunStatus::Ran), "{err}");
    } else {
        assert!(err.contains("platform `qemu` cannot run"), "{err}");
        assert_eq!(std::fs::read_dir(out2.path()).unwrap().count(), 0, "no run dir for a refused run");
    }
}

#[test]
fn bad_input_gets_one_line_errors_and_leaves_nothing() {
    let out = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "-p", "docker"], "unknown platform `docker`"),
        (vec!["run", "-w", "cpu:lots"], "not a non-negative integer"),
        (vec!["run", "-w", "sleep"], "unknown workload `sleep`"),
        (vec!["run", "-w", "ready,stress-cpu:100"], "not a benchmark workload"),
        (vec!["run", "--runs", "0"], "0 is not in 1.."),
        (vec!["launch", "process", "--timeout=0"], "not a positive number"),
        (vec!["launch", "hyperv"], "unknown platform `hyperv`"),
        (vec!["launch", "container", "--container-profile", "docker"], "unknown container profile `docker`"),
        (vec!["run", "-p", "process", "-o", "/proc/versus-cannot-write-here"], "choose another with --out"),
        (vec!["run", "--timeout", "1e20"], "more than a day"),
        (vec!["launch", "process", "--timeout", "inf"], "more than a day"),
        (vec!["run", "--memory-limit-mib", "18446744073709551615"], "not in 1..=1073741824"),
        (vec!["run", "--runs", "4294967295", "--warmup", "2"], "more launches than versus can count"),
        (vec!["run", "-p", "vm-linux", "--kernel", "/nonexistent/vmlinuz"], "/nonexistent/vmlinuz"),
    ];
    for (mut args, want) in cases {
        let o_dir = out.path().to_string_lossy().to_string();
        if args[0] == "run" && !args.contains(&"-o") {
            args.extend(["-o", o_dir.as_str()]);
        }
        let o = versus().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: stderr {err:?} should contain {want:?}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(err.trim().lines().count() <= 3, "{args:?}: a short error, not {err:?}");
    }
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written on errors");
}

#[test]
fn quick_leaves_the_peers_out_unless_named() {
    let out = tempfile::tempdir().unwrap();
    let o = versus().args(["run", "--quick", "-w", "ready", "--launch-only", "-o"]).arg(out.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let env = read_env(&only_run_dir(out.path()).join("env.json")).unwrap();
    for name in versus::platform::registry::names() {
        let st = env.platforms.iter().find(|s| s.platform == name).unwrap_or_else(|| panic!("{name} missing from env.json"));
        let own = versus::platform::registry::info(name).is_some_and(|i| i.group == versus::platform::info::Group::Versus);
        let why = st.reason.clone().unwrap_or_default();
        if own {
            assert!(!why.contains("--quick"), "{name}: {why}");
        } else {
            assert_eq!(st.status, RunStatus::Skipped, "{name}");
            assert!(why.contains("name `") && why.contains("with -p"), "{name}: {why}");
        }
    }
}

#[test]
fn ctrl_c_during_a_run_tears_everything_down() {
    assert!(common::is_root(), "needs root for the container platform");
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let child = versus()
        .args(["run", "-p", "container", "-w", "idle:8,cpu", "--runs", "1000", "-o"])
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Running(Some(child));
    let pid = child.pid();
    // Let it get going, then interrupt as a terminal would.
    let prefix = format!("versus-{pid}-");
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let seen = !common::cgroups_named(&prefix).is_empty();
        if seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Two interrupts that both reach versus before its cleanup ends, without
    // racing it: a fast teardown (milliseconds on an idle host) can end
    // before a second Ctrl-C sent "soon after" is handled, and two SIGINTs
    // pending at once merge into one. So versus is stopped, receives SIGINT
    // (the terminal's Ctrl-C) and SIGTERM (a supervisor's stop), distinct
    // signals that stay pending side by side, and is resumed: it handles
    // both, and the second must not cut the cleanup short.
    use nix::sys::signal::{kill, Signal};
    let p = nix::unistd::Pid::from_raw(pid);
    kill(p, Signal::SIGSTOP).unwrap();
    let t = Instant::now();
    while !process_state_is_stopped(pid) {
        assert!(t.elapsed() < Duration::from_secs(10), "versus did not stop on SIGSTOP");
        std::thread::sleep(Duration::from_millis(2));
    }
    kill(p, Signal::SIGINT).unwrap();
    kill(p, Signal::SIGTERM).unwrap();
    kill(p, Signal::SIGCONT).unwrap();
    let mut child = child.take();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "exit status after Ctrl-C; stderr: {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("cleaning up"), "the second signal is answered: {err}");
    let left = common::cgroups_named(&prefix);
    assert!(left.is_empty(), "cgroups left: {left:?}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "temp dirs left in TMPDIR");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a partial run dir was left");
    assert_eq!(children_of(pid), 0, "children of the interrupted versus still alive");
}

/// A versus under test that a failing test does not leave behind (running,
/// or stopped by the test's SIGSTOP): on drop, unless taken, it is resumed
/// and asked to stop as a supervisor would (SIGTERM, so that it cleans up),
/// and killed if it has not exited within 30 s.
struct Running(Option<std::process::Child>);

impl Running {
    fn pid(&self) -> i32 {
        self.0.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The child, for the test to wait on itself.
    fn take(mut self) -> std::process::Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(c) = self.0.as_mut() else { return };
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        use nix::sys::signal::{kill, Signal};
        let p = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = kill(p, Signal::SIGTERM);
        let _ = kill(p, Signal::SIGCONT);
        let t = Instant::now();
        while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The fields of /proc/PID/stat after the command name: state, ppid, ...
fn stat_fields(stat_file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(stat_file).ok().and_then(|s| s.rsplit(") ").next().map(|r| r.split(' ').map(String::from).collect())).unwrap_or_default()
}

/// Whether `pid` is stopped (state `T`).
fn process_state_is_stopped(pid: i32) -> bool {
    stat_fields(std::path::Path::new(&format!("/proc/{pid}/stat"))).first().is_some_and(|st| st == "T")
}

/// How many live processes have `pid` as their parent.
fn children_of(pid: i32) -> usize {
    let pid = pid.to_string();
    std::fs::read_dir("/proc").unwrap().flatten().filter(|e| stat_fields(&e.path().join("stat")).get(1) == Some(&pid)).count()
}

/// KSM's settings, as the kernel shows them.
fn ksm_settings() -> [String; 3] {
    let r = |f: &str| std::fs::read_to_string(format!("/sys/kernel/mm/ksm/{f}")).unwrap_or_default().trim().to_string();
    [r("run"), r("pages_to_scan"), r("sleep_millisecs")]
}

#[test]
fn ctrl_c_during_the_ksm_pass_restores_ksm() {
    if !std::path::Path::new("/sys/kernel/mm/ksm/run").exists() {
        eprintln!("SKIPPED: this kernel has no KSM (/sys/kernel/mm/ksm)");
        return;
    }
    assert!(common::is_root(), "needs root to drive KSM");
    let before = ksm_settings();
    // KSM off here is what the pass changes; a host that runs KSM already
    // still gets its own settings back.
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let child = versus()
        .args(["run", "-p", "process", "-w", "ready", "--runs", "1", "--warmup", "0", "--storm-max", "0", "--no-interference", "--max-time", "none"])
        .args(["--memory-mib", "4", "--density-budget", "256MiB", "--max-instances", "48", "--ksm", "-o"])
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child = Running(Some(child));
    let pid = child.pid();
    // Wait for the KSM pass to turn KSM on with versus' own tuning, then
    // interrupt in the middle of it.
    let t = Instant::now();
    let mut seen = false;
    while t.elapsed() < Duration::from_secs(120) {
        let now = ksm_settings();
        if now[0] == "1" && now[1] == "5000" && now != before {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if seen {
        std::thread::sleep(Duration::from_millis(50));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT).unwrap();
    } else {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGINT);
    }
    let o = child.take().wait_with_output().unwrap();
    let after = ksm_settings();
    if after != before {
        // Put the host back before failing.
        for (f, v) in ["pages_to_scan", "sleep_millisecs", "run"].iter().zip([&before[1], &before[2], &before[0]]) {
            let _ = std::fs::write(format!("/sys/kernel/mm/ksm/{f}"), v);
        }
    }
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(seen, "the KSM pass never turned KSM on; stderr: {err}");
    assert_eq!(after, before, "KSM's settings after the interrupt; stderr: {err}");
    assert_eq!(o.status.code(), Some(130), "exit status after Ctrl-C; stderr: {err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "a partial run dir was left");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "temp dirs left in TMPDIR");
    assert_eq!(children_of(pid), 0, "instances of the interrupted versus still alive");
}

/// The probe matrix shows what the default container profile closes: the
/// same probes come out `isolated` by default and `exposed` with
/// `--container-profile privileged`, and the run says which profile ran.
#[test]
fn probe_matrix_shows_what_the_container_profile_closes() {
    assert!(common::is_root(), "needs root for the container platform");
    let probe = |profile: &str| {
        let o = versus().args(["probe", "-p", "container", "--csv", "--container-profile", profile]).output().unwrap();
        assert!(o.status.success(), "{profile}: {}", String::from_utf8_lossy(&o.stderr));
        let csv = String::from_utf8_lossy(&o.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(stderr.contains(&format!("profile {profile}")), "the profile is named: {stderr}");
        csv
    };
    let result = |csv: &str, id: &str| {
        csv.lines().find(|l| l.contains(&format!(",{id},"))).and_then(|l| l.split(',').nth(4)).map(String::from).unwrap_or_else(|| panic!("no {id} in {csv}"))
    };
    let default = probe("default");
    let privileged = probe("privileged");
    for id in ["priv.capabilities", "priv.seccomp", "priv.no_new_privs", "kif.proc_sys", "kif.proc_masked", "kif.dmesg", "kif.clock"] {
        assert_eq!(result(&default, id), "isolated", "{id} with the default profile");
        assert_eq!(result(&privileged, id), "exposed", "{id} with --container-profile privileged");
    }
}
