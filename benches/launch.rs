//! `cargo bench --bench launch`: launch-to-ready latency of the `process`
//! and `container` platforms (the container in its `default` profile, as
//! runc and Docker harden it, and `privileged`), against three raw floors
//! and a peer, measured in the same run:
//! - `floor-spawn`: the least a plain process can cost, posix_spawn-style:
//!   clone(CLONE_VM | CLONE_VFORK) + execve of the workload program + its
//!   READY on a pipe; no namespaces. The reference for `process`;
//! - `floor`: the reference for a namespace container's least cost:
//!   a raw clone(NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET) + execve of the same
//!   workload program + its READY on a pipe; no cgroup, no rootfs, no
//!   pivot_root, no hardening. Its clone copies the parent's memory as fork
//!   does;
//! - `floor-vm`: the same with CLONE_VM | CLONE_VFORK, as posix_spawn and
//!   versus' own launchers clone (no page tables copied at clone and torn
//!   down at execve): the stricter floor, reported beside the first so that
//!   a launcher using the cheaper clone cannot look better than it is;
//! - `runc`: `runc run` of an OCI bundle of the same rootfs, where runc is
//!   installed (skipped with a message otherwise).
//!
//! Every sample is one launch timed from before the launch to the receipt of
//! READY; teardown is done outside the timed part.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::pipe2;
use versus::platform::container::{ContainerOptions, ContainerPlatform, Profile};
use versus::platform::process::ProcessPlatform;
use versus::platform::{LaunchSpec, Platform};
use versus::workload::EmbeddedProgram;

fn ready_spec() -> LaunchSpec {
    LaunchSpec::new("ready".parse().expect("`ready` is a workload"))
}

fn time_platform(p: &dyn Platform, iters: u64) -> Duration {
    let spec = ready_spec();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        let inst = p.launch(&spec).expect("launch");
        total += t.elapsed();
        inst.stop().expect("stop");
    }
    total
}

/// One launch timed as [`time_platform`] does, and its boot phases.
fn launch_with_phases(p: &dyn Platform, phases: &mut Vec<(&'static str, f64)>) -> Duration {
    let t = Instant::now();
    let inst = p.launch(&ready_spec()).expect("launch");
    let el = t.elapsed();
    phases.extend(inst.boot().phases.iter().copied());
    inst.stop().expect("stop");
    el
}

/// The median of each phase, in the order the phases come.
fn phase_medians(phases: &[(&'static str, f64)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in phases {
        if !names.contains(n) {
            names.push(n);
        }
    }
    let med = |n: &str| versus::stats::median(&phases.iter().filter(|(p, _)| *p == n).map(|(_, v)| *v).collect::<Vec<_>>());
    names.iter().map(|n| format!("{n} {:.3}", med(n))).collect::<Vec<_>>().join(", ")
}

/// Reads until the first newline (the READY line) or end of file.
fn read_ready(fd: OwnedFd) -> Vec<u8> {
    let mut f = std::fs::File::from(fd);
    let mut line = Vec::new();
    let mut b = [0u8; 256];
    while !line.contains(&b'\n') {
        match f.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&b[..n]),
        }
    }
    line
}

/// The namespaces of the container floors.
fn namespaces() -> CloneFlags {
    CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET
}

/// A raw floor: clone with `flags`, exec the workload, read READY.
/// `floor`: the namespaces; `floor-vm`: the namespaces with CLONE_VM |
/// CLONE_VFORK; `floor-spawn`: CLONE_VM | CLONE_VFORK alone (posix_spawn).
fn floor_once(guest: &CString, flags: CloneFlags) -> Duration {
    let argv = [guest.as_ptr(), c"--fd".as_ptr(), c"3".as_ptr(), c"ready".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let t = Instant::now();
    let (r, w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let wfd = w.as_raw_fd();
    let mut stack = vec![0u8; 64 * 1024];
    let cb = Box::new(|| {
        // SAFETY: in the cloned child: dup2 and execve on data prepared
        // before the clone; _exit if exec fails.
        unsafe {
            libc::dup2(wfd, 3);
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    });
    // SAFETY: the child only calls dup2/execve/_exit on data prepared
    // before the clone, on its own stack; without CLONE_VM it has a copy of
    // this address space, with CLONE_VM this thread is suspended
    // (CLONE_VFORK) until the child has exec'd, so `stack` and `argv` stay
    // valid for it.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }.expect("clone");
    drop(w);
    let line = read_ready(r);
    let el = t.elapsed();
    assert!(line.starts_with(b"READY"), "floor: no READY from the workload");
    waitpid(pid, None).expect("waitpid");
    el
}

const VFORK: CloneFlags = CloneFlags::CLONE_VM.union(CloneFlags::CLONE_VFORK);

/// The container platform in `profile`, where it can run here.
fn container(profile: Profile) -> Option<ContainerPlatform> {
    match ContainerPlatform::new(ContainerOptions { profile, ..ContainerOptions::default() }) {
        Ok(c) => match c.available() {
            Ok(()) => Some(c),
            Err(why) => {
                eprintln!("launch/container-{profile} skipped: {why}");
                None
            }
        },
        Err(e) => {
            eprintln!("launch/container-{profile} skipped: {e}");
            None
        }
    }
}

/// An OCI bundle of the container rootfs for runc, removed on drop.
struct Bundle {
    dir: tempfile::TempDir,
}

fn runc_bundle(runc: &std::path::Path) -> Bundle {
    let dir = tempfile::Builder::new().prefix("versus-bench-oci-").tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    for d in ["", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    versus::workload::write_executable(&rootfs.join("init"), versus::workload::GUEST_BINARY).expect("write init");
    let st = Command::new(runc).arg("spec").current_dir(dir.path()).status().expect("runc spec");
    assert!(st.success(), "runc spec failed");
    let p = dir.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("config")).expect("json");
    cfg["process"]["args"] = serde_json::json!(["/init", "--fd", "3", "ready"]);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["root"]["readonly"] = serde_json::json!(true);
    std::fs::write(&p, serde_json::to_string(&cfg).expect("json")).expect("write config");
    Bundle { dir }
}

fn runc_once(runc: &std::path::Path, bundle: &Bundle, n: u64) -> Duration {
    let id = format!("versus-bench-{}-{n}", std::process::id());
    let t = Instant::now();
    let (r, w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(runc);
    cmd.args(["run", "--preserve-fds", "1", "--bundle"]).arg(bundle.dir.path()).arg(&id);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
    // SAFETY: dup2 only, in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("runc run");
    drop(cmd);
    drop(w);
    let line = read_ready(r);
    let el = t.elapsed();
    assert!(line.starts_with(b"READY"), "runc: no READY from the workload");
    let _ = child.wait();
    let _ = Command::new(runc).args(["delete", "--force", &id]).stderr(Stdio::null()).status();
    el
}

fn launch(c: &mut Criterion) {
    let mut g = c.benchmark_group("launch");
    g.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

    let guest = EmbeddedProgram::guest().expect("write the workload program");
    let guest_c = CString::new(guest.path().as_os_str().as_encoded_bytes()).expect("path");
    g.bench_function("floor-spawn", |b| b.iter_custom(|iters| (0..iters).map(|_| floor_once(&guest_c, VFORK)).sum()));
    g.bench_function("floor", |b| b.iter_custom(|iters| (0..iters).map(|_| floor_once(&guest_c, namespaces())).sum()));
    g.bench_function("floor-vm", |b| b.iter_custom(|iters| (0..iters).map(|_| floor_once(&guest_c, namespaces() | VFORK)).sum()));

    let process = ProcessPlatform::new().expect("process platform");
    g.bench_function("process", |b| b.iter_custom(|iters| time_platform(&process, iters)));

    for profile in [Profile::Default, Profile::Privileged] {
        if let Some(c) = container(profile) {
            g.bench_function(format!("container-{profile}"), |b| b.iter_custom(|iters| time_platform(&c, iters)));
        }
    }

    match versus::host::which("runc") {
        Some(runc) => {
            let bundle = runc_bundle(&runc);
            let mut n = 0u64;
            g.bench_function("runc", |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            n += 1;
                            runc_once(&runc, &bundle, n)
                        })
                        .sum()
                })
            });
        }
        None => eprintln!("launch/runc skipped: runc is not installed (apt-get install runc)"),
    }
    g.finish();
}

/// Median of launch durations, in ms.
fn median_ms(v: &[Duration]) -> f64 {
    versus::stats::median(&v.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>())
}

/// The goals are about medians; criterion reports a mean per iteration.
/// This pass measures the medians in blocks that take turns (floor-spawn,
/// process, floor, floor-vm, container default, container privileged,
/// runc), so slow drift of the shared host hits every kind alike. A launch
/// leaves kernel work behind (network namespace and cgroup clean-up run
/// asynchronously), and it lands on the next launch; the first launches of
/// each block are run but not kept, so every kept sample follows a launch
/// of its own kind, as in criterion's back-to-back runs.
/// `VERSUS_BENCH_BLOCKS` sets the blocks (default 16 of 25 launches, runc
/// 4). Criterion's filter does not apply to it: `cargo bench --bench launch
/// -- medians` runs this pass alone.
fn blocked_medians(_: &mut Criterion) {
    const BLOCK: usize = 25;
    const RUNC_BLOCK: usize = 4;
    const WASHOUT: usize = 2;
    let quick = std::env::args().any(|a| a == "--test"); // `cargo test --benches`: just prove it runs
    let blocks: usize = match quick {
        true => 1,
        false => std::env::var("VERSUS_BENCH_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
    };
    let guest = EmbeddedProgram::guest().expect("write the workload program");
    let guest_c = CString::new(guest.path().as_os_str().as_encoded_bytes()).expect("path");
    let process = ProcessPlatform::new().expect("process platform");
    let hardened = container(Profile::Default);
    let privileged = container(Profile::Privileged);
    let runc = versus::host::which("runc").map(|r| (runc_bundle(&r), r));
    let mut spawn_floor = Vec::new();
    let (mut floor, mut floor_vm, mut proc_, mut cont, mut cont_priv, mut runc_s) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut proc_phases, mut cont_phases, mut priv_phases) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 1_000_000u64;
    for _ in 0..blocks {
        let block = |out: &mut Vec<Duration>, len: usize, once: &mut dyn FnMut() -> Duration| {
            for i in 0..len {
                let d = once();
                if i >= WASHOUT {
                    out.push(d);
                }
            }
        };
        block(&mut spawn_floor, BLOCK, &mut || floor_once(&guest_c, VFORK));
        block(&mut proc_, BLOCK, &mut || launch_with_phases(&process, &mut proc_phases));
        block(&mut floor, BLOCK, &mut || floor_once(&guest_c, namespaces()));
        block(&mut floor_vm, BLOCK, &mut || floor_once(&guest_c, namespaces() | VFORK));
        if let Some(c) = &hardened {
            block(&mut cont, BLOCK, &mut || launch_with_phases(c, &mut cont_phases));
        }
        if let Some(c) = &privileged {
            block(&mut cont_priv, BLOCK, &mut || launch_with_phases(c, &mut priv_phases));
        }
        if let Some((bundle, r)) = &runc {
            block(&mut runc_s, RUNC_BLOCK, &mut || {
                n += 1;
                runc_once(r, bundle, n)
            });
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "launch/medians ({blocks} blocks per kind; {} kept launches each, runc {}; load average {})",
        floor.len(),
        runc_s.len(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let fs = median_ms(&spawn_floor);
    let p = median_ms(&proc_);
    let f = median_ms(&floor);
    let fv = median_ms(&floor_vm);
    println!("  floor-spawn          {fs:8.3} ms   (posix_spawn-style: vfork-like clone + exec, no namespaces)");
    println!("  process              {p:8.3} ms   {:.2}x floor-spawn (goal <= 1.20x)", p / fs);
    println!("  floor                {f:8.3} ms   (namespaces, fork-like clone)");
    println!("  floor-vm             {fv:8.3} ms   (namespaces, vfork-like clone)");
    let mut reference = None;
    for (name, v) in [("container default", &cont), ("container privileged", &cont_priv)] {
        if v.is_empty() {
            println!("  {name:<20} skipped (cannot run on this host)");
            continue;
        }
        let c = median_ms(v);
        let goal = if name == "container default" { " (goal <= 1.30x)" } else { "" };
        println!("  {name:<20} {c:8.3} ms   {:.2}x floor{goal}, {:.2}x floor-vm", c / f, c / fv);
        reference.get_or_insert(c);
    }
    // Where the time goes: each launch's boot phases (they add up to its
    // boot, launch start to READY, the interval timed above).
    println!("  median phases [ms]:");
    for (name, ph) in [("process", &proc_phases), ("container default", &cont_phases), ("container privileged", &priv_phases)] {
        if !ph.is_empty() {
            println!("    {name:<20} {}", phase_medians(ph));
        }
    }
    if let (false, Some(c)) = (runc_s.is_empty(), reference) {
        let r = median_ms(&runc_s);
        println!("  runc                 {r:8.3} ms   {:.1}x container default (goal >= 15x)", r / c);
    }
}

criterion_group!(benches, launch, blocked_medians);
criterion_main!(benches);
