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

pub use versus_workload::Workload;
use versus_workload::protocol::Fields;

/// The static workload program, built by build.rs from `harness/guest`.
pub static GUEST_BINARY: &[u8] = include_bytes!(env!("VERSUS_GUEST_BIN"));

/// A workload as given on the command line: `cpu`, `cpu:50000`, `idle:64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadSpec(pub Workload);

impl FromStr for WorkloadSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, param) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p.parse::<u32>().map_err(|_| format!("workload parameter `{p}` in `{s}` is not a non-negative integer"))?)),
            None => (s, None),
        };
        Workload::from_name(name, param)
            .map(WorkloadSpec)
            .ok_or_else(|| format!("unknown workload `{name}`; expected one of {}", Workload::NAMES.join(", ")))
    }
}

impl fmt::Display for WorkloadSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Workload::Ready => f.write_str("ready"),
            w => write!(f, "{}:{}", w.name(), w.param()),
        }
    }
}

impl WorkloadSpec {
    /// The argument vector of the workload program after `--fd N`.
    pub fn guest_args(&self) -> Vec<String> {
        let w = self.0;
        match w {
            Workload::Ready => vec!["ready".into()],
            _ => vec![w.name().into(), w.param().to_string()],
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

/// The `cpu` checksum every platform must report for `rounds`, computed
/// here on the host from the same code the guests run.
pub fn expected_cpu_checksum(rounds: u32) -> String {
    format!("{:016x}", versus_workload::checksum64(&versus_workload::cpu(rounds)))
}

/// The workload program written to disk, for platforms that exec it.
/// Removed when dropped.
pub struct GuestProgram {
    dir: tempfile::TempDir,
}

impl GuestProgram {
    /// Writes the embedded program to a fresh temp dir (`versus-guest-*`).
    pub fn materialize() -> std::io::Result<GuestProgram> {
        let dir = tempfile::Builder::new().prefix("versus-guest-").tempdir()?;
        write_executable(&dir.path().join("versus-guest"), GUEST_BINARY)?;
        Ok(GuestProgram { dir })
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("versus-guest")
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
        assert_eq!("cpu:10".parse::<WorkloadSpec>().unwrap().0, Workload::Cpu { rounds: 10 });
        assert_eq!("ready".parse::<WorkloadSpec>().unwrap().to_string(), "ready");
        assert!("cpu:x".parse::<WorkloadSpec>().unwrap_err().contains("not a non-negative integer"));
        assert!("nope".parse::<WorkloadSpec>().unwrap_err().contains("expected one of"));
        assert_eq!("idle:8".parse::<WorkloadSpec>().unwrap().guest_args(), vec!["idle", "8"]);
    }

    #[test]
    fn guest_binary_is_a_static_elf() {
        assert_eq!(&GUEST_BINARY[..4], b"\x7fELF");
        let p = GuestProgram::materialize().unwrap();
        let meta = std::fs::metadata(p.path()).unwrap();
        assert_eq!(meta.len() as usize, GUEST_BINARY.len());
        let dir = p.path().parent().unwrap().to_path_buf();
        drop(p);
        assert!(!dir.exists(), "temp dir must be removed on drop");
    }
}
