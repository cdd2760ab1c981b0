//! `cargo bench --bench vm_launch`: launch-to-ready latency of the
//! kernel-less guest against the raw KVM floor, in the criterion group
//! `launch`:
//! - `vm-bare-inproc`: the platform's launch with the VMM inside this
//!   process (KVM_CREATE_VM to the guest's READY host call), the VM torn
//!   down outside the timed part;
//! - `vm-bare`: the same guest in a `versus-vmm` process of its own (spawn
//!   included), as the `vm-bare` row of a run measures it;
//! - `kvm-floor`: KVM_CREATE_VM + guest memory (same size) + one vCPU in
//!   long mode at CPL3 + first entry to the first port-I/O exit, nothing
//!   else (`versus_vmm::tiny::raw_floor_ns`).
//!
//! Before criterion runs, they are sampled interleaved (so that they see the
//! same host state) and the medians and ratios are printed: the goal is a
//! `vm-bare-inproc` median within 1.5x of the floor.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use versus::platform::vm::bare::{VmBareInprocPlatform, VmBarePlatform};
use versus::platform::{LaunchSpec, Platform};
use versus::stats::{median, percentile_sorted};
use versus_vmm::tiny::raw_floor_ns;

fn ready_spec() -> LaunchSpec {
    LaunchSpec::new("ready".parse().expect("`ready` is a workload"))
}

fn bare_once(p: &dyn Platform, spec: &LaunchSpec) -> Duration {
    let t = Instant::now();
    let inst = p.launch(spec).expect("vm-bare launch");
    let el = t.elapsed();
    inst.stop().expect("stop");
    el
}

/// Interleaved samples of both, medians and ratio on stdout.
fn interleaved_summary(n: usize) {
    let inproc = VmBareInprocPlatform::new();
    let process = VmBarePlatform::new().expect("vm-bare");
    let spec = ready_spec();
    for _ in 0..20 {
        bare_once(&inproc, &spec);
        bare_once(&process, &spec);
        raw_floor_ns().expect("floor");
    }
    let (mut bare, mut proc_, mut floor) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        bare.push(bare_once(&inproc, &spec).as_secs_f64() * 1e3);
        proc_.push(bare_once(&process, &spec).as_secs_f64() * 1e3);
        floor.push(raw_floor_ns().expect("floor") as f64 / 1e6);
    }
    let (b, p, f) = (median(&bare), median(&proc_), median(&floor));
    println!(
        "vm_launch summary ({n} interleaved samples each): vm-bare-inproc median {b:.4} ms, vm-bare (VMM process) median {p:.4} ms, kvm-floor median {f:.4} ms; vm-bare-inproc/floor {:.3} (goal <= 1.5), vm-bare/floor {:.3}",
        b / f,
        p / f
    );
}

/// The `cpu` workload's own timing (elapsed_ns) in `process` and `vm-bare`,
/// interleaved; medians and ratio on stdout (goal: within 5%).
fn cpu_summary(n: usize) {
    use versus::platform::process::ProcessPlatform;
    let spec = LaunchSpec::new("cpu:200000".parse().expect("workload"));
    let bare = VmBareInprocPlatform::new();
    let process = ProcessPlatform::new().expect("process platform");
    let run = |p: &dyn Platform| -> (f64, String) {
        let mut inst = p.launch(&spec).expect("launch");
        let fin = inst.finish().expect("finish");
        inst.stop().expect("stop");
        let r = &fin.results[0];
        (r.elapsed_ns().expect("elapsed_ns") as f64 / 1e6, r.checksum().unwrap_or("").to_string())
    };
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (tb, cb) = run(&bare);
        let (tp, cp) = run(&process);
        assert_eq!(cb, cp, "cpu checksums differ between vm-bare and process");
        b.push(tb);
        p.push(tp);
    }
    // Each pair ran back to back, so its ratio sees one host state: the
    // median of the pair ratios is the paired estimate of the overhead.
    let mut ratios: Vec<f64> = b.iter().zip(&p).map(|(tb, tp)| tb / tp).collect();
    ratios.sort_by(f64::total_cmp);
    let paired = percentile_sorted(&ratios, 50.0);
    let (q1, q3) = (ratios[ratios.len() / 4], ratios[ratios.len() * 3 / 4]);
    let (mb, mp) = (median(&b), median(&p));
    // The minimum is the least disturbed run on a busy host.
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (nb, np) = (min(&b), min(&p));
    println!(
        "vm_launch cpu:200000 ({n} interleaved pairs): vm-bare median {mb:.3} ms, process median {mp:.3} ms, ratio of medians {:.4}; median of pair ratios {paired:.4} (quartiles {q1:.4}..{q3:.4}); minima {nb:.3} / {np:.3} ms = {:.4} (goal within 5%)",
        mb / mp,
        nb / np
    );
}

fn launch(c: &mut Criterion) {
    if let Err(why) = versus_vmm::vm::available() {
        eprintln!("vm_launch: SKIPPED, no usable KVM: {why}");
        return;
    }
    interleaved_summary(300);
    cpu_summary(std::env::var("VERSUS_BENCH_CPU_PAIRS").ok().and_then(|v| v.parse().ok()).unwrap_or(40));
    let mut g = c.benchmark_group("launch");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    let inproc = VmBareInprocPlatform::new();
    let process = VmBarePlatform::new().expect("vm-bare");
    let spec = ready_spec();
    g.bench_function("vm-bare-inproc", |b| b.iter_custom(|iters| (0..iters).map(|_| bare_once(&inproc, &spec)).sum()));
    g.bench_function("vm-bare", |b| b.iter_custom(|iters| (0..iters).map(|_| bare_once(&process, &spec)).sum()));
    g.bench_function("kvm-floor", |b| b.iter_custom(|iters| (0..iters).map(|_| Duration::from_nanos(raw_floor_ns().expect("floor"))).sum()));
    g.finish();
}

criterion_group!(benches, launch);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
