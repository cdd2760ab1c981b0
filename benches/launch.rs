//! `cargo bench --bench launch`: launch-to-ready latency of the `process`
//! and `container` platforms, against two references measured in the same
//! run:
//! - `floor`: the least a namespace container can cost on this host: a raw
//!   clone(NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET) + execve of the same workload
//!   program + its READY on a pipe; no cgroup, no rootfs, no pivot_root;
//! - `runc`: `runc run` of an OCI bundle of the same rootfs, where runc is
//!   installed (skipped with a message otherwise).
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
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::{LaunchSpec, Platform};
use versus::workload::GuestProgram;

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

/// The raw floor: clone into new namespaces, exec the workload, read READY.
fn floor_once(guest: &CString) -> Duration {
    let argv = [guest.as_ptr(), c"--fd".as_ptr(), c"3".as_ptr(), c"ready".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let t = Instant::now();
    let (r, w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
    let wfd = w.as_raw_fd();
    let mut stack = vec![0u8; 64 * 1024];
    let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET;
    let cb = Box::new(|| {
        // SAFETY: in the cloned child: dup2 and execve on data prepared
        // before the clone; _exit if exec fails.
        unsafe {
            libc::dup2(wfd, 3);
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    });
    // SAFETY: no CLONE_VM: the child runs on a copy of this address space
    // and only calls dup2/execve/_exit.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }.expect("clone");
    drop(w);
    let line = read_ready(r);
    let el = t.elapsed();
    assert!(line.starts_with(b"READY"), "floor: no READY from the workload");
    waitpid(pid, None).expect("waitpid");
    el
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

    let guest = GuestProgram::materialize().expect("write the workload program");
    let guest_c = CString::new(guest.path().as_os_str().as_encoded_bytes()).expect("path");
    g.bench_function("floor", |b| b.iter_custom(|iters| (0..iters).map(|_| floor_once(&guest_c)).sum()));

    let process = ProcessPlatform::new().expect("process platform");
    g.bench_function("process", |b| b.iter_custom(|iters| time_platform(&process, iters)));

    match ContainerPlatform::new(ContainerOptions::default()) {
        Ok(container) if container.available().is_ok() => {
            g.bench_function("container", |b| b.iter_custom(|iters| time_platform(&container, iters)));
        }
        Ok(container) => eprintln!("launch/container skipped: {}", container.available().unwrap_err()),
        Err(e) => eprintln!("launch/container skipped: {e}"),
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

criterion_group!(benches, launch);
criterion_main!(benches);
