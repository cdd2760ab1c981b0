//! The OCI bundle of one instance: a `config.json` generated with the
//! `oci-spec` crate from its default spec (the defaults `runc spec` writes:
//! capabilities AUDIT_WRITE, KILL and NET_BIND_SERVICE, no seccomp profile,
//! masked and read-only paths, the standard mounts, new pid, network, ipc,
//! uts, mount and cgroup namespaces), pointed at the shared read-only
//! rootfs, with the instance's limits, cgroup and workload; and the log
//! file the runtime and the workload write their errors to. The bundle
//! directory is removed on drop.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, RootBuilder, Spec};

use crate::platform::Limits;

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("building the OCI config.json: {0} (a bug in versus: please report it with `versus env`)")]
    Spec(#[from] oci_spec::OciSpecError),
    #[error("writing the OCI bundle in {dir}: {source}; set TMPDIR to a writable directory")]
    Write { dir: PathBuf, source: std::io::Error },
}

/// What goes into one instance's config.json.
#[derive(Debug, Clone)]
pub struct BundleConfig<'a> {
    /// The shared rootfs (absolute), mounted read-only.
    pub rootfs: &'a Path,
    /// The container's hostname (its id).
    pub hostname: &'a str,
    /// The cgroup path, relative to each hierarchy's root (`/versus-...`).
    pub cgroups_path: &'a str,
    /// The workload program and its arguments (`/init --fd 3 cpu 1000`).
    pub args: Vec<String>,
    pub limits: Limits,
    /// Set a memory+swap limit equal to the memory limit (no swap), where
    /// the host accounts swap (v2, or v1 with memory.memsw files).
    pub no_swap: bool,
}

/// The CPU period every quota is written against, as versus' container does.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The config.json of `c`: oci-spec's default spec with the rootfs, the
/// process, the hostname, the cgroup and the limits set.
pub fn spec(c: &BundleConfig<'_>) -> Result<Spec, oci_spec::OciSpecError> {
    let mut spec = Spec::default();
    spec.set_hostname(Some(c.hostname.to_string()));
    spec.set_root(Some(RootBuilder::default().path(c.rootfs).readonly(true).build()?));
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_args(Some(c.args.clone()));
        p.set_terminal(Some(false));
        p.set_cwd(PathBuf::from("/"));
    }
    let limit = c.limits.memory_bytes.min(i64::MAX as u64) as i64;
    let mut memory = LinuxMemoryBuilder::default().limit(limit);
    if c.no_swap {
        memory = memory.swap(limit);
    }
    let quota = (c.limits.cpus * CPU_PERIOD_US as f64).round().max(1000.0) as i64;
    let resources = LinuxResourcesBuilder::default()
        .memory(memory.build()?)
        .pids(LinuxPidsBuilder::default().limit(c.limits.pids.min(i64::MAX as u64) as i64).build()?)
        .cpu(LinuxCpuBuilder::default().quota(quota).period(CPU_PERIOD_US).build()?)
        .build()?;
    if let Some(l) = spec.linux_mut().as_mut() {
        l.set_cgroups_path(Some(PathBuf::from(c.cgroups_path)));
        // Keep the default spec's device rules (none: the runtime's own
        // defaults apply) and set the limits.
        let devices = l.resources().as_ref().and_then(|r| r.devices().clone());
        let mut r = resources;
        r.set_devices(devices);
        l.set_resources(Some(r));
    }
    Ok(spec)
}

/// A bundle directory: `config.json` and `log` (the runtime's and the
/// workload's standard error). Removed on drop.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// Writes the bundle of `c` in a fresh `versus-oci-*` temp dir.
    pub fn write(c: &BundleConfig<'_>) -> Result<Bundle, BundleError> {
        let spec = spec(c)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("versus-oci-{}-", c.hostname))
            .tempdir()
            .map_err(|source| BundleError::Write { dir: std::env::temp_dir(), source })?;
        spec.save(dir.path().join("config.json")).map_err(|e| match e {
            oci_spec::OciSpecError::Io(source) => BundleError::Write { dir: dir.path().to_path_buf(), source },
            other => BundleError::Spec(other),
        })?;
        Ok(Bundle { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where the runtime's and the workload's standard error go.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The end of the log (bounded), for errors.
    pub fn log_text(&self) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(16 * 1024)..];
        String::from_utf8_lossy(tail).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BundleConfig<'static> {
        BundleConfig {
            rootfs: Path::new("/tmp/img/rootfs"),
            hostname: "versus-1-runc-0",
            cgroups_path: "/versus-1-runc-0",
            args: vec!["/init".into(), "--fd".into(), "3".into(), "ready".into()],
            limits: Limits { memory_bytes: 64 << 20, pids: 17, cpus: 0.25 },
            no_swap: true,
        }
    }

    #[test]
    fn config_json_carries_rootfs_limits_cgroup_and_workload() {
        let b = Bundle::write(&config()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(b.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(v["root"]["path"], "/tmp/img/rootfs");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["args"], serde_json::json!(["/init", "--fd", "3", "ready"]));
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(v["hostname"], "versus-1-runc-0");
        let l = &v["linux"];
        assert_eq!(l["cgroupsPath"], "/versus-1-runc-0");
        assert_eq!(l["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(l["resources"]["memory"]["swap"], 64 << 20);
        assert_eq!(l["resources"]["pids"]["limit"], 17);
        assert_eq!(l["resources"]["cpu"]["quota"], 25_000);
        assert_eq!(l["resources"]["cpu"]["period"], 100_000);
        // The runtime's defaults: no seccomp profile, the three default
        // capabilities, a pid namespace.
        assert!(l.get("seccomp").is_none());
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 3, "{caps:?}");
        assert!(l["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "pid"));
        let p = b.path().to_path_buf();
        drop(b);
        assert!(!p.exists(), "the bundle is removed on drop");
    }

    #[test]
    fn swap_is_left_alone_without_swap_accounting() {
        let mut c = config();
        c.no_swap = false;
        let s = spec(&c).unwrap();
        let mem = s.linux().as_ref().and_then(|l| l.resources().as_ref()).and_then(|r| *r.memory()).unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), None));
    }
}
