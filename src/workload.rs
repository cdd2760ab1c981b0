//! Workload specs shared by all platforms, the results they report, and the
//! embedded workload program (`harness/guest`) that processes and containers
//! execute.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{RwLock, RwLockReadGuard};

use versus_workload::protocol::Fields;
pub use versus_workload::Workload;

/// The static workload program, built by build.rs from `harness/guest`.
pub static GUEST_BINARY: &[u8] = include_bytes!(env!("VERSUS_GUEST_BIN"));

/// What a platform launches: a benchmark workload given on the command
/// line (`cpu`, `cpu:50000`, `idle:64`), which every platform runs the same
/// way, or one of the workload program's own modes (`probe`,
/// `stress-cpu:2000`), which a platform runs or refuses, never replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadSpec {
    /// A benchmark workload.
    Bench(Workload),
    /// A mode of the workload program that is not a benchmark workload.
    Mode(GuestMode),
}

/// What a noisy neighbour stresses (`harness/guest/src/probe.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StressKind {
    /// SHA-256 on every CPU the sandbox may use.
    Cpu,
    /// Copies between two 16 MiB halves of a buffer on every CPU.
    Mem,
    /// A fork bomb: forks until the pids limit (or `max_procs`) refuses.
    Fork,
}

impl StressKind {
    pub const ALL: [StressKind; 3] = [StressKind::Cpu, StressKind::Mem, StressKind::Fork];
    /// `stress-cpu`, `stress-mem`, `stress-fork`: the mode's name.
    pub fn mode_name(self) -> &'static str {
        match self {
            StressKind::Cpu => "stress-cpu",
            StressKind::Mem => "stress-mem",
            StressKind::Fork => "stress-fork",
        }
    }
    /// `cpu`, `mem`, `fork`: the suffix of `interference.<stress>` rows.
    pub fn name(self) -> &'static str {
        match self {
            StressKind::Cpu => "cpu",
            StressKind::Mem => "mem",
            StressKind::Fork => "fork",
        }
    }
}

/// Modes of the workload program that are not benchmark workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMode {
    /// Run the isolation probes; `port` is the TCP port on the host's
    /// 127.0.0.1 (and the abstract unix socket `@versus-probe-<port>`) that
    /// the reachability probes try to connect to.
    Probe { port: u16 },
    /// A noisy neighbour, for at most `ms` milliseconds (or until stopped);
    /// the fork bomb keeps at most `max_procs` processes alive.
    Stress { kind: StressKind, ms: u32, max_procs: u32 },
    /// On an OS image: write `write_kib` KiB of the instance's own data,
    /// signal ready, report [`image_digest`] of the root it sees, wait to
    /// be stopped (harness/guest's `image-check`).
    ImageCheck { write_kib: u32 },
}

impl WorkloadSpec {
    /// A spec for a mode of the workload program.
    pub fn mode(mode: GuestMode) -> WorkloadSpec {
        WorkloadSpec::Mode(mode)
    }

    /// The program-only mode, if any.
    pub fn guest_mode(&self) -> Option<GuestMode> {
        match self {
            WorkloadSpec::Mode(m) => Some(*m),
            WorkloadSpec::Bench(_) => None,
        }
    }

    /// The benchmark workload, if this is one.
    pub fn bench(&self) -> Option<Workload> {
        match self {
            WorkloadSpec::Bench(w) => Some(*w),
            WorkloadSpec::Mode(_) => None,
        }
    }

    /// The name in CSV rows: the workload's (`cpu`), or the mode's
    /// (`probe`, `stress-cpu`).
    pub fn name(&self) -> &'static str {
        match self {
            WorkloadSpec::Bench(w) => w.name(),
            WorkloadSpec::Mode(GuestMode::Probe { .. }) => "probe",
            WorkloadSpec::Mode(GuestMode::Stress { kind, .. }) => kind.mode_name(),
            WorkloadSpec::Mode(GuestMode::ImageCheck { .. }) => "image-check",
        }
    }
}

impl FromStr for WorkloadSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<u32>().map_err(|_| format!("workload parameter `{p}` in `{s}` is not a non-negative integer"))?)),
            None => (s, None),
        };
        let stress = |kind| GuestMode::Stress { kind, ms: param.unwrap_or(1000), max_procs: 256 };
        match name {
            "probe" => return Ok(WorkloadSpec::mode(GuestMode::Probe { port: param.unwrap_or(0).min(u16::MAX as u32) as u16 })),
            "stress-cpu" => return Ok(WorkloadSpec::mode(stress(StressKind::Cpu))),
            "stress-mem" => return Ok(WorkloadSpec::mode(stress(StressKind::Mem))),
            "stress-fork" => return Ok(WorkloadSpec::mode(stress(StressKind::Fork))),
            "image-check" => return Ok(WorkloadSpec::mode(GuestMode::ImageCheck { write_kib: param.unwrap_or(0) })),
            _ => {}
        }
        Workload::from_name(name, param)
            .map(WorkloadSpec::Bench)
            .ok_or_else(|| format!("unknown workload `{name}`; expected one of {} (or probe, stress-cpu, stress-mem, stress-fork)", Workload::NAMES.join(", ")))
    }
}

impl fmt::Display for WorkloadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WorkloadSpec::Mode(GuestMode::Probe { port }) => write!(f, "probe:{port}"),
            WorkloadSpec::Mode(GuestMode::Stress { kind, ms, .. }) => write!(f, "{}:{ms}", kind.mode_name()),
            WorkloadSpec::Mode(GuestMode::ImageCheck { write_kib }) => write!(f, "image-check:{write_kib}"),
            WorkloadSpec::Bench(Workload::Ready) => f.write_str("ready"),
            WorkloadSpec::Bench(w) => write!(f, "{}:{}", w.name(), w.param()),
        }
    }
}

impl WorkloadSpec {
    /// The argument vector of the workload program after `--fd N`.
    pub fn guest_args(&self) -> Vec<String> {
        match *self {
            WorkloadSpec::Mode(GuestMode::Probe { port }) => vec!["probe".into(), port.to_string()],
            WorkloadSpec::Mode(GuestMode::Stress { kind, ms, max_procs }) => vec![kind.mode_name().into(), ms.to_string(), max_procs.to_string()],
            WorkloadSpec::Mode(GuestMode::ImageCheck { write_kib }) => vec!["image-check".into(), write_kib.to_string()],
            WorkloadSpec::Bench(Workload::Ready) => vec!["ready".into()],
            WorkloadSpec::Bench(w) => vec![w.name().into(), w.param().to_string()],
        }
    }
}

/// One `RESULT` line, owned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkloadResult {
    pub fields: BTreeMap<String, String>,
}

impl WorkloadResult {
    pub fn from_fields(f: Fields<'_>) -> Self {
        WorkloadResult { fields: f.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
    /// The workload's own measurement of its loop, in ns.
    pub fn elapsed_ns(&self) -> Option<u64> {
        self.get_u64("elapsed_ns")
    }
    pub fn checksum(&self) -> Option<&str> {
        self.get("checksum")
    }
}

/// The files whose content says which version of an OS image a root is
/// (harness/guest's `IMAGE_FILES`).
pub const IMAGE_FILES: [&str; 2] = ["etc/debian_version", "var/lib/dpkg/status"];

/// What the `image-check` mode reports for a root holding the tree at
/// `root`: SHA-256 over each of [`IMAGE_FILES`] (missing: empty) followed by
/// a NUL, folded to 64 bits, as hex.
pub fn image_digest(root: &Path) -> String {
    let mut all = Vec::new();
    for f in IMAGE_FILES {
        all.extend(std::fs::read(root.join(f)).unwrap_or_default());
        all.push(0);
    }
    format!("{:016x}", versus_workload::checksum64(&versus_workload::sha256::digest(&all)))
}

/// The `cpu` checksum every platform must report for `rounds`, computed
/// here on the host from the same code the guests run.
pub fn expected_cpu_checksum(rounds: u32) -> String {
    format!("{:016x}", versus_workload::checksum64(&versus_workload::cpu(rounds)))
}

/// An embedded program (the workload program, the static VMM) written to
/// disk, for platforms that exec it.
/// Removed when dropped.
pub struct EmbeddedProgram {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl EmbeddedProgram {
    /// Writes the embedded workload program to a fresh temp dir
    /// (`versus-guest-*`).
    pub fn guest() -> std::io::Result<EmbeddedProgram> {
        EmbeddedProgram::write("versus-guest", GUEST_BINARY)
    }
    /// Writes the embedded program `bytes` as `name` to a fresh temp dir
    /// (`<name>-*`).
    pub fn write(name: &'static str, bytes: &[u8]) -> std::io::Result<EmbeddedProgram> {
        let dir = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir()?;
        write_executable(&dir.path().join(name), bytes)?;
        Ok(EmbeddedProgram { dir, name })
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(self.name)
    }
}

/// Serialises writing executables against forking children. A child forked
/// while another thread holds an executable open for writing inherits that
/// descriptor until its own exec, and exec of that file then fails with
/// ETXTBSY ("text file busy"). Writers hold the write side from open to
/// close; every fork/clone in versus holds the read side around the call.
static EXEC_FILES: RwLock<()> = RwLock::new(());

/// Held around every fork or clone of a workload (see [`EXEC_FILES`]).
pub fn fork_guard() -> RwLockReadGuard<'static, ()> {
    EXEC_FILES.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `path` with mode 0755 (see [`fork_guard`]).
pub fn write_executable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _g = EXEC_FILES.write().unwrap_or_else(|e| e.into_inner());
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("cpu:10".parse::<WorkloadSpec>().unwrap(), WorkloadSpec::Bench(Workload::Cpu { rounds: 10 }));
        assert_eq!("ready".parse::<WorkloadSpec>().unwrap().to_string(), "ready");
        assert!("cpu:x".parse::<WorkloadSpec>().unwrap_err().contains("not a non-negative integer"));
        assert!("nope".parse::<WorkloadSpec>().unwrap_err().contains("expected one of"));
        assert_eq!("idle:8".parse::<WorkloadSpec>().unwrap().guest_args(), vec!["idle", "8"]);
    }

    #[test]
    fn program_modes_parse_and_are_not_benchmarks() {
        let s: WorkloadSpec = "stress-fork:500".parse().unwrap();
        assert_eq!(s.guest_mode(), Some(GuestMode::Stress { kind: StressKind::Fork, ms: 500, max_procs: 256 }));
        assert_eq!(s.guest_args(), vec!["stress-fork", "500", "256"]);
        assert_eq!(s.to_string(), "stress-fork:500");
        assert_eq!((s.bench(), s.name()), (None, "stress-fork"));
        let p = WorkloadSpec::mode(GuestMode::Probe { port: 4242 });
        assert_eq!(p.guest_args(), vec!["probe", "4242"]);
        assert_eq!(p.name(), "probe");
        let w = WorkloadSpec::Bench(Workload::Cpu { rounds: 3 });
        assert_eq!((w.bench(), w.name()), (Some(Workload::Cpu { rounds: 3 }), "cpu"));
        assert_eq!(w.guest_mode(), None);
        assert_eq!(w, "cpu:3".parse().unwrap());
    }

    #[test]
    fn guest_binary_is_a_static_elf() {
        assert_eq!(&GUEST_BINARY[..4], b"\x7fELF");
        let p = EmbeddedProgram::guest().unwrap();
        let meta = std::fs::metadata(p.path()).unwrap();
        assert_eq!(meta.len() as usize, GUEST_BINARY.len());
        let dir = p.path().parent().unwrap().to_path_buf();
        drop(p);
        assert!(!dir.exists(), "temp dir must be removed on drop");
    }
}
