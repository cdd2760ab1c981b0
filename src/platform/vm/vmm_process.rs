//! `vm-bare` with the VMM in a process of its own (`versus-vmm`,
//! harness/vmm, linked statically and embedded by build.rs): the honest way
//! to attribute host memory to one guest. `mem.host` is that process's PSS (guest RAM it touched included);
//! `mem.vmm` is its resident memory minus the guest-RAM mapping, as
//! Firecracker measures its overhead.
//!
//! The in-process [`super::bare::VmBarePlatform`] is the one to time boots
//! with (no fork+exec in the way); this one is for memory, and for anyone
//! who wants the VMM isolated from versus.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::channel::Received;
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::{spawn_program, ChildInstance};
use crate::platform::{Instance, LaunchSpec, Platform};
use crate::workload::EmbeddedProgram;
use versus_vmm::VmError;

/// The fd the VMM process writes the protocol to.
const CHANNEL_FD: i32 = 3;

/// The static `versus-vmm` program, built by build.rs from harness/vmm.
pub static VMM_BINARY: &[u8] = include_bytes!(env!("VERSUS_VMM_BIN"));

/// Where the `versus-vmm` program runs from: `$VERSUS_VMM` if set, else the
/// embedded static one, written to a temp dir that lives as long as this.
pub enum VmmBinary {
    Given(PathBuf),
    Embedded(EmbeddedProgram),
}

impl VmmBinary {
    pub fn path(&self) -> PathBuf {
        match self {
            VmmBinary::Given(p) => p.clone(),
            VmmBinary::Embedded(p) => p.path(),
        }
    }
}

/// Finds or writes the `versus-vmm` program (see [`VmmBinary`]).
pub fn vmm_binary() -> std::result::Result<VmmBinary, VmError> {
    if let Some(p) = std::env::var_os("VERSUS_VMM") {
        return Ok(VmmBinary::Given(PathBuf::from(p)));
    }
    EmbeddedProgram::write("versus-vmm", VMM_BINARY).map(VmmBinary::Embedded).map_err(|e| {
        VmError::VmmProcess(format!(
            "cannot write the versus-vmm program to a temp dir: {e}; set TMPDIR to a writable directory"
        ))
    })
}

/// Memory of one idle `vm-bare` guest whose VMM is its own process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VmMemory {
    /// PSS of the VMM process, guest RAM it touched included (`mem.host`).
    pub host_pss: u64,
    /// Resident memory of the VMM process outside the guest-RAM mapping
    /// (`mem.vmm`).
    pub vmm_rss_excl_guest: u64,
    /// PSS of the VMM process outside the guest-RAM mapping: its own cost
    /// with shared library pages divided among their users.
    pub vmm_pss_excl_guest: u64,
    /// Resident guest RAM.
    pub guest_ram_rss: u64,
    /// Total resident memory of the VMM process.
    pub vmm_rss: u64,
}

/// Sums `/proc/<pid>/smaps`: total Pss and Rss, and the Rss of mappings
/// that start inside one of `guest` (host address, length).
pub fn smaps_memory(pid: i32, guest: &[(u64, u64)]) -> std::io::Result<VmMemory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    Ok(parse_smaps(&text, guest))
}

fn parse_smaps(text: &str, guest: &[(u64, u64)]) -> VmMemory {
    let mut m = VmMemory::default();
    let mut in_guest = false;
    let mut guest_pss = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(first) = it.next() else { continue };
        if let Some((a, _)) = first.split_once('-') {
            if let Ok(start) = u64::from_str_radix(a, 16) {
                in_guest = guest.iter().any(|&(g, len)| start >= g && start < g + len);
                continue;
            }
        }
        let kb = || it.clone().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
        match first {
            "Rss:" => {
                let v = kb();
                m.vmm_rss += v;
                if in_guest {
                    m.guest_ram_rss += v;
                }
            }
            "Pss:" => {
                let v = kb();
                m.host_pss += v;
                if in_guest {
                    guest_pss += v;
                }
            }
            _ => {}
        }
    }
    m.vmm_rss_excl_guest = m.vmm_rss - m.guest_ram_rss;
    m.vmm_pss_excl_guest = m.host_pss - guest_pss;
    m
}

/// `vm-bare`, one `versus-vmm` process per instance.
pub struct VmBareProcessPlatform {
    /// The program (a written-out embedded one lives as long as this).
    program: VmmBinary,
}

impl VmBareProcessPlatform {
    pub fn new() -> std::result::Result<VmBareProcessPlatform, VmError> {
        Ok(VmBareProcessPlatform { program: vmm_binary()? })
    }
    pub fn with_binary(bin: &Path) -> VmBareProcessPlatform {
        VmBareProcessPlatform {
            program: VmmBinary::Given(bin.to_path_buf()),
        }
    }
}

/// A ready guest in its own VMM process.
pub struct VmmProcessInstance {
    /// The VMM process, as an [`Instance`].
    pub instance: ChildInstance,
    /// Host address ranges of the guest RAM inside the VMM process.
    pub guest_ram: Vec<(u64, u64)>,
}

impl VmmProcessInstance {
    /// The VMM process's pid (none once it has exited).
    pub fn pids(&self) -> Vec<i32> {
        self.instance.pids()
    }

    /// Stops the guest and its VMM process; returns the teardown time in ms.
    pub fn stop(self) -> Result<f64> {
        Box::new(self.instance).stop()
    }

    /// Reads the VMM process's memory now.
    pub fn memory(&self) -> Result<VmMemory> {
        let pid = self
            .instance
            .child
            .pid()
            .ok_or_else(|| LaunchError::from(VmError::VmmProcess("the VMM process has exited".into())))?;
        smaps_memory(pid.as_raw(), &self.guest_ram).map_err(|e| LaunchError::io("reading the VMM process's smaps", e))
    }
}

/// Parses `LOG vmm guest_ram=<hex>+<hex> ... boot started=<ns> start=<ns> <phase>=<ns>...`.
/// Guest RAM host ranges, and named monotonic-ns boot marks.
type VmmLog = (Vec<(u64, u64)>, Vec<(String, u64)>);

fn parse_vmm_log(l: &str) -> Option<VmmLog> {
    let rest = l.strip_prefix("vmm ")?;
    let mut ram = Vec::new();
    let mut marks = Vec::new();
    let mut in_boot = false;
    for tok in rest.split(' ') {
        if tok == "boot" {
            in_boot = true;
            continue;
        }
        let (k, v) = tok.split_once('=')?;
        if !in_boot && k == "guest_ram" {
            let (a, n) = v.split_once('+')?;
            ram.push((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(n, 16).ok()?));
        } else if in_boot {
            marks.push((k.to_string(), v.parse().ok()?));
        }
    }
    Some((ram, marks))
}

impl VmBareProcessPlatform {
    /// Launches one guest in a fresh `versus-vmm` process and waits for READY.
    pub fn launch_process(&self, spec: &LaunchSpec) -> Result<VmmProcessInstance> {
        // Refuse what the kernel-less guest cannot run before spawning.
        let run = super::bare::guest_run_of(&spec.workload)?;
        let start = now_ns();
        let bin = self.program.path();
        let mut cmd = Command::new(&bin);
        cmd.arg("--fd").arg(CHANNEL_FD.to_string()).arg(run.mode.to_string()).arg(run.param.to_string());
        cmd.env("VERSUS_VMM_TIMEOUT_MS", spec.timeout.as_millis().to_string());
        let mut child = spawn_program(cmd, CHANNEL_FD, &format!("the VMM process {}", bin.display()), spec.timeout)?;
        let deadline = Instant::now() + spec.timeout;
        let mut guest_ram = Vec::new();
        let mut marks: Vec<(String, u64)> = Vec::new();
        let ready_ns = loop {
            match child.channel.recv(deadline, "signal ready", spec.timeout)? {
                Some((Received::Ready { .. }, t)) => break t,
                Some((Received::Log(l), _)) => {
                    if let Some((r, m)) = parse_vmm_log(&l) {
                        guest_ram = r;
                        marks = m;
                    }
                }
                Some(_) => {}
                None => return Err(child.crash_error("the VMM process exited before the guest signalled ready")),
            }
        };
        let get = |k: &str| marks.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        let mut m: Vec<(&'static str, u64)> = vec![("vmm_spawn", get("start").unwrap_or(start))];
        for p in super::bare::PHASES {
            if p == "ready" {
                m.push(("ready", ready_ns));
            } else if let Some(t) = get(p) {
                m.push((p, t));
            }
        }
        let boot = Boot::from_marks(start, &m);
        Ok(VmmProcessInstance {
            instance: ChildInstance { child, boot },
            guest_ram,
        })
    }
}

impl Platform for VmBareProcessPlatform {
    fn name(&self) -> &'static str {
        "vm-bare"
    }
    fn available(&self) -> std::result::Result<(), String> {
        versus_vmm::vm::available()?;
        let bin = self.program.path();
        if !bin.is_file() {
            return Err(format!("the VMM binary {} does not exist", bin.display()));
        }
        Ok(())
    }
    fn notes(&self) -> Vec<String> {
        let mut n: Vec<String> = super::bare::VmBarePlatform::new()
            .notes()
            .into_iter()
            .filter(|l| !l.starts_with("the VMM runs inside"))
            .collect();
        n.push("the VMM is its own process (versus-vmm): boot includes its fork+exec (phase vmm_spawn); mem.host is that process's PSS".into());
        n
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        Ok(Box::new(self.launch_process(spec)?.instance))
    }
}

impl VmBareProcessPlatform {
    /// Launches `spec` (normally an `idle` workload) in its own VMM
    /// process, waits until it is ready, reads its memory, and stops it.
    pub fn measure_memory(&self, spec: &LaunchSpec) -> Result<VmMemory> {
        let inst = self.launch_process(spec)?;
        let m = inst.memory();
        inst.stop()?;
        m
    }
}

/// [`VmBareProcessPlatform::measure_memory`] with the `versus-vmm` found
/// next to the running executable.
pub fn measure_memory(spec: &LaunchSpec) -> Result<VmMemory> {
    VmBareProcessPlatform::new()?.measure_memory(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vmm_log_and_smaps() {
        let (ram, marks) = parse_vmm_log("vmm guest_ram=7f0000000000+600000 boot started=5 start=7 vm_create=9 ready=12").unwrap();
        assert_eq!(ram, vec![(0x7f00_0000_0000, 0x60_0000)]);
        assert_eq!(marks[1], ("start".to_string(), 7));
        assert!(parse_vmm_log("something else").is_none());
        let smaps = "55d000000000-55d000001000 r-xp 00000000 08:01 1 /bin/x\nRss:                   8 kB\nPss:                   4 kB\n\
7f0000000000-7f0000600000 rw-p 00000000 00:00 0\nRss:                2048 kB\nPss:                2048 kB\n";
        let m = parse_smaps(smaps, &ram);
        assert_eq!(
            m,
            VmMemory {
                host_pss: 2052 * 1024,
                vmm_rss_excl_guest: 8 * 1024,
                vmm_pss_excl_guest: 4 * 1024,
                guest_ram_rss: 2048 * 1024,
                vmm_rss: 2056 * 1024
            }
        );
    }
}
