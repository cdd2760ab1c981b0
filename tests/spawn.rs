//! One clone primitive for every host child (src/platform/spawn.rs), seen
//! from outside: `process`, `container` and the `versus-vmm` process of
//! `vm-bare` start without copying versus' page tables (fork would), and
//! process and VMM-process instances get a cgroup of their own when a
//! measurement asks, reported as `mem.cgroup` and removed on every path.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use versus::error::LaunchError;
use versus::experiment::memory;
use versus::model::Metric;
use versus::platform::cgroup::Controls;
use versus::platform::child::spawn_program;
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::spawn::{Environment, Program};
use versus::platform::vm::bare::VmBarePlatform;
use versus::platform::{CgroupNeeds, LaunchSpec, Limits, Platform};

/// The tests of this file run one at a time: they count this process's
/// cgroups, children and page faults.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec(w: &str) -> LaunchSpec {
    let mut s = LaunchSpec::new(w.parse().expect("workload"));
    s.timeout = Duration::from_secs(20);
    s
}

fn with_memory_cgroup(w: &str) -> LaunchSpec {
    LaunchSpec { cgroup: CgroupNeeds { memory: true, cpu: false }, ..spec(w) }
}

const PAGE: usize = 4096;
const PAGES: usize = 16 << 10; // 64 MiB

/// 64 MiB of private memory in small pages, written once.
struct Touched {
    base: *mut u8,
}

impl Touched {
    fn new() -> Touched {
        // SAFETY: a fresh anonymous private mapping, checked below.
        let base =
            unsafe { libc::mmap(std::ptr::null_mut(), PAGES * PAGE, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        assert_ne!(base, libc::MAP_FAILED);
        // Small pages, so that a copy of the page tables shows as one
        // fault per page (a huge page would take one per 2 MiB).
        // SAFETY: advice on the mapping made above.
        unsafe { libc::madvise(base, PAGES * PAGE, libc::MADV_NOHUGEPAGE) };
        let t = Touched { base: base.cast() };
        t.write();
        t
    }

    /// Writes one byte per page; returns the minor faults this thread took.
    fn write(&self) -> i64 {
        let before = thread_minor_faults();
        for i in 0..PAGES {
            // SAFETY: within the mapping, which lives as long as `self`.
            unsafe { std::ptr::write_volatile(self.base.add(i * PAGE), i as u8) };
        }
        thread_minor_faults() - before
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`.
        unsafe { libc::munmap(self.base.cast(), PAGES * PAGE) };
    }
}

fn thread_minor_faults() -> i64 {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD fills `u` for the calling thread.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

/// Faults taken writing the touched pages again after `launch`: a fork
/// write-protects every page of the parent (copy on write), so each write
/// faults; a vfork-like clone shares the memory and copies nothing.
fn faults_after(mem: &Touched, launch: &mut dyn FnMut()) -> i64 {
    launch();
    mem.write()
}

#[test]
fn every_launcher_clones_without_copying_the_page_tables() {
    let _g = serial();
    let mem = Touched::new();
    // Positive control: a fork (Command with pre_exec forces one) copies
    // the page tables, and the faults show it.
    let mut fork = || {
        let mut cmd = std::process::Command::new("/bin/true");
        // SAFETY: an empty hook in the forked child.
        unsafe { cmd.pre_exec(|| Ok(())) };
        cmd.status().expect("/bin/true");
    };
    let forked = faults_after(&mem, &mut fork);
    assert!(forked as usize > PAGES / 2, "control: a fork should make every written page fault ({forked} faults for {PAGES} pages)");

    let process = ProcessPlatform::new().unwrap();
    let mut platforms: Vec<Box<dyn Platform>> = vec![Box::new(process)];
    if is_root() {
        platforms.push(Box::new(ContainerPlatform::new(ContainerOptions::default()).expect("container platform")));
    } else {
        eprintln!("SKIPPED container: not root");
    }
    if kvm_or_skip() {
        platforms.push(Box::new(VmBarePlatform::new().expect("vm-bare")));
    }
    for p in &platforms {
        // One launch first: it takes the pool's stack and fills caches.
        p.launch(&spec("ready")).unwrap().stop().unwrap();
        let faults = faults_after(&mem, &mut || p.launch(&spec("ready")).unwrap().stop().map(drop).unwrap());
        eprintln!("{}: {faults} faults writing {PAGES} pages after a launch (fork: {forked})", p.name());
        assert!((faults as usize) < PAGES / 8, "{}: {faults} faults for {PAGES} pages: the launch copied the page tables (a fork)", p.name());
    }
}

fn assert_in_own_memory_cgroup(pid: i32) -> String {
    let cg = versus::measure::charge::memory_cgroup_of(&pid.to_string()).expect("a memory cgroup");
    let ours = versus::measure::charge::memory_cgroup_of("self").expect("our memory cgroup");
    assert_ne!(cg, ours, "pid {pid} is in versus' own memory cgroup");
    assert!(cg.1.starts_with(&format!("/versus-{}-", std::process::id())), "pid {pid} in {cg:?}");
    cg.1
}

#[test]
fn a_process_asked_for_a_cgroup_gets_one_of_its_own_and_reports_its_charge() {
    let _g = serial();
    assert!(is_root(), "creating cgroups needs root (run the tests as root, as CI does)");
    let p = ProcessPlatform::new().unwrap();
    let before = own_cgroups();
    assert!(before.is_empty(), "{before:?}");
    // Without asking: no cgroup, no charge.
    let r = memory::measure_once(&p, &spec("idle:8")).unwrap();
    assert_eq!(r.cgroup_bytes, None);
    // Asking: its own memory cgroup, charged at least what it touched.
    let i = p.launch(&with_memory_cgroup("idle:32")).unwrap();
    let pid = i.pids()[0];
    let path = assert_in_own_memory_cgroup(pid);
    assert_eq!(own_cgroups().len(), 1, "memory only: {:?}", own_cgroups());
    let reading = memory::read_instance(i.as_ref(), Default::default()).unwrap();
    let charged = reading.cgroup_bytes.expect("mem.cgroup for a process in its own cgroup");
    assert!(charged >= 32 << 20, "{path}: charged {charged} bytes for a 32 MiB workload");
    i.stop().unwrap();
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    // The memory experiment's rows carry mem.cgroup.
    let rows = memory::measure_memory(&p, &with_memory_cgroup("idle:8"), 2).unwrap();
    assert_eq!(rows.iter().filter(|r| r.metric == Metric::MemCgroup).count(), 2);
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
}

#[test]
fn a_process_neighbour_gets_the_one_cpu_quota() {
    let _g = serial();
    assert!(is_root(), "creating cgroups needs root");
    let p = ProcessPlatform::new().unwrap();
    let s = LaunchSpec { cgroup: CgroupNeeds { memory: false, cpu: true }, limits: Limits { cpus: 1.0, ..Limits::default() }, ..spec("idle:1") };
    let i = p.launch(&s).unwrap();
    let dirs = own_cgroups();
    let quota = match versus::host::cgroup_mode().0 {
        versus::host::CgroupMode::V2 => std::fs::read_to_string(dirs[0].join("cpu.max")).unwrap(),
        _ => std::fs::read_to_string(dirs.iter().find(|d| d.join("cpu.cfs_quota_us").exists()).expect("a cpu cgroup").join("cpu.cfs_quota_us")).unwrap(),
    };
    assert!(quota.trim() == "100000" || quota.trim() == "100000 100000", "quota {quota}");
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
    assert!(procs.split_whitespace().any(|x| x == i.pids()[0].to_string()), "{procs}");
    i.stop().unwrap();
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
}

#[test]
fn failed_launches_with_a_cgroup_leave_none_behind() {
    let _g = serial();
    assert!(is_root(), "creating cgroups needs root");
    let fds = open_fds();
    let mem = Controls::needs(CgroupNeeds { memory: true, cpu: true }, &Limits::default());
    // execve fails after the child made and joined its cgroup.
    let prog = Program::new("/nonexistent/versus-program", ["x"], Environment::inherited().unwrap()).unwrap();
    match spawn_program(&prog, 3, "a missing program", Duration::from_secs(5), mem) {
        Err(e) => assert!(e.to_string().contains("executing a missing program") && e.to_string().contains("ENOENT"), "{e}"),
        Ok(_) => panic!("a missing program must not start"),
    }
    assert!(own_cgroups().is_empty(), "cgroups left after a failed execve: {:?}", own_cgroups());
    // A limit the kernel refuses (a CPU quota above its cap): the error
    // names the file; the half-made cgroup goes.
    let p = ProcessPlatform::new().unwrap();
    let s = LaunchSpec { cgroup: CgroupNeeds { memory: true, cpu: true }, limits: Limits { cpus: 1e9, ..Limits::default() }, ..spec("ready") };
    match p.launch(&s) {
        Err(LaunchError::Cgroup { path, source }) => {
            let f = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(f == "cpu.cfs_quota_us" || f == "cpu.max", "{}", path.display());
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL), "{source}");
        }
        Err(e) => panic!("expected a cgroup failure, got {e}"),
        Ok(_) => panic!("expected a cgroup failure"),
    }
    assert!(own_cgroups().is_empty(), "cgroups left after a failed cgroup set-up: {:?}", own_cgroups());
    // A timeout before ready (a program that never speaks the protocol),
    // and an instance dropped without stop.
    let sleep = Program::new("/bin/sleep", ["30"], Environment::inherited().unwrap()).unwrap();
    let (mut child, _) = spawn_program(&sleep, 3, "sleep", Duration::from_millis(50), mem).expect("sleep starts");
    assert!(!own_cgroups().is_empty(), "the child made its cgroup");
    assert!(matches!(child.wait_ready(), Err(LaunchError::Timeout { what: "signal ready", .. })));
    drop(child);
    assert!(own_cgroups().is_empty(), "cgroups left after a timeout: {:?}", own_cgroups());
    drop(p.launch(&with_memory_cgroup("idle:1")).unwrap());
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
    assert_eq!(open_fds(), fds, "file descriptors leaked");
}

#[test]
fn a_vmm_process_asked_for_a_cgroup_reports_its_charge() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    assert!(is_root(), "creating cgroups needs root");
    let p = VmBarePlatform::new().unwrap();
    let i = p.launch(&with_memory_cgroup("idle:16")).unwrap();
    assert_in_own_memory_cgroup(i.pids()[0]);
    let reading = memory::read_instance(i.as_ref(), Default::default()).unwrap();
    let charged = reading.cgroup_bytes.expect("mem.cgroup for a VMM process in its own cgroup");
    let vmm = reading.vmm.expect("mem.vmm");
    eprintln!("vm-bare idle:16: mem.cgroup {charged} bytes, guest RAM resident {} bytes", vmm.guest_ram_rss);
    assert!(charged >= 16 << 20, "charged {charged} bytes for a guest that touched 16 MiB");
    i.stop().unwrap();
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    // A launch that fails after the child made its cgroup: no VMM program
    // to execute.
    let missing = VmBarePlatform::with_binary(std::path::Path::new("/nonexistent/versus-vmm"));
    match missing.launch(&with_memory_cgroup("ready")) {
        Err(e) => assert!(e.to_string().contains("/nonexistent/versus-vmm") && e.to_string().contains("ENOENT"), "{e}"),
        Ok(_) => panic!("a missing VMM program must not start"),
    }
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
}

/// A signal mask word of /proc/PID/status (`SigBlk`, `SigIgn`, ...).
fn signal_mask(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

/// The child is cloned with every signal blocked (so that versus' handlers
/// never run in it) and unblocks them before execve, with versus' handled
/// and ignored signals back at their defaults: a program starts as
/// posix_spawn leaves one, whether versus slept in the clone (no cgroup) or
/// made the cgroup meanwhile. (`sleep` keeps its signals as it got them;
/// the workload program, a Rust program, ignores SIGPIPE itself.)
#[test]
fn every_child_starts_with_no_signal_blocked_or_ignored() {
    let _g = serial();
    let bit = |sig: i32| 1u64 << (sig - 1);
    // versus ignores SIGPIPE (as the Rust runtime does); the child must not.
    assert_ne!(signal_mask(std::process::id() as i32, "SigIgn") & bit(libc::SIGPIPE), 0, "control: this test process ignores SIGPIPE");
    let sleep = Program::new("/bin/sleep", ["30"], Environment::inherited().unwrap()).unwrap();
    let mut cases = vec![None];
    if is_root() {
        cases.push(Some(Controls { memory: Some(None), ..Controls::default() }));
    } else {
        eprintln!("SKIPPED the cgroup case: not root");
    }
    for controls in cases {
        let (mut child, _) = spawn_program(&sleep, 3, "sleep", Duration::from_secs(5), controls).expect("sleep starts");
        let pid = child.pid().expect("running").as_raw();
        let (blocked, ignored) = (signal_mask(pid, "SigBlk"), signal_mask(pid, "SigIgn"));
        child.kill_and_reap().unwrap();
        drop(child);
        assert_eq!(blocked, 0, "cgroup {controls:?}: the program starts with signals blocked: {blocked:x}");
        for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGTERM] {
            assert_eq!(ignored & bit(sig), 0, "cgroup {controls:?}: signal {sig} ignored in the program: {ignored:x}");
        }
    }
    assert!(own_cgroups().is_empty(), "cgroups left: {:?}", own_cgroups());
    assert!(own_children().is_empty(), "children left: {:?}", own_children());
}
