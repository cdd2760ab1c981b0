//! `vm-linux`: versus' VMM booting a real Linux kernel directly (no
//! firmware, no bootloader: the Firecracker way) with an initramfs whose
//! /init is the workload program.
//!
//! | file | job |
//! |---|---|
//! | [`kernel`] | vmlinux/bzImage detection, loading (linux-loader), vmlinux extraction from a bzImage (lz4, zstd, xz+BCJ, gzip, lzma) |
//! | [`bootparams`] | guest layout, e820, command line, initrd, zero page |
//! | [`cpu`] | GDT, page tables, registers, FPU, MSRs, LAPIC, CPUID, irqchip + PIT |
//! | [`initramfs`] | newc cpio writer and parser |
//! | [`boot`] | building the VM on the VMM's blocks, the vCPU thread, failure diagnostics |
//! | this file | kernel discovery, the command line, [`LinuxPlatform`] |
//!
//! The guest talks to the host on two UARTs: COM1 (ttyS0) is the kernel
//! console, COM2 (ttyS1) carries the workload protocol. /init signals
//! boot-done on port [`super::devices::boot_done::BOOT_DONE_PORT`].
//!
//! # API for the CLI and the runner
//!
//! ```ignore
//! use versus::platform::vm::linux::{LinuxOptions, LinuxPlatform};
//! let opts = LinuxOptions { kernel: a.kernel.clone(), force: a.force, console: a.console, ..Default::default() };
//! let p = LinuxPlatform::new(opts)?;            // Err(LinuxError::NoKernel) when no kernel is found
//! p.available()?; p.representative()?;          // Platform trait; Err(reason) on kvm_pvm hosts
//! let inst = p.launch(&spec)?;                  // refuses on kvm_pvm unless opts.force
//! // or, to watch the console of a forced boot (tests, diagnostics):
//! let cb = linux::boot_console(&opts, &["ready".into()], |lines| ...)?;
//! ```

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

use self::boot::{Ended, LinuxVm, Next, Running, VmConfig};
use self::bootparams::E820;
use super::devices::GuestEvent;
use crate::channel::{self, Received};
use crate::error::{LaunchError, Result};
use crate::host::KvmMode;
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::{Finished, Instance, LaunchSpec, Platform, ProbeLine};

/// The platform name.
pub const NAME: &str = "vm-linux";
/// Boot phases, in order; they add up to `boot`: VMM set-up (KVM_CREATE_VM
/// to the vCPU's first entry), kernel (entry to /init's boot-done signal),
/// init (boot-done to READY received).
pub const PHASES: [&str; 3] = ["vmm", "kernel", "init"];
/// Guest RAM by default.
pub const DEFAULT_MEM_MIB: u64 = 256;

/// Options of the `vm-linux` platform (from the command line).
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// `--kernel PATH` (vmlinux or bzImage); else the host's
    /// /boot/vmlinuz-$(uname -r) when readable; else harness/fetch-kernel's cache.
    pub kernel: Option<PathBuf>,
    /// Boot even where guest kernel code is emulated (kvm_pvm).
    pub force: bool,
    /// Stream the guest console (COM1) to stderr.
    pub console: bool,
    /// Bound of a [`boot_console`] run (launches use `LaunchSpec::timeout`).
    pub timeout: Duration,
    pub mem_mib: u64,
    /// Enter a bzImage at its own 64-bit entry (it decompresses itself)
    /// instead of booting the vmlinux extracted from it.
    pub boot_bzimage: bool,
    /// Let the kernel print its messages (early console, all log levels);
    /// otherwise `quiet`. Implied by `console`.
    pub kernel_log: bool,
    /// Appended to the kernel command line.
    pub extra_cmdline: String,
}

impl Default for LinuxOptions {
    fn default() -> Self {
        LinuxOptions {
            kernel: None,
            force: false,
            console: false,
            timeout: Duration::from_secs(60),
            mem_mib: DEFAULT_MEM_MIB,
            boot_bzimage: false,
            kernel_log: false,
            extra_cmdline: String::new(),
        }
    }
}

/// The directory harness/fetch-kernel caches kernels in:
/// `$VERSUS_KERNEL_CACHE`, else `${XDG_CACHE_HOME:-$HOME/.cache}/versus/kernels`.
pub fn kernel_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VERSUS_KERNEL_CACHE") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("versus").join("kernels")
}

fn readable(p: &Path) -> bool {
    std::fs::File::open(p).is_ok()
}

/// The kernel to boot: `explicit`, else /boot/vmlinuz-$(uname -r) when
/// readable, else the newest vmlinuz-* in [`kernel_cache_dir`].
pub fn find_kernel(explicit: Option<&Path>) -> Result<PathBuf, LinuxError> {
    if let Some(p) = explicit {
        return match std::fs::File::open(p) {
            Ok(_) => Ok(p.to_path_buf()),
            Err(source) => Err(LinuxError::ReadKernel {
                path: p.to_path_buf(),
                source,
            }),
        };
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let host = PathBuf::from(format!("/boot/vmlinuz-{release}"));
    if readable(&host) {
        return Ok(host);
    }
    let mut cached: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(kernel_cache_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    cached.sort();
    cached
        .pop()
        .map(|c| c.1)
        .ok_or(LinuxError::NoKernel { release })
}

type KernelKey = (PathBuf, u64, Option<SystemTime>, bool);

/// The image to load for `path`: the file itself (a vmlinux, or a bzImage
/// with `boot_bzimage`), or the vmlinux extracted from the bzImage. Cached
/// per process: extraction is preparation, not boot.
pub fn prepare_kernel(path: &Path, boot_bzimage: bool) -> Result<Arc<Vec<u8>>, LinuxError> {
    static CACHE: OnceLock<Mutex<HashMap<KernelKey, Arc<Vec<u8>>>>> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|source| LinuxError::ReadKernel {
        path: path.into(),
        source,
    })?;
    let key = (
        path.to_path_buf(),
        meta.len(),
        meta.modified().ok(),
        boot_bzimage,
    );
    let cache = CACHE.get_or_init(Default::default);
    if let Some(img) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(img);
    }
    let raw = std::fs::read(path).map_err(|source| LinuxError::ReadKernel {
        path: path.into(),
        source,
    })?;
    let img = match kernel::detect(&raw) {
        Some(kernel::KernelFormat::Elf) => raw,
        Some(kernel::KernelFormat::BzImage) if boot_bzimage => raw,
        Some(kernel::KernelFormat::BzImage) => kernel::extract_vmlinux(&raw)?,
        None => return Err(LinuxError::NotAKernel(path.display().to_string())),
    };
    let img = Arc::new(img);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, img.clone());
    }
    Ok(img)
}

/// The guest initramfs: the embedded workload program as /init.
pub fn guest_initramfs() -> Result<Arc<Vec<u8>>, LinuxError> {
    static IMG: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    if let Some(i) = IMG.get() {
        return Ok(i.clone());
    }
    let i = Arc::new(initramfs::guest_initramfs(crate::workload::GUEST_BINARY)?);
    Ok(IMG.get_or_init(|| i).clone())
}

/// The kernel command line for a workload (`args`: the workload program's
/// arguments after `--fd N`, comma-joined under `versus.args=`).
pub fn cmdline(args: &[String], kernel_log: bool, extra: &str) -> String {
    let mut c = String::from("console=ttyS0 reboot=k panic=-1 pci=off nomodule nokaslr i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check rdinit=/init");
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

/// Why vm-linux is not representative on this host (`None`: it is).
pub fn not_representative_reason(mode: &KvmMode) -> Option<String> {
    match mode {
        KvmMode::Pvm => Some("this host's /dev/kvm is kvm_pvm: guest kernel (CPL0) code is emulated one instruction at a time, about 1000x slower than native, and the emulator cannot run some instructions (XRSTOR, CMPXCHG16B), so a stock Linux kernel does not boot here".into()),
        KvmMode::Absent => Some("/dev/kvm does not exist".into()),
        KvmMode::Unknown => Some("/dev/kvm is provided by an unrecognised module; vm-linux numbers may not be comparable".into()),
        KvmMode::Hardware { .. } => None,
    }
}

/// Kernel parameters that keep a guest kernel away from instructions the
/// host's emulator cannot run, where guest kernel code is emulated: XSAVE
/// (`noxsave`: the kernel would run XRSTOR at FPU init) and CMPXCHG16B
/// (`clearcpuid=141`, X86_FEATURE_CX16: SLUB's cmpxchg_double). Hiding them
/// in CPUID is not enough on kvm_pvm, which sets leaf 1 from the host.
pub const EMULATION_WORKAROUNDS: &str = "noxsave clearcpuid=141";

fn vm_config(
    opts: &LinuxOptions,
    path: &Path,
    args: &[String],
    kernel_log: bool,
) -> Result<VmConfig, LinuxError> {
    let emulated = matches!(crate::host::kvm_mode(), KvmMode::Pvm);
    let mut extra = opts.extra_cmdline.clone();
    if emulated {
        extra = format!("{EMULATION_WORKAROUNDS} {extra}");
    }
    Ok(VmConfig {
        kernel: prepare_kernel(path, opts.boot_bzimage)?,
        initramfs: Some(guest_initramfs()?),
        cmdline: cmdline(args, kernel_log || opts.console || opts.kernel_log, &extra),
        mem_bytes: opts.mem_mib << 20,
        console_echo: opts.console,
        hide_unemulated: emulated,
    })
}

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
/// `until(lines)` is true, the guest ends, or `opts.timeout` passes; then
/// stops it. Runs on any host (it is how a forced boot is watched where
/// guest kernel code is emulated).
pub fn boot_console(
    opts: &LinuxOptions,
    args: &[String],
    mut until: impl FnMut(&[String]) -> bool,
) -> Result<ConsoleBoot, LinuxError> {
    let path = find_kernel(opts.kernel.as_deref())?;
    let cfg = vm_config(opts, &path, args, true)?;
    let t0 = Instant::now();
    let vm = LinuxVm::build(&cfg)?;
    let (cmdline, e820, banner) = (
        vm.cmdline.clone(),
        vm.e820.clone(),
        vm.kernel.version.clone(),
    );
    let banner = banner.filter(|b| b.starts_with("Linux version "));
    let setup_time = t0.elapsed();
    let t1 = Instant::now();
    let mut running = vm.start(opts.timeout, "print the expected console lines");
    let deadline = t1 + opts.timeout;
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
            if !reached && !matches!(f.error, super::VmError::Timeout { .. }) {
                ended = Some(f.to_string());
            }
        }
    }
    Ok(ConsoleBoot {
        lines,
        cmdline,
        e820,
        banner,
        reached,
        ended,
        guest_time,
        setup_time,
    })
}

fn describe(e: &Ended) -> String {
    match e {
        Ended::Reset => "the guest rebooted (i8042 reset)".into(),
        Ended::Stopped => "stopped by the host".into(),
        Ended::Failed(f) => f.to_string(),
    }
}

fn ended_error(e: Ended, what: &'static str, timeout: Duration) -> LaunchError {
    match e {
        Ended::Reset => LaunchError::Vm(format!("the guest rebooted before it {what}")),
        Ended::Stopped => LaunchError::Interrupted,
        Ended::Failed(f) => match f.error {
            super::VmError::Interrupted => LaunchError::Interrupted,
            super::VmError::Timeout { .. } => LaunchError::Vm(format!("the guest did not {what} within {timeout:?} (raise --timeout if it is just slow); {f}")),
            _ => LaunchError::Vm(format!("the guest failed before it {what}: {f}")),
        },
    }
}

impl From<LinuxError> for LaunchError {
    fn from(e: LinuxError) -> LaunchError {
        match e {
            LinuxError::Vm(v) => (*v).into(),
            LinuxError::NotRepresentative(why) => LaunchError::Unsupported(format!(
                "{why}; pass --force (versus launch vm-linux --force) to boot it anyway"
            )),
            other => LaunchError::Vm(other.to_string()),
        }
    }
}

/// The `vm-linux` platform.
#[derive(Debug, Clone)]
pub struct LinuxPlatform {
    opts: LinuxOptions,
    kernel: std::result::Result<PathBuf, String>,
}

impl LinuxPlatform {
    /// Resolves the kernel now; a missing kernel shows in `available()`.
    pub fn new(opts: LinuxOptions) -> LinuxPlatform {
        let kernel = find_kernel(opts.kernel.as_deref()).map_err(|e| e.to_string());
        LinuxPlatform { opts, kernel }
    }

    /// The kernel this platform boots.
    pub fn kernel_path(&self) -> Option<&Path> {
        self.kernel.as_ref().ok().map(|p| p.as_path())
    }
}

impl Platform for LinuxPlatform {
    fn name(&self) -> &'static str {
        NAME
    }

    fn available(&self) -> std::result::Result<(), String> {
        super::vm::available()?;
        self.kernel.as_ref().map(|_| ()).map_err(|e| e.clone())
    }

    fn representative(&self) -> std::result::Result<(), String> {
        match not_representative_reason(&crate::host::kvm_mode()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            format!("kernel: {}", self.kernel.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|e| e.clone())),
            format!("boot phases: vmm (KVM_CREATE_VM to vCPU start), kernel (to /init's boot-done port write), init (to READY on ttyS1); guest RAM {} MiB, 1 vCPU", self.opts.mem_mib),
            "call: a getpid system call in the guest kernel".into(),
            "the VMM runs inside the versus process: mem.host is versus' PSS including the guest RAM it touched".into(),
        ];
        if !self.opts.boot_bzimage {
            n.push("a bzImage is booted as the vmlinux extracted from it (no decompressor run; extraction is done once, before timing)".into());
        }
        n
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        if !self.opts.force {
            if let Err(why) = self.representative() {
                return Err(LinuxError::NotRepresentative(why).into());
            }
        }
        let path = self
            .kernel
            .as_ref()
            .map_err(|e| LaunchError::Unsupported(e.clone()))?;
        let cfg = vm_config(&self.opts, path, &spec.workload.guest_args(), false)?;
        let t0 = now_ns();
        let vm = LinuxVm::build(&cfg)?;
        let t_vmm = now_ns();
        let deadline = Instant::now() + spec.timeout;
        let mut running = vm.start(spec.timeout, "signal ready");
        let mut t_boot_done = None;
        let mut pending = Vec::new();
        let t_ready = loop {
            match running.next(deadline) {
                Next::Event(GuestEvent::BootDone { t_ns }) => t_boot_done = Some(t_ns),
                Next::Event(GuestEvent::Channel(line)) => match channel::parse(&line)? {
                    Received::Ready { .. } => break now_ns(),
                    other => pending.push(other),
                },
                Next::Event(_) => {}
                Next::Ended(e) => return Err(ended_error(e, "signalled ready", spec.timeout)),
                Next::TimedOut => {
                    let tail = running.console_tail();
                    let _ = running.stop();
                    return Err(LaunchError::Vm(format!(
                        "the guest did not signal ready within {:?} (raise --timeout if it is just slow); last console lines: {}",
                        spec.timeout,
                        tail.join(" | ")
                    )));
                }
            }
        };
        let t_kernel = t_boot_done.unwrap_or(t_ready).clamp(t_vmm, t_ready);
        let boot = Boot::from_marks(
            t0,
            &[
                (PHASES[0], t_vmm),
                (PHASES[1], t_kernel),
                (PHASES[2], t_ready),
            ],
        );
        Ok(Box::new(LinuxInstance {
            running: Some(running),
            boot,
            pending,
            deadline,
            timeout: spec.timeout,
        }))
    }
}

/// A ready Linux guest.
pub struct LinuxInstance {
    running: Option<Running>,
    boot: Boot,
    pending: Vec<Received>,
    deadline: Instant,
    timeout: Duration,
}

impl Instance for LinuxInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }

    fn pids(&self) -> Vec<i32> {
        vec![std::process::id() as i32]
    }

    fn finish(&mut self) -> Result<Finished> {
        let mut out = Finished::default();
        let take = |m: Received, out: &mut Finished| match m {
            Received::Result(r) => out.results.push(r),
            Received::Log(l) => out.logs.push(l),
            Received::Probe {
                id,
                result,
                evidence,
            } => out.probes.push(ProbeLine {
                id,
                result,
                evidence,
            }),
            Received::Ready { .. } => {}
        };
        for m in self.pending.drain(..) {
            take(m, &mut out);
        }
        let Some(running) = self.running.as_mut() else {
            return Ok(out);
        };
        loop {
            match running.next(self.deadline) {
                Next::Event(GuestEvent::Channel(line)) => take(channel::parse(&line)?, &mut out),
                Next::Event(_) => {}
                Next::Ended(Ended::Reset) => {
                    self.running = None;
                    return Ok(out);
                }
                Next::Ended(e) => {
                    self.running = None;
                    return Err(ended_error(e, "finished", self.timeout));
                }
                Next::TimedOut => {
                    return Err(LaunchError::Timeout {
                        what: "finish",
                        after: self.timeout,
                    })
                }
            }
        }
    }

    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        if let Some(r) = self.running.take() {
            match r.stop() {
                Ended::Reset | Ended::Stopped => {}
                Ended::Failed(f) if matches!(f.error, super::VmError::Timeout { .. }) => {}
                Ended::Failed(f) => {
                    return Err(LaunchError::Vm(format!(
                        "the guest failed while stopping: {f}"
                    )))
                }
            }
        }
        Ok((now_ns() - t) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_carries_the_workload() {
        let c = cmdline(&["cpu".into(), "1000".into()], false, "");
        assert!(
            c.contains("console=ttyS0") && c.contains("reboot=k") && c.contains(" quiet"),
            "{c}"
        );
        assert!(c.ends_with(" versus.args=cpu,1000"), "{c}");
        let v = cmdline(&[], true, " foo=1 ");
        assert!(
            v.contains("earlyprintk=serial,ttyS0,115200")
                && !v.contains("quiet")
                && v.ends_with(" foo=1"),
            "{v}"
        );
    }

    #[test]
    fn explicit_kernel_must_be_readable() {
        let e = find_kernel(Some(Path::new("/nonexistent/vmlinuz"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/vmlinuz"), "{e}");
        let t = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(find_kernel(Some(t.path())).unwrap(), t.path());
        // Not a kernel: said so, with the path.
        std::fs::write(t.path(), b"#!/bin/sh\n").unwrap();
        let e = prepare_kernel(t.path(), false).unwrap_err();
        assert!(matches!(e, LinuxError::NotAKernel(_)), "{e}");
    }

    #[test]
    fn pvm_hosts_are_not_representative() {
        assert!(not_representative_reason(&KvmMode::Pvm)
            .unwrap()
            .contains("emulated"));
        assert!(not_representative_reason(&KvmMode::Hardware {
            module: "kvm_intel".into(),
            nested_host: false
        })
        .is_none());
    }

    #[test]
    fn guest_initramfs_has_init_and_console() {
        let a = guest_initramfs().unwrap();
        let e = initramfs::parse(&a).unwrap();
        let init = e.iter().find(|e| e.name == "init").expect("/init");
        assert_eq!(init.data, crate::workload::GUEST_BINARY);
        assert_eq!(init.mode, initramfs::S_IFREG | 0o755);
        let console = e
            .iter()
            .find(|e| e.name == "dev/console")
            .expect("/dev/console");
        assert_eq!(
            (console.mode & initramfs::S_IFMT, console.rdev),
            (initramfs::S_IFCHR, (5, 1))
        );
        for d in ["dev", "proc", "sys"] {
            assert!(e.iter().any(|x| x.name == d && x.is_dir()), "{d}/");
        }
        // The guest program must carry the /init mode.
        let needle = b"versus.args=";
        assert!(
            init.data.windows(needle.len()).any(|w| w == needle),
            "the embedded guest program has no /init mode (harness/guest/src/init.rs)"
        );
    }
}
