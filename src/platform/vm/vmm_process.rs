//! The `versus-vmm` process (harness/vmm, linked statically and embedded by
//! build.rs): finding or writing the program, starting one per guest with
//! the same spawn primitive as every host child of versus, reading its
//! `LOG vmm` lines (guest RAM ranges, boot marks), and the instance that
//! measures it (`mem.vmm` from its smaps, split at guest RAM). Both
//! `vm-bare` and `vm-linux` run their guests this way.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{LaunchError, Result};
use crate::measure::smaps;
use crate::measure::Boot;
use crate::platform::cgroup::Controls;
use crate::platform::child::{spawn_program, ChildInstance, ChildWorkload};
use crate::platform::spawn::{inherited_env, Environment, Program};
use crate::platform::{Finished, Instance, VmmMemory};
use crate::workload::EmbeddedProgram;
use versus_vmm::VmError;

/// The fd the VMM process writes the protocol to.
pub const CHANNEL_FD: i32 = 3;

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

    /// Why it cannot run, when its file is missing.
    pub fn missing(&self) -> Option<String> {
        let bin = self.path();
        (!bin.is_file()).then(|| format!("the VMM binary {} does not exist (unset VERSUS_VMM to use the embedded one)", bin.display()))
    }

    /// Starts `versus-vmm --fd 3 ARGS...`, bounded by `timeout` (passed on
    /// as `VERSUS_VMM_TIMEOUT_MS`), in a cgroup of its own when `controls`
    /// asks for one.
    pub fn spawn(&self, args: impl IntoIterator<Item = String>, timeout: Duration, controls: Option<Controls>) -> Result<ChildWorkload> {
        let bin = self.path();
        let args: Vec<String> = ["--fd".to_string(), CHANNEL_FD.to_string()].into_iter().chain(args).collect();
        let timeout_ms = timeout.as_millis().to_string();
        let env = Environment::new(inherited_env(&[("VERSUS_VMM_TIMEOUT_MS", &timeout_ms)]))?;
        let program = Program::new(&bin, args, &env)?;
        spawn_program(&program, CHANNEL_FD, &format!("the VMM process {}", bin.display()), timeout, controls).map(|(child, _)| child)
    }
}

/// Finds or writes the `versus-vmm` program (see [`VmmBinary`]).
pub fn vmm_binary() -> std::result::Result<VmmBinary, VmError> {
    if let Some(p) = std::env::var_os("VERSUS_VMM") {
        return Ok(VmmBinary::Given(PathBuf::from(p)));
    }
    EmbeddedProgram::write("versus-vmm", VMM_BINARY)
        .map(VmmBinary::Embedded)
        .map_err(|e| VmError::VmmProcess(format!("cannot write the versus-vmm program to a temp dir: {e}; set TMPDIR to a writable directory")))
}

/// What the VMM's `LOG vmm ...` lines said so far: guest RAM host ranges
/// and named monotonic-ns boot marks (`started`: its `main`; `start`: the
/// VM's build begins; then the platform's phases).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VmmLog {
    pub guest_ram: Vec<(u64, u64)>,
    pub marks: Vec<(String, u64)>,
}

impl VmmLog {
    /// Takes in one log line (without `LOG `); `false` when it is not the
    /// VMM's (`vmm guest_ram=<hex>+<hex> ... boot started=<ns> <mark>=<ns>...`).
    pub fn absorb(&mut self, line: &str) -> bool {
        let Some(rest) = line.strip_prefix("vmm ") else {
            return false;
        };
        let mut in_boot = false;
        for tok in rest.split(' ') {
            if tok == "boot" {
                in_boot = true;
                continue;
            }
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            if in_boot {
                if let Ok(t) = v.parse() {
                    self.marks.push((k.to_string(), t));
                }
            } else if k == "guest_ram" {
                let range = v.split_once('+').and_then(|(a, n)| Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(n, 16).ok()?)));
                self.guest_ram.extend(range);
            }
        }
        true
    }

    /// The mark `name`, if the VMM sent it.
    pub fn mark(&self, name: &str) -> Option<u64> {
        self.marks.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
}

/// A ready guest in its own VMM process.
pub struct VmmProcessInstance {
    /// The VMM process, as an [`Instance`].
    pub instance: ChildInstance,
    /// Host address ranges of the guest RAM inside the VMM process.
    pub guest_ram: Vec<(u64, u64)>,
    /// Print the guest console lines the VMM forwards (`LOG console ...`).
    pub echo_console: bool,
}

impl VmmProcessInstance {
    pub fn new(child: ChildWorkload, boot: Boot, guest_ram: Vec<(u64, u64)>) -> VmmProcessInstance {
        VmmProcessInstance { instance: ChildInstance { child, boot }, guest_ram, echo_console: false }
    }
}

impl Instance for VmmProcessInstance {
    fn boot(&self) -> &Boot {
        self.instance.boot()
    }
    fn pids(&self) -> Vec<i32> {
        self.instance.pids()
    }
    fn read_result(&mut self, timeout: Duration) -> Result<crate::workload::WorkloadResult> {
        self.instance.read_result(timeout)
    }
    fn vmm_memory(&self) -> Option<Result<VmmMemory>> {
        let Some(pid) = self.instance.child.pid() else {
            return Some(Err(VmError::VmmProcess("the VMM process has exited".into()).into()));
        };
        Some(
            smaps::split(pid.as_raw(), &self.guest_ram)
                .map(|s| VmmMemory { rss_excl_guest: s.outside().rss, pss_excl_guest: s.outside().pss, guest_ram_rss: s.in_ranges.rss })
                .map_err(|e| LaunchError::Vm(format!("reading the VMM process's smaps: {e}"))),
        )
    }
    /// The guest's reports; the VMM's own lines (`vmm ...`, and console
    /// lines, printed to stderr when asked for) are not the workload's.
    fn finish(&mut self) -> Result<Finished> {
        let mut out = self.instance.finish()?;
        let echo = self.echo_console;
        out.logs.retain(|l| match l.strip_prefix("console ") {
            Some(c) => {
                if echo {
                    eprintln!("{c}");
                }
                false
            }
            None => !l.starts_with("vmm "),
        });
        Ok(out)
    }
    fn stop(self: Box<Self>) -> Result<f64> {
        Box::new(self.instance).stop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vmm_lines() {
        let mut v = VmmLog::default();
        assert!(v.absorb("vmm guest_ram=7f0000000000+600000 boot started=5 start=7 vm_create=9 ready=12"));
        assert_eq!(v.guest_ram, vec![(0x7f00_0000_0000, 0x60_0000)]);
        assert_eq!((v.mark("start"), v.mark("ready"), v.mark("kernel")), (Some(7), Some(12), None));
        // A later line adds marks (vm-linux's boot-done).
        assert!(v.absorb("vmm boot kernel=20"));
        assert_eq!((v.guest_ram.len(), v.mark("kernel")), (1, Some(20)));
        assert!(!v.absorb("something else"));
    }
}
