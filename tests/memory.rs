//! Memory per instance against known allocations, on real process and
//! container instances (root or user namespaces needed for the container).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use versus::experiment::density::{measure_density, Basis, DensityOptions, KsmPass, Stop};
use versus::experiment::memory::{self, add_overhead_rows, measure_memory, Attribution};
use versus::model::Metric;
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::{LaunchSpec, Platform, PlatformInfo, Unavailable};

const MIB: f64 = 1024.0 * 1024.0;

fn spec(w: &str) -> LaunchSpec {
    LaunchSpec::new(w.parse().unwrap())
}

fn median(p: &dyn Platform, w: &str, metric: Metric) -> f64 {
    let rows = measure_memory(p, &spec(w), 3).unwrap_or_else(|e| panic!("{e:#}"));
    let v: Vec<f64> = rows.iter().filter(|r| r.metric == metric).map(|r| r.value).collect();
    assert_eq!(v.len(), 3, "{metric} rows for {w} on {}", p.name());
    versus::stats::median(&v)
}

/// Children of this test's thread (tests run in parallel threads; each
/// forks its instances from its own thread).
fn my_children() -> Vec<String> {
    let c = std::fs::read_to_string("/proc/thread-self/children").unwrap_or_default();
    c.split_whitespace().map(String::from).collect()
}

fn check_platform(p: &dyn Platform) -> (f64, f64) {
    let base = median(p, "idle:0", Metric::MemHost);
    let full = median(p, "idle:64", Metric::MemHost);
    let held = full - base;
    eprintln!("{}: mem.host idle:0 = {:.2} MiB, idle:64 = {:.2} MiB, difference {:.2} MiB", p.name(), base / MIB, full / MIB, held / MIB);
    // 64 MiB plus the platform's own overhead (its idle:0 figure), within 10%.
    assert!((held - 64.0 * MIB).abs() <= 6.4 * MIB, "{}: idle:64 holds {:.2} MiB more than idle:0; expected 64 MiB +-10%", p.name(), held / MIB);
    (base, full)
}

#[test]
fn process_holds_what_it_allocates_and_has_no_overhead() {
    let p = ProcessPlatform::new().unwrap();
    let (base, full) = check_platform(&p);
    // A static program doing nothing costs well under 2 MiB of PSS.
    assert!(base < 2.0 * MIB, "process idle:0 mem.host {:.2} MiB", base / MIB);
    assert!((full - 64.0 * MIB).abs() <= 6.4 * MIB, "process idle:64 mem.host {:.2} MiB", full / MIB);
    // One reading is attributed to the instance's own pid, not to us.
    let r = memory::measure_once(&p, &spec("idle:8")).unwrap();
    assert_eq!(r.attribution, Attribution::Pids);
    assert!(!r.pids.contains(&(std::process::id() as i32)));
    // mem.overhead of the process against itself is near zero.
    let mut rows = measure_memory(&p, &spec("idle:64"), 3).unwrap();
    assert_eq!(add_overhead_rows(&mut rows), 3);
    for o in rows.iter().filter(|r| r.metric == Metric::MemOverhead) {
        assert!(o.value.abs() < 1.0 * MIB, "process overhead {:.3} MiB", o.value / MIB);
    }
    assert!(my_children().is_empty(), "instances left running: {:?}", my_children());
}

#[test]
fn container_holds_what_it_allocates_and_its_cgroup_is_charged() {
    let c = match ContainerPlatform::new(ContainerOptions::default()) {
        Ok(c) => c,
        Err(e) => panic!("containers must run on this host (root or user namespaces): {e}"),
    };
    if let Err(why) = c.available() {
        eprintln!("SKIPPED: container platform not available here: {why}");
        return;
    }
    let (_base, full) = check_platform(&c);
    let cg = median(&c, "idle:64", Metric::MemCgroup);
    eprintln!("container: mem.cgroup idle:64 = {:.2} MiB", cg / MIB);
    assert!(cg >= 64.0 * MIB, "the cgroup was charged {:.2} MiB for a 64 MiB workload", cg / MIB);
    // And the overhead over the process platform is computed per row.
    let p = ProcessPlatform::new().unwrap();
    let mut rows = measure_memory(&p, &spec("idle:64"), 2).unwrap();
    rows.extend(measure_memory(&c, &spec("idle:64"), 2).unwrap());
    add_overhead_rows(&mut rows);
    let o: Vec<f64> = rows.iter().filter(|r| r.metric == Metric::MemOverhead && r.platform == "container").map(|r| r.value).collect();
    assert_eq!(o.len(), 2);
    eprintln!("container: mem.overhead {:?} MiB (mem.host {:.2} MiB)", o.iter().map(|v| v / MIB).collect::<Vec<_>>(), full / MIB);
    assert!(my_children().is_empty(), "instances left running: {:?}", my_children());
}

#[test]
fn density_ramp_stops_at_a_tiny_budget_and_tears_down() {
    let p = ProcessPlatform::new().unwrap();
    // Room for two instances holding 16 MiB each, not three.
    let opts = DensityOptions { budget_bytes: 40 << 20, floor_bytes: 0, max_instances: 100, time_budget: Duration::from_secs(120), ksm: None };
    let r = measure_density(&p, &spec("idle:16"), &opts).unwrap();
    let c = &r.off;
    assert_eq!(c.points.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2], "{}", c.stop);
    assert!(matches!(c.stop, Stop::Budget { .. }), "{}", c.stop);
    for pt in &c.points {
        let pss = pt.held.pss as f64 / pt.n as f64;
        eprintln!("density N={} PSS {:.2} MiB/instance, MemAvailable drop {:.2} MiB", pt.n, pss / MIB, pt.mem_drop() / MIB);
        assert!((pss - 16.0 * MIB).abs() < 1.6 * MIB, "PSS per instance {:.2} MiB at N={}", pss / MIB, pt.n);
        assert!(pt.held_bytes() <= opts.budget_bytes, "never past the budget");
    }
    // Two points give a line through them: 16 MiB per instance.
    let fit = c.fits().into_iter().find(|(b, _)| *b == Basis::Pss).map(|x| x.1).unwrap();
    assert!((fit.slope - 16.0 * MIB).abs() < 1.6 * MIB, "{fit:?}");
    assert!(my_children().is_empty(), "instances left running: {:?}", my_children());
    // A floor above MemAvailable stops the ramp before any launch.
    let high = versus::experiment::density::mem_available().unwrap() + (1 << 30);
    let r = measure_density(&p, &spec("idle:16"), &DensityOptions { floor_bytes: high, budget_bytes: u64::MAX, ..opts }).unwrap();
    assert!(r.off.points.is_empty() && matches!(r.off.stop, Stop::Floor { .. }), "{}", r.off.stop);
}

#[test]
fn density_with_ksm_merges_and_restores_ksm() {
    if !versus::measure::ksm::available() {
        eprintln!("SKIPPED: this kernel has no KSM (/sys/kernel/mm/ksm)");
        return;
    }
    let read = |f: &str| std::fs::read_to_string(format!("/sys/kernel/mm/ksm/{f}")).unwrap();
    let before = [read("run"), read("pages_to_scan"), read("sleep_millisecs")];
    let p = ProcessPlatform::new().unwrap();
    let opts = DensityOptions {
        budget_bytes: 200 << 20,
        floor_bytes: 0,
        max_instances: 4,
        time_budget: Duration::from_secs(120),
        ksm: Some(KsmPass { settle_limit: Duration::from_secs(30), ..KsmPass::default() }),
    };
    let r = measure_density(&p, &spec("idle:16"), &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!([read("run"), read("pages_to_scan"), read("sleep_millisecs")], before, "KSM's settings restored");
    let on = r.on.expect("a KSM pass");
    assert_eq!(on.points.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2, 4], "read at powers of two: {}", on.stop);
    let last = on.points.last().unwrap();
    let k = last.ksm.unwrap();
    eprintln!("KSM at N=4: {k:?}; PSS {:.2} MiB in all, {:?}", last.held.pss as f64 / MIB, on.notes);
    // The idle workload's pages differ in one byte only: they merge.
    assert!(k.pages_sharing > 1000, "{k:?}");
    let off = r.off.points.iter().find(|p| p.n == 4).unwrap();
    assert!(last.held.pss < off.held.pss / 2, "merged instances hold less: {} vs {}", last.held.pss, off.held.pss);
    assert!(my_children().is_empty(), "instances left running: {:?}", my_children());
}

#[test]
fn density_tears_down_on_panic() {
    // A platform that panics on its fourth launch: the first three
    // instances must still be stopped.
    struct Flaky(ProcessPlatform, AtomicU32);
    impl Platform for Flaky {
        fn info(&self) -> &'static PlatformInfo {
            self.0.info()
        }
        fn available(&self) -> Result<(), Unavailable> {
            Ok(())
        }
        fn launch(&self, s: &LaunchSpec) -> versus::error::Result<Box<dyn versus::platform::Instance>> {
            if self.1.fetch_add(1, Ordering::SeqCst) + 1 == 4 {
                panic!("injected launch panic");
            }
            self.0.launch(s)
        }
    }
    let f = Flaky(ProcessPlatform::new().unwrap(), AtomicU32::new(0));
    let opts = DensityOptions { budget_bytes: 1 << 30, floor_bytes: 0, max_instances: 8, time_budget: Duration::from_secs(120), ksm: None };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| measure_density(&f, &spec("idle:1"), &opts)));
    assert!(r.is_err(), "the injected panic must propagate");
    assert!(my_children().is_empty(), "instances left running after a panic: {:?}", my_children());
}
