//! Memory per instance against known allocations, on real process and
//! container instances (root or user namespaces needed for the container).

use versus::experiment::density::{measure_density, DensityOptions};
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
fn density_curve_is_bounded_and_tears_down() {
    let p = ProcessPlatform::new().unwrap();
    let opts = DensityOptions { max_instances: 4, ..DensityOptions::default() };
    let r = measure_density(&p, &spec("idle:32"), &opts).unwrap();
    assert_eq!(r.points.iter().map(|p| p.n).collect::<Vec<_>>(), vec![1, 2, 4], "stopped early: {:?}", r.stopped_early);
    for pt in &r.points {
        let pss = pt.pss_total as f64 / pt.n as f64;
        eprintln!(
            "density N={} MemAvailable drop {:.2} MiB/instance, PSS {:.2} MiB/instance, {:.1} launches/s",
            pt.n,
            pt.mem_per_instance() / MIB,
            pss / MIB,
            pt.launch_rate()
        );
        assert!(pt.launch_rate() > 0.0);
        // Every instance of the step was running and holding its 32 MiB.
        assert!((pss - 32.0 * MIB).abs() < 3.2 * MIB, "PSS per instance {:.2} MiB at N={}", pss / MIB, pt.n);
    }
    assert!(my_children().is_empty(), "instances left running: {:?}", my_children());
    // A margin larger than the host's memory stops the curve before any launch.
    let tight = DensityOptions { safety_margin_bytes: u64::MAX / 4, ..opts };
    let r = measure_density(&p, &spec("idle:32"), &tight).unwrap();
    assert!(r.points.is_empty());
    assert!(r.stopped_early.unwrap().contains("safety margin"));
}

#[test]
fn density_tears_down_on_panic() {
    // A platform that panics on its third launch: the first two instances
    // must still be stopped.
    struct Flaky(ProcessPlatform, std::cell::Cell<u32>);
    impl Platform for Flaky {
        fn info(&self) -> &'static PlatformInfo {
            self.0.info()
        }
        fn available(&self) -> Result<(), Unavailable> {
            Ok(())
        }
        fn launch(&self, s: &LaunchSpec) -> versus::error::Result<Box<dyn versus::platform::Instance>> {
            self.1.set(self.1.get() + 1);
            if self.1.get() == 4 {
                panic!("injected launch panic");
            }
            self.0.launch(s)
        }
    }
    let f = Flaky(ProcessPlatform::new().unwrap(), std::cell::Cell::new(0));
    let opts = DensityOptions { max_instances: 4, ..DensityOptions::default() };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| measure_density(&f, &spec("idle:1"), &opts)));
    assert!(r.is_err(), "the injected panic must propagate");
    assert!(my_children().is_empty(), "instances left running after a panic: {:?}", my_children());
}
