//! The kernel-less guest (`vm-bare`): one [`BareVm`] run to its end.

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use versus_vmm::abi::mode;
use versus_vmm::bare::{BareVm, GuestRun};
use versus_vmm::memory::RamOptions;

/// `<MODE> [PARAM]`: a mode by name or number, its parameter (default 0).
pub fn parse_run(name: &str, param: Option<String>) -> Result<GuestRun, String> {
    let mode = GuestRun::parse_mode(name).ok_or_else(|| format!("unknown guest mode `{name}`"))?;
    let param = match param.map(|p| p.parse::<u32>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => return Err("PARAM must be a non-negative integer".into()),
    };
    Ok(GuestRun { mode, param })
}

/// Runs the guest: the VMM line, `READY` (stamped when the guest's READY
/// host call arrived), the guest's lines; on failure the guest's log so far
/// and `LOG vmm-error`, then the error for `ABORT`.
pub fn run(out: &mut File, run: GuestRun, ram: RamOptions, started: u64, timeout: Duration) -> Result<(), String> {
    let mut vm = BareVm::launch_with(run, timeout, ram).map_err(|e| e.to_string())?;
    let marks: Vec<(&str, u64)> = vm.boot.marks.iter().map(|(n, t)| (*n, *t)).collect();
    let ready_ns = marks.last().map(|m| m.1).unwrap_or(vm.boot.start_ns);
    let mut text = super::vmm_line(&vm.guest_ram_host_ranges(), started, vm.boot.start_ns, &marks);
    text += &format!("READY t={ready_ns} started={started}\n");
    let _ = out.write_all(text.as_bytes());

    let lines = match vm.finish() {
        Ok(l) => l,
        Err(e) => {
            // What the guest logged before it ended (the probes' `site=`
            // marks), then how it ended, in a form the harness reads back
            // (`VmError::from_wire`) to judge it as if the VMM ran inside it.
            let mut text = String::new();
            for l in vm.log_lines() {
                text += &format!("LOG {l}\n");
            }
            text += &format!("LOG vmm-error {}\n", e.to_wire());
            let _ = out.write_all(text.as_bytes());
            return Err(e.to_string());
        }
    };
    let mut text = String::new();
    for l in &lines {
        text += l;
        text.push('\n');
    }
    let _ = out.write_all(text.as_bytes());
    if run.mode == mode::IDLE {
        super::wait_stdin_eof();
    }
    drop(vm);
    Ok(())
}
