//! Running the probe matrix on a platform: listeners for the reachability
//! probes, the probe workload, the platform's own extra probes (a VMM's),
//! and the judging of what came back.

use std::time::Duration;

use super::host_facts::HostFacts;
use super::judge::{classify, Context};
use crate::error::{LaunchError, Result};
use crate::model::{ProbeLine, ProbeRow};
use crate::platform::{LaunchSpec, Platform};
use crate::workload::{GuestMode, WorkloadSpec};

/// A listener versus opens for the reachability probes; closed on drop.
struct Listeners {
    port: u16,
    _tcp: std::net::TcpListener,
    _unix: std::os::unix::net::UnixListener,
}

impl Listeners {
    fn open() -> Result<Listeners> {
        use std::os::linux::net::SocketAddrExt;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| LaunchError::io("listening on 127.0.0.1 for the network probes", e))?;
        let port = tcp.local_addr().map_err(|e| LaunchError::io("reading the probe listener's port", e))?.port();
        let name = format!("versus-probe-{port}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| LaunchError::io("naming the abstract probe socket", e))?;
        let unix =
            std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| LaunchError::io(format!("listening on the abstract unix socket @{name}"), e))?;
        Ok(Listeners { port, _tcp: tcp, _unix: unix })
    }
}

/// Runs the probe matrix on `platform` and classifies it. The workload runs
/// the probes and exits; everything versus opened for them (listeners) is
/// closed on every path. `timeout` bounds the launch and the run.
pub fn run_probes(platform: &dyn Platform, timeout: Duration) -> Result<Vec<ProbeRow>> {
    run_probes_with(platform, timeout, &HostFacts::collect())
}

/// [`run_probes`] against host facts read once by the caller (a run probes
/// several platforms against the same host).
pub fn run_probes_with(platform: &dyn Platform, timeout: Duration, host: &HostFacts) -> Result<Vec<ProbeRow>> {
    let listeners = Listeners::open()?;
    let mut spec = LaunchSpec::new(WorkloadSpec::mode(GuestMode::Probe { port: listeners.port }));
    spec.timeout = timeout;
    let mut lines = run_probe_workload(platform, &spec)?;
    lines.extend(platform.extra_probes(timeout));
    let after = nix::sys::utsname::uname().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default();
    let ctx = Context { port: listeners.port, hostname_changed_to: (after != host.hostname && !host.hostname.is_empty()).then_some(after) };
    drop(listeners);
    Ok(classify(platform.name(), platform.info().guest, &lines, host, &ctx))
}

/// Launches the probe workload and collects its PROBE lines.
pub fn run_probe_workload(platform: &dyn Platform, spec: &LaunchSpec) -> Result<Vec<ProbeLine>> {
    let mut inst = platform.launch(spec)?;
    let finished = inst.finish();
    let stopped = inst.stop();
    let finished = finished?;
    stopped?;
    Ok(finished.probes)
}
