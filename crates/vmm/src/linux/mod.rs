//! The Linux guest: versus' VMM booting a real Linux kernel directly (no
//! firmware, no bootloader: the Firecracker way) with an initramfs whose
//! /init is the workload program. Behind the `linux` feature, so that the
//! static VMM of the kernel-less guest stays small.
//!
//! | file | job |
//! |---|---|
//! | [`kernel`] | format detection (vmlinux, bzImage) and the bzImage's anatomy; [`kernel::decompress`] the payload's decompressors (lz4, zstd, xz+BCJ, gzip, lzma); [`kernel::load`] loading into guest memory (linux-loader) |
//! | [`bootparams`] | guest layout, e820, command line, initrd, zero page |
//! | [`cpu`] | GDT, page tables, registers, FPU, MSRs, LAPIC, CPUID, irqchip + PIT |
//! | [`initramfs`] | newc cpio writer and parser |
//! | [`boot`] | building the VM on the VMM's blocks, the vCPU thread, failure diagnostics |
//! | this file | kernel preparation (extraction, cached), the command line, [`boot_console`] |
//!
//! The guest talks to the host on two UARTs: COM1 (ttyS0) is the kernel
//! console, COM2 (ttyS1) carries the workload protocol. /init signals
//! boot-done on port [`crate::devices::boot_done::BOOT_DONE_PORT`].

pub mod acpi;
pub mod boot;
pub mod bootparams;
pub mod cpu;
pub mod error;
pub mod initramfs;
pub mod kernel;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

pub use error::LinuxError;

use self::boot::{Ended, LinuxVm, Next, VmConfig};
use self::bootparams::E820;
use crate::devices::GuestEvent;

type KernelKey = (PathBuf, u64, Option<SystemTime>, bool);

/// The image to load for `path`: the file itself (a vmlinux, or a bzImage
/// with `boot_bzimage`), or the vmlinux extracted from the bzImage. Cached
/// per process: extraction is preparation, not boot. For a process that
/// launches many guests (versus' in-process VMM); a VMM process that boots
/// one guest reads with [`read_kernel`], which keeps no copy.
pub fn prepare_kernel(path: &Path, boot_bzimage: bool) -> Result<Arc<Vec<u8>>, LinuxError> {
    static CACHE: OnceLock<Mutex<HashMap<KernelKey, Arc<Vec<u8>>>>> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|source| LinuxError::ReadKernel { path: path.into(), source })?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok(), boot_bzimage);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(img) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(img);
    }
    let img = Arc::new(read_kernel(path, boot_bzimage)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, img.clone());
    }
    Ok(img)
}

/// The image to load for `path`, as [`prepare_kernel`] makes it, without
/// the per-process cache: once the guest is built from it, dropping it
/// gives its memory back (a cached 50 MiB vmlinux would otherwise stay
/// resident in every VMM process and count as its overhead).
pub fn read_kernel(path: &Path, boot_bzimage: bool) -> Result<Vec<u8>, LinuxError> {
    let raw = std::fs::read(path).map_err(|source| LinuxError::ReadKernel { path: path.into(), source })?;
    match kernel::detect(&raw) {
        Some(kernel::KernelFormat::Elf) => Ok(raw),
        Some(kernel::KernelFormat::BzImage) if boot_bzimage => Ok(raw),
        Some(kernel::KernelFormat::BzImage) => kernel::extract_vmlinux(&raw),
        None => Err(LinuxError::NotAKernel(path.display().to_string())),
    }
}

/// The kernel command line for a workload (`args`: the workload program's
/// arguments after `--fd N`, comma-joined under `versus.args=`).
pub fn cmdline(args: &[String], kernel_log: bool, extra: &str) -> String {
    let mut c = String::from(
        "console=ttyS0 reboot=k panic=-1 pci=off nomodule nokaslr i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check rdinit=/init",
    );
    if kernel_log {
        c.push_str(" earlyprintk=serial,ttyS0,115200 ignore_loglevel");
    } else {
        c.push_str(" quiet");
    }
    if !args.is_empty() {
        c.push_str(" versus.args=");
        c.push_str(&args.join(","));
    }
    if !extra.trim().is_empty() {
        c.push(' ');
        c.push_str(extra.trim());
    }
    c
}

/// Kernel parameters that keep a guest kernel away from instructions the
/// host's emulator cannot run, where guest kernel code is emulated: XSAVE
/// (`noxsave`: the kernel would run XRSTOR at FPU init) and CMPXCHG16B
/// (`clearcpuid=141`, X86_FEATURE_CX16: SLUB's cmpxchg_double). Hiding them
/// in CPUID is not enough on kvm_pvm, which sets leaf 1 from the host.
pub const EMULATION_WORKAROUNDS: &str = "noxsave clearcpuid=141";

/// What a [`boot_console`] run saw.
#[derive(Debug)]
pub struct ConsoleBoot {
    /// Every console line, in order.
    pub lines: Vec<String>,
    /// The command line and e820 map versus configured.
    pub cmdline: String,
    pub e820: Vec<E820>,
    /// The banner in the kernel image (`Linux version ...`), when found.
    pub banner: Option<String>,
    /// `true` when `until` was satisfied.
    pub reached: bool,
    /// How the guest ended when it ended on its own (with diagnostics).
    pub ended: Option<String>,
    /// From the vCPU's start to the end of the watch.
    pub guest_time: Duration,
    /// VM set-up time.
    pub setup_time: Duration,
}

/// Boots the kernel with the kernel log on, collecting console lines until
/// `until(lines)` is true, the guest ends, or `timeout` passes; then
/// stops it. Runs on any host (it is how a forced boot is watched where
/// guest kernel code is emulated).
pub fn boot_console(cfg: &VmConfig, timeout: Duration, mut until: impl FnMut(&[String]) -> bool) -> Result<ConsoleBoot, LinuxError> {
    let t0 = Instant::now();
    let vm = LinuxVm::build(cfg)?;
    let (cmdline, e820, banner) = (vm.cmdline.clone(), vm.e820.clone(), vm.kernel.version.clone());
    let banner = banner.filter(|b| b.starts_with("Linux version "));
    let setup_time = t0.elapsed();
    let t1 = Instant::now();
    let mut running = vm.start(timeout, "print the expected console lines");
    let deadline = t1 + timeout;
    let mut lines = Vec::new();
    let mut reached = false;
    let mut ended = None;
    loop {
        match running.next(deadline) {
            Next::Event(GuestEvent::Console(l)) => {
                lines.push(l);
                if until(&lines) {
                    reached = true;
                    break;
                }
            }
            Next::Event(_) => {}
            Next::Ended(e) => {
                ended = Some(describe(&e));
                break;
            }
            Next::TimedOut => break,
        }
    }
    let guest_time = t1.elapsed();
    if ended.is_none() {
        if let Ended::Failed(f) = running.stop() {
            if !reached && !matches!(f.error, crate::VmError::Timeout { .. }) {
                ended = Some(f.to_string());
            }
        }
    }
    Ok(ConsoleBoot { lines, cmdline, e820, banner, reached, ended, guest_time, setup_time })
}

fn describe(e: &Ended) -> String {
    match e {
        Ended::Reset => "the guest rebooted (i8042 reset)".into(),
        Ended::Stopped => "stopped by the host".into(),
        Ended::Failed(f) => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_carries_the_workload() {
        let c = cmdline(&["cpu".into(), "1000".into()], false, "");
        assert!(c.contains("console=ttyS0") && c.contains("reboot=k") && c.contains(" quiet"), "{c}");
        assert!(c.ends_with(" versus.args=cpu,1000"), "{c}");
        let v = cmdline(&[], true, " foo=1 ");
        assert!(v.contains("earlyprintk=serial,ttyS0,115200") && !v.contains("quiet") && v.ends_with(" foo=1"), "{v}");
    }
}
