//! Real containers: isolation basics, limits, errors and cleanup on every
//! path. Needs root (CI runs as root); without root the tests say so and
//! fail, since a skipped isolation test is not a pass.

mod common;

use std::time::Duration;

use common::*;
use std::collections::BTreeMap;
use versus::error::LaunchError;

use versus::experiment::probes::{run_probe_workload, wire};
use versus::platform::container::{ContainerOptions, ContainerPlatform, Profile};
use versus::platform::process::ProcessPlatform;
use versus::platform::{LaunchSpec, Limits, Platform};
use versus::runner::launch_once;
use versus::workload::{GuestMode, WorkloadSpec};

/// The leak checks look at the whole test process, so these tests run one
/// at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn container() -> ContainerPlatform {
    assert!(is_root(), "the container integration tests need root (run them as root, as CI does)");
    ContainerPlatform::new(ContainerOptions::default()).expect("container platform")
}

fn spec(w: &str) -> LaunchSpec {
    LaunchSpec::new(w.parse().expect("workload"))
}

fn checksum_of(p: &dyn Platform, w: &str) -> u64 {
    let mut i = p.launch(&spec(w)).expect("launch");
    let f = i.finish().expect("finish");
    i.stop().expect("stop");
    u64::from_str_radix(f.results[0].checksum().expect("checksum"), 16).expect("hex")
}

#[test]
fn workload_is_pid_1_of_its_own_pid_namespace() {
    let _serial = serial();
    // `call:1` makes one getpid() and reports it as its checksum.
    let c = container();
    assert_eq!(checksum_of(&c, "call:1"), 1, "container workload must be pid 1");
    let p = ProcessPlatform::new().unwrap();
    assert_ne!(checksum_of(&p, "call:1"), 1, "control: a plain process is not pid 1");
    let no_pidns = ContainerPlatform::new(ContainerOptions { pid_namespace: false, ..Default::default() }).unwrap();
    assert_ne!(checksum_of(&no_pidns, "call:1"), 1, "control: without a pid namespace it is not pid 1");
}

#[test]
fn hostname_change_does_not_reach_the_host() {
    let _serial = serial();
    let before = nix::unistd::gethostname().unwrap();
    let c = container();
    for _ in 0..3 {
        let i = c.launch(&spec("ready")).unwrap();
        i.stop().unwrap();
    }
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

#[test]
fn cpu_checksum_matches_process_and_host() {
    let _serial = serial();
    let c = container();
    let p = ProcessPlatform::new().unwrap();
    let s = spec("cpu:1000");
    let rc = launch_once(&c, &s).expect("container cpu");
    let rp = launch_once(&p, &s).expect("process cpu");
    let want = versus::workload::expected_cpu_checksum(1000);
    assert_eq!(rc.finished.results[0].checksum(), Some(want.as_str()));
    assert_eq!(rp.finished.results[0].checksum(), Some(want.as_str()));
}

#[test]
fn boot_phases_add_up() {
    let _serial = serial();
    let c = container();
    let rec = launch_once(&c, &spec("ready")).unwrap();
    let names: Vec<&str> = rec.boot.phases.iter().map(|p| p.0).collect();
    assert_eq!(names, ["namespaces", "mounts", "cgroup", "rootfs", "hardening", "exec", "ready"]);
    let sum: f64 = rec.boot.phases.iter().map(|p| p.1).sum();
    assert!((sum - rec.boot.total_ms()).abs() < 1e-6, "phases {sum} vs total {}", rec.boot.total_ms());
    assert!(rec.boot.total_ms() > 0.0);
}

/// The workload runs inside its cgroup (it joined it before its rootfs
/// set-up), with every limit written: the child made the cgroup itself.
#[test]
fn workload_runs_inside_its_limited_cgroup() {
    let _serial = serial();
    let c = container();
    let mut s = spec("idle:1");
    s.limits = Limits { memory_bytes: 96 << 20, pids: 17, cpus: 0.25 };
    let i = c.launch(&s).expect("launch idle");
    let pid = i.pids()[0];
    let dirs = own_cgroups();
    let read = |file: &str| {
        let d = dirs.iter().find(|d| d.join(file).exists()).unwrap_or_else(|| panic!("no cgroup of ours has {file}: {dirs:?}"));
        std::fs::read_to_string(d.join(file)).unwrap().trim().to_string()
    };
    match versus::host::cgroup_mode().0 {
        versus::host::CgroupMode::V2 => {
            assert_eq!(dirs.len(), 1, "{dirs:?}");
            assert_eq!(read("memory.max"), (96u64 << 20).to_string());
            assert_eq!(read("pids.max"), "17");
            assert_eq!(read("cpu.max"), "25000 100000");
        }
        _ => {
            assert_eq!(dirs.len(), 3, "one directory per v1 hierarchy: {dirs:?}");
            assert_eq!(read("memory.limit_in_bytes"), (96u64 << 20).to_string());
            assert_eq!(read("pids.max"), "17");
            assert_eq!(read("cpu.cfs_quota_us"), "25000");
            // The quota is written against the kernel's default period.
            assert_eq!(read("cpu.cfs_period_us"), "100000");
        }
    }
    for d in &dirs {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap();
        assert!(procs.split_whitespace().any(|p| p == pid.to_string()), "pid {pid} not in {}: {procs}", d.display());
    }
    i.stop().unwrap();
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
}

#[test]
fn memory_limit_is_enforced_and_reported() {
    let _serial = serial();
    let c = container();
    let mut s = spec("mem:256");
    s.limits = Limits { memory_bytes: 64 << 20, ..Limits::default() };
    let before = own_children().len();
    let err = match launch_once(&c, &s) {
        Err(versus::runner::LaunchOnceError::Launch(e)) => e,
        other => panic!("expected an OOM kill, got {other:?}"),
    };
    assert!(matches!(err, LaunchError::OomKilled { limit_bytes } if limit_bytes == 64 << 20), "{err}");
    assert!(err.to_string().contains("memory limit"), "{err}");
    // Under the limit the same workload runs.
    let mut ok = spec("mem:16");
    ok.limits = Limits { memory_bytes: 64 << 20, ..Limits::default() };
    launch_once(&c, &ok).expect("16 MiB fits in 64 MiB");
    assert_eq!(own_children().len(), before);
}

#[test]
fn hundred_launches_leave_nothing_behind() {
    let _serial = serial();
    let fds = open_fds();
    let c = container();
    let image = c.image().path().to_path_buf();
    for _ in 0..100 {
        let i = c.launch(&spec("ready")).unwrap();
        i.stop().unwrap();
    }
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
    assert!(mounts_under(&image).is_empty(), "mounts leaked to the host: {:?}", mounts_under(&image));
    drop(c);
    assert!(!image.exists(), "image dir {} left behind", image.display());
    assert_eq!(open_fds(), fds, "file descriptors leaked");
}

/// Launches that fail half-way: set-up failures in the child, a workload
/// that never signals ready in time, a crash, an abandoned instance.
#[test]
fn failed_launches_leave_nothing_behind() {
    let _serial = serial();
    let fds = open_fds();
    let c = container();
    let rootfs = c.image().rootfs();

    // Timeout before ready.
    let mut s = spec("ready");
    s.timeout = Duration::from_micros(1);
    match c.launch(&s) {
        // The launch is bounded from the clone on: set-up and exec, then
        // READY (whichever the microsecond runs out in).
        Err(LaunchError::Timeout { what, .. }) => assert!(what == "signal ready" || what == "get through its set-up to execve", "{what}"),
        Err(e) => panic!("expected a timeout, got {e}"),
        Ok(_) => panic!("expected a timeout"),
    }

    // Crash: kill the workload behind the platform's back while it idles.
    let mut i = c.launch(&spec("idle:1")).unwrap();
    let pid = i.pids()[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    match i.finish() {
        Err(LaunchError::Crashed { status, .. }) => assert!(status.contains("SIGKILL"), "{status}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    drop(i);

    // An instance dropped without stop (e.g. on a panic path) is torn down.
    let i = c.launch(&spec("idle:1")).unwrap();
    drop(i);

    // Cgroup failure in the child: a CPU quota the kernel refuses (above
    // its 2^44 ns cap). The error names the file; the half-made cgroup goes.
    let mut s = spec("ready");
    s.limits = Limits { cpus: 1e9, ..Limits::default() };
    match c.launch(&s) {
        Err(LaunchError::Cgroup { path, source }) => {
            let f = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(f == "cpu.cfs_quota_us" || f == "cpu.max", "{}", path.display());
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL), "{source}");
        }
        Err(e) => panic!("expected a cgroup failure, got {e}"),
        Ok(_) => panic!("expected a cgroup failure"),
    }
    assert!(own_cgroups().is_empty(), "cgroups left after a failed cgroup set-up: {:?}", own_cgroups());

    // Exec failure: the rootfs has no /init.
    let init = rootfs.join("init");
    std::fs::rename(&init, rootfs.join("init.moved")).unwrap();
    match c.launch(&spec("ready")) {
        Err(LaunchError::Sys { context, source }) => {
            assert!(context.contains("executing") && context.contains("/init"), "{context}");
            assert_eq!(source, nix::errno::Errno::ENOENT);
        }
        Err(e) => panic!("expected an exec failure, got {e}"),
        Ok(_) => panic!("expected an exec failure"),
    }
    std::fs::rename(rootfs.join("init.moved"), &init).unwrap();

    // Mount failure: no /proc mount point.
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    match c.launch(&spec("ready")) {
        Err(LaunchError::ChildSetup { step, errno }) => {
            assert_eq!(step, "mount /proc");
            assert_eq!(errno, nix::errno::Errno::ENOENT);
        }
        Err(e) => panic!("expected a mount failure, got {e}"),
        Ok(_) => panic!("expected a mount failure"),
    }
    std::fs::create_dir(rootfs.join("proc")).unwrap();

    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
    assert!(mounts_under(&rootfs).is_empty());
    drop(c);
    assert_eq!(open_fds(), fds, "file descriptors leaked");
}

#[test]
fn a_panic_with_a_live_container_releases_it() {
    let _serial = serial();
    let c = container();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _i = c.launch(&spec("idle:1")).unwrap();
        panic!("boom while a container runs");
    }));
    assert!(r.is_err());
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
}

/// The workload's own view of itself, from the probe mode: each probe's
/// observed fields (CapEff from /proc/self/status, the Seccomp and
/// NoNewPrivs lines of /proc/self/status, init_module's errno, what
/// /proc/kcore and the other masked /proc files give).
fn own_view(p: &ContainerPlatform) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut s = LaunchSpec::new(WorkloadSpec::mode(GuestMode::Probe { port: 0 }));
    s.timeout = Duration::from_secs(20);
    let lines = run_probe_workload(p, &s).expect("probe workload");
    lines.into_iter().map(|l| (l.id, wire::fields(&l.evidence))).collect()
}

fn field<'a>(v: &'a BTreeMap<String, BTreeMap<String, String>>, probe: &str, key: &str) -> &'a str {
    v.get(probe).and_then(|f| f.get(key)).map(String::as_str).unwrap_or_else(|| panic!("{probe} reported no `{key}`: {:?}", v.get(probe)))
}

/// Bytes a `read_some` observation (`ok:<n>` or `errno<n>`) got.
fn bytes(obs: &str) -> u64 {
    obs.strip_prefix("ok:").and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn default_profile_runs_the_workload_as_docker_would() {
    let _serial = serial();
    let c = container();
    assert_eq!(c.profile(), Profile::Default);
    let v = own_view(&c);
    let eff = u64::from_str_radix(field(&v, "priv.capabilities", "eff"), 16).expect("CapEff is hex");
    assert_eq!(eff.count_ones(), 14, "CapEff {eff:016x}");
    assert_eq!(eff, 0xa80425fb, "Docker's default set");
    assert_eq!(field(&v, "priv.capabilities", "bnd"), field(&v, "priv.capabilities", "eff"), "bounding set = effective set");
    assert_eq!(field(&v, "priv.seccomp", "status"), "2", "Seccomp: 2 (filter) in /proc/self/status");
    assert_eq!(field(&v, "priv.seccomp", "mode"), "2");
    assert_eq!(field(&v, "priv.no_new_privs", "status"), "1", "NoNewPrivs: 1 in /proc/self/status");
    assert_eq!(field(&v, "kif.module_load", "errno"), "1", "init_module is refused with EPERM");
    // /proc/kcore: masked by /dev/null (reads as empty), or absent where
    // the kernel has none; never its content.
    let kcore = field(&v, "dev.mem", "kcore");
    assert_eq!(bytes(kcore), 0, "/proc/kcore gave bytes: {kcore}");
    if std::path::Path::new("/proc/kcore").exists() {
        assert_eq!(kcore, "ok:0", "the masked /proc/kcore opens and reads as empty");
    }
    // The other masked files read as empty too (/proc/timer_list exists on
    // every kernel with timers, and root reads it on the host).
    assert_eq!(field(&v, "kif.proc_masked", "timer_list"), "ok:0");
    // /proc/sys is read-only.
    assert_eq!(field(&v, "kif.proc_sys", "open_write"), format!("errno{}", libc::EROFS));
    // Threads and forks still work under the filter (clone3 falls back to
    // clone): the fork bomb and the multi-threaded stress run.
    let mut s = spec("stress-cpu:200");
    s.timeout = Duration::from_secs(20);
    let f = launch_once(&c, &s).expect("stress-cpu under the default profile");
    assert!(f.finished.results[0].checksum().is_some());
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
}

#[test]
fn privileged_profile_keeps_what_default_takes_away() {
    let _serial = serial();
    let c = ContainerPlatform::new(ContainerOptions { profile: Profile::Privileged, ..Default::default() }).expect("privileged container platform");
    let v = own_view(&c);
    let eff = u64::from_str_radix(field(&v, "priv.capabilities", "eff"), 16).expect("CapEff is hex");
    assert!(eff.count_ones() > 14 && eff & (1 << 21) != 0, "CapEff {eff:016x}: CAP_SYS_ADMIN kept");
    assert_eq!(field(&v, "priv.seccomp", "status"), "0");
    assert_eq!(field(&v, "priv.no_new_privs", "status"), "0");
    assert_ne!(field(&v, "kif.module_load", "errno"), "1", "init_module gets past the permission check");
    assert!(bytes(field(&v, "kif.proc_masked", "timer_list")) > 0, "/proc/timer_list is readable");
    if std::path::Path::new("/proc/kcore").exists() {
        assert!(bytes(field(&v, "dev.mem", "kcore")) > 0, "/proc/kcore is readable");
    } else {
        eprintln!("this kernel has no /proc/kcore (CONFIG_PROC_KCORE off): its mask is checked where it exists");
    }
    assert_eq!(field(&v, "kif.proc_sys", "open_write"), "ok");
    let rec = launch_once(&c, &spec("ready")).unwrap();
    assert_eq!(rec.boot.phases.iter().map(|p| p.0).collect::<Vec<_>>(), ["namespaces", "mounts", "cgroup", "rootfs", "hardening", "exec", "ready"]);
}

/// The hardened container's masks are mounts inside its own mount
/// namespace: none reaches the host, and a hundred launches leave nothing.
#[test]
fn masks_stay_inside_the_container() {
    let _serial = serial();
    let c = container();
    let fds = open_fds();
    for _ in 0..20 {
        let i = c.launch(&spec("idle:1")).unwrap();
        // While it runs, its masked /proc paths are mounts of its own
        // namespace only (their targets are under the image's rootfs).
        assert!(mounts_under(c.image().path()).is_empty(), "mounts reached the host: {:?}", mounts_under(c.image().path()));
        i.stop().unwrap();
    }
    assert!(mounts_under(c.image().path()).is_empty());
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert_eq!(open_fds(), fds);
}
