//! `vm-linux`: versus' VMM ([`versus_vmm::linux`]) booting a real Linux
//! kernel with an initramfs whose /init is the workload program. Here: the
//! kernel to boot (`--kernel`, the host's, or harness/fetch-kernel's
//! cache), the guest initramfs with the embedded workload program, and the
//! [`LinuxPlatform`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use versus_vmm::linux::boot::VmConfig;
pub use versus_vmm::linux::LinuxError;
use versus_vmm::linux::{cmdline, initramfs, prepare_kernel, ConsoleBoot, EMULATION_WORKAROUNDS};

use crate::channel::Received;
use crate::error::{LaunchError, Result};
use crate::host::KvmMode;
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::cgroup::Controls;
use crate::platform::registry::PlatformOptions;
use crate::platform::vm::vmm_process::{vmm_binary, VmmBinary, VmmLog, VmmProcessInstance};
use crate::platform::{Group, Guest, ImageMode, Instance, InstanceRoot, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};

/// A Linux guest on versus' VMM.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "vm-linux",
    article: "a Linux VM",
    summary: "versus' own VMM booting a real Linux kernel with an initramfs whose /init is the workload program (the Firecracker class)",
    colour: (0xD5, 0x5E, 0x00),
    group: Group::Versus,
    isolation: Isolation::Vm,
    guest: Guest::OwnKernel,
    memory: MemoryAccounting::VmmProcess,
    baseline: false,
};

/// The registry's constructor.
pub fn create(opts: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(LinuxPlatform::new(LinuxOptions { kernel: opts.kernel.clone(), force: opts.force, console: opts.console, ..LinuxOptions::default() })))
}
/// Boot phases, in order; they add up to `boot`: the VMM process's start
/// (spawn to its `start` mark), VMM set-up (reading the kernel and
/// initramfs files, KVM_CREATE_VM, loading, to the vCPU's first entry),
/// kernel (entry to /init's boot-done signal), init (boot-done to READY
/// received by versus).
pub const PHASES: [&str; 4] = ["vmm_spawn", "vmm", "kernel", "init"];
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
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"));
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
            Err(source) => Err(LinuxError::ReadKernel { path: p.to_path_buf(), source }),
        };
    }
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
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
    cached.pop().map(|c| c.1).ok_or(LinuxError::NoKernel { release })
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

/// The kernel modules a guest of `kernel` needs to mount an OS image's
/// disk as root (virtio_mmio, virtio_blk and their dependencies, ext4 where
/// it is a module), in load order: harness/fetch-kernel keeps them beside
/// the kernel it caches, as `modules-VERSION/` (`NAME.ko` each and
/// `modules.order`) next to `vmlinuz-VERSION`.
pub fn disk_modules(kernel: &Path) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let name = kernel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let version = name.strip_prefix("vmlinuz-").unwrap_or(&name);
    let dir = kernel.parent().unwrap_or(Path::new(".")).join(format!("modules-{version}"));
    let order = std::fs::read_to_string(dir.join("modules.order")).map_err(|e| {
        format!(
            "vm-linux boots an OS image's disk with its kernel's virtio_mmio and virtio_blk modules, which are not in {} ({e}): run harness/fetch-kernel (it keeps them beside the kernel) and boot its kernel",
            dir.display()
        )
    })?;
    order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|m| {
            let f = dir.join(format!("{m}.ko"));
            std::fs::read(&f).map(|b| (m.to_string(), b)).map_err(|e| format!("cannot read the module {}: {e}", f.display()))
        })
        .collect()
}

/// The initramfs of a guest booted on a disk: the guest's own entries and
/// `modules` under /lib/modules with their load order (harness/guest's
/// /init loads them, mounts /dev/vda and runs the image's program).
pub fn disk_initramfs(modules: &[(String, Vec<u8>)]) -> std::result::Result<Vec<u8>, LinuxError> {
    let mut e = initramfs::guest_entries(crate::workload::GUEST_BINARY);
    e.push(initramfs::Entry::dir("lib", 0o755));
    e.push(initramfs::Entry::dir("lib/modules", 0o755));
    let mut order = String::new();
    for (name, bytes) in modules {
        e.push(initramfs::Entry::file(&format!("lib/modules/{name}.ko"), 0o644, bytes));
        order.push_str(name);
        order.push('\n');
    }
    e.push(initramfs::Entry::file("lib/modules/modules.order", 0o644, order.as_bytes()));
    initramfs::write(&e)
}

/// What a guest booted on a disk adds to the kernel command line: the
/// disk as root, read-write, and the image's workload program as init
/// (harness/guest's /init in the initramfs reads them; see
/// harness/guest/src/init.rs).
pub fn disk_cmdline() -> String {
    format!("root=/dev/vda rw init={}", crate::image::disk::INIT_PATH)
}

/// Why vm-linux is not representative on this host (`None`: it is): the
/// KVM module and the measured guest loop speeds must both say guest kernel
/// code runs natively.
pub fn not_representative_reason(mode: &KvmMode, speed: &crate::host::KvmSpeed) -> Option<String> {
    match crate::host::guest_kernel_speed(mode, speed) {
        crate::host::GuestKernelSpeed::Native => None,
        crate::host::GuestKernelSpeed::NotNative(why) => Some(why),
    }
}

/// Boots the kernel of `opts` with the kernel log on and watches its
/// console (see [`versus_vmm::linux::boot_console`]). Runs on any host: it
/// is how a forced boot is watched where guest kernel code is emulated.
pub fn boot_console(opts: &LinuxOptions, args: &[String], until: impl FnMut(&[String]) -> bool) -> Result<ConsoleBoot, LinuxError> {
    let path = find_kernel(opts.kernel.as_deref())?;
    let cfg = vm_config(opts, &path, args, true)?;
    versus_vmm::linux::boot_console(&cfg, opts.timeout, until)
}

fn vm_config(opts: &LinuxOptions, path: &Path, args: &[String], kernel_log: bool) -> Result<VmConfig, LinuxError> {
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
        ram: Default::default(),
        disk: None,
    })
}

impl From<LinuxError> for LaunchError {
    fn from(e: LinuxError) -> LaunchError {
        match e {
            LinuxError::Vm(v) => (*v).into(),
            LinuxError::NotRepresentative(why) => LaunchError::Unsupported(format!("{why}; pass --force (versus launch vm-linux --force) to boot it anyway")),
            other => LaunchError::Vm(other.to_string()),
        }
    }
}

/// The files a VMM process boots from: the kernel image to load (the
/// vmlinux extracted from a bzImage, unless it boots the bzImage itself)
/// and the guest initramfs, in a temp dir removed with the platform.
struct BootFiles {
    dir: tempfile::TempDir,
}

impl BootFiles {
    fn kernel(&self) -> PathBuf {
        self.dir.path().join("kernel")
    }
    fn initrd(&self) -> PathBuf {
        self.dir.path().join("initramfs.cpio")
    }
}

/// A kernel image and disk-boot initramfs written as files, or why not.
type DiskBoot = std::result::Result<(PathBuf, PathBuf), String>;

/// The `vm-linux` platform.
pub struct LinuxPlatform {
    opts: LinuxOptions,
    kernel: std::result::Result<PathBuf, String>,
    /// The `versus-vmm` program each guest runs in.
    program: std::result::Result<VmmBinary, String>,
    /// Written on the first launch (see [`BootFiles`]).
    files: OnceLock<std::result::Result<BootFiles, String>>,
    /// The files of the guest initramfs as a directory (for the footprint's
    /// VM disk), made on first use and removed with the platform.
    disk_tree: OnceLock<Option<tempfile::TempDir>>,
    /// Per kernel (the platform's, or a kernel fix's): the kernel image
    /// and the disk-boot initramfs (with that kernel's modules) as files.
    disk_boots: std::sync::Mutex<std::collections::HashMap<PathBuf, DiskBoot>>,
}

impl LinuxPlatform {
    /// Resolves the kernel now; a missing kernel shows in `available()`.
    pub fn new(opts: LinuxOptions) -> LinuxPlatform {
        let kernel = find_kernel(opts.kernel.as_deref()).map_err(|e| e.to_string());
        let program = vmm_binary().map_err(|e| e.to_string());
        LinuxPlatform { opts, kernel, program, files: OnceLock::new(), disk_tree: OnceLock::new(), disk_boots: Default::default() }
    }

    /// The kernel image and initramfs as files, written on first use.
    fn boot_files(&self) -> Result<&BootFiles> {
        let files = self.files.get_or_init(|| {
            let path = self.kernel.as_ref().map_err(Clone::clone)?;
            let image = prepare_kernel(path, self.opts.boot_bzimage).map_err(|e| e.to_string())?;
            let initramfs = guest_initramfs().map_err(|e| e.to_string())?;
            let dir = tempfile::Builder::new().prefix("versus-vm-linux-").tempdir().map_err(|e| format!("cannot make a temp dir for the kernel: {e}"))?;
            let files = BootFiles { dir };
            std::fs::write(files.kernel(), &*image).map_err(|e| format!("cannot write the kernel to {}: {e}", files.kernel().display()))?;
            std::fs::write(files.initrd(), &*initramfs).map_err(|e| format!("cannot write the initramfs to {}: {e}", files.initrd().display()))?;
            Ok(files)
        });
        files.as_ref().map_err(|e| LaunchError::Vm(e.clone()))
    }

    /// The kernel image and disk-boot initramfs for `kernel` (`None`: the
    /// platform's), written once each, in the platform's temp dir.
    fn disk_boot_files(&self, kernel: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
        let files = self.boot_files()?;
        let source = match kernel {
            Some(k) => k.to_path_buf(),
            None => self.kernel.clone().map_err(LaunchError::Vm)?,
        };
        let mut cache = self.disk_boots.lock().map_err(|_| LaunchError::Vm("the disk-boot file cache is poisoned".into()))?;
        let n = cache.len();
        let made = cache.entry(source.clone()).or_insert_with(|| {
            let modules = disk_modules(&source)?;
            let kernel_file = if kernel.is_some() {
                let image = prepare_kernel(&source, self.opts.boot_bzimage).map_err(|e| e.to_string())?;
                let f = files.dir.path().join(format!("kernel-{n}"));
                std::fs::write(&f, &*image).map_err(|e| format!("cannot write the kernel to {}: {e}", f.display()))?;
                f
            } else {
                files.kernel()
            };
            let initrd = disk_initramfs(&modules).map_err(|e| e.to_string())?;
            let f = files.dir.path().join(format!("initramfs-disk-{n}.cpio"));
            std::fs::write(&f, &initrd).map_err(|e| format!("cannot write the initramfs to {}: {e}", f.display()))?;
            Ok((kernel_file, f))
        });
        made.clone().map_err(LaunchError::Unsupported)
    }

    /// `versus-vmm` arguments booting `files` with the workload `args`.
    fn vmm_args(&self, files: &BootFiles, args: &[String], ksm: bool) -> Vec<String> {
        self.vmm_args_with(&files.kernel(), &files.initrd(), None, args, ksm)
    }

    /// `versus-vmm` arguments booting `kernel` and `initrd`, with `disk`
    /// as its root when given, and the workload `args`.
    fn vmm_args_with(&self, kernel: &Path, initrd: &Path, disk: Option<&Path>, args: &[String], ksm: bool) -> Vec<String> {
        let emulated = matches!(crate::host::kvm_mode(), KvmMode::Pvm);
        let mut extra = self.opts.extra_cmdline.clone();
        if emulated {
            extra = format!("{EMULATION_WORKAROUNDS} {extra}");
        }
        if disk.is_some() {
            extra = format!("{} {extra}", disk_cmdline());
        }
        let kernel_log = self.opts.console || self.opts.kernel_log;
        let mut v: Vec<String> = ksm.then(|| "--ksm".to_string()).into_iter().collect();
        v.extend([
            "linux".to_string(),
            "--kernel".into(),
            kernel.display().to_string(),
            "--initrd".into(),
            initrd.display().to_string(),
            "--mem".into(),
            self.opts.mem_mib.to_string(),
            "--cmdline".into(),
            // A disk boot loads the virtio modules: `nomodule` (which
            // disables module loading) is left out for it only.
            if disk.is_some() { cmdline(args, kernel_log, &extra).replacen(" nomodule", "", 1) } else { cmdline(args, kernel_log, &extra) },
        ]);
        if self.opts.boot_bzimage {
            v.push("--boot-bzimage".into());
        }
        if self.opts.console {
            v.push("--console".into());
        }
        if emulated {
            v.push("--hide-unemulated".into());
        }
        if let Some(d) = disk {
            v.push("--disk".into());
            v.push(d.display().to_string());
        }
        v
    }

    /// A directory with the guest initramfs's files: /init (the workload
    /// program) and the empty dev, proc and sys.
    fn disk_tree(&self) -> Option<PathBuf> {
        let t = self.disk_tree.get_or_init(|| {
            let d = tempfile::Builder::new().prefix("versus-vm-linux-tree-").tempdir().ok()?;
            for sub in ["dev", "proc", "sys"] {
                std::fs::create_dir(d.path().join(sub)).ok()?;
            }
            crate::workload::write_executable(&d.path().join("init"), crate::workload::GUEST_BINARY).ok()?;
            Some(d)
        });
        t.as_ref().map(|d| d.path().to_path_buf())
    }

    /// The kernel this platform boots.
    pub fn kernel_path(&self) -> Option<&Path> {
        self.kernel.as_ref().ok().map(|p| p.as_path())
    }
}

impl Platform for LinuxPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        versus_vmm::vm::available().map_err(Unavailable::NoKvm)?;
        self.kernel.as_ref().map_err(|e| Unavailable::Missing(e.clone()))?;
        let program = self.program.as_ref().map_err(|e| Unavailable::Host(e.clone()))?;
        match program.missing() {
            Some(why) => Err(Unavailable::Missing(why)),
            None => Ok(()),
        }
    }

    /// The kernel, shared; and (synthetic: vm-linux boots from its
    /// initramfs) a VM disk holding the initramfs's files.
    fn storage(&self) -> Vec<Storage> {
        let (Ok(kernel), Some(tree)) = (&self.kernel, self.disk_tree()) else {
            return Vec::new();
        };
        vec![Storage::Disk { shared: vec![kernel.clone()], tree, synthetic: true }]
    }

    /// It boots from a raw ext4 disk of the image (virtio-blk); a qcow2
    /// overlay is a disk it does not read (versus-vmm serves raw images only).
    fn image_mode(&self) -> ImageMode {
        ImageMode::Disk { boots: true }
    }

    fn guest_kernel(&self) -> Option<PathBuf> {
        self.kernel.as_ref().ok().cloned()
    }

    fn representative(&self) -> std::result::Result<(), String> {
        match not_representative_reason(&crate::host::kvm_mode(), crate::host::KvmSpeed::of_this_host()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            format!("kernel: {}", self.kernel.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|e| e.clone())),
            format!(
                "boot phases: vmm_spawn (the VMM process's vfork-like clone + execve), vmm (reading the kernel and initramfs files, KVM_CREATE_VM, loading, to vCPU start), kernel (to /init's boot-done port write), init (to READY on ttyS1, received by versus); guest RAM {} MiB, 1 vCPU",
                self.opts.mem_mib
            ),
            "call: a getpid system call in the guest kernel".into(),
            "the VMM is its own process (versus-vmm, static), one per guest, as for vm-bare: mem.host is that process's PSS (guest RAM it touched included), mem.vmm its resident memory outside guest RAM, mem.cgroup the charge of its own memory cgroup".into(),
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
        // Preparation, before the clock: the kernel to load and the
        // initramfs as files the VMM process reads (written once).
        let files = self.boot_files()?;
        let program = self.program.as_ref().map_err(|e| LaunchError::Unsupported(e.clone()))?;
        let args = match &spec.root {
            None => self.vmm_args(files, &spec.workload.guest_args(), spec.ksm_merge),
            Some(InstanceRoot::Disk { path, kernel, initrd }) => {
                let (k, i) = self.disk_boot_files(kernel.as_deref())?;
                let i = initrd.clone().unwrap_or(i);
                self.vmm_args_with(&k, &i, Some(path), &spec.workload.guest_args(), spec.ksm_merge)
            }
            Some(other) => return Err(LaunchError::Unsupported(format!("vm-linux boots an OS image from a raw disk, not from {other:?}"))),
        };
        let start = now_ns();
        let mut child = program.spawn(args, spec.timeout, Controls::needs(spec.cgroup, &spec.limits))?;
        let deadline = Instant::now() + spec.timeout;
        let mut vmm = VmmLog::default();
        let t_ready = loop {
            match child.channel.recv(deadline, "signal ready", spec.timeout)? {
                Some((Received::Ready { .. }, t)) => break t,
                Some((Received::Log(l), _)) => match l.strip_prefix("console ") {
                    Some(c) if self.opts.console => eprintln!("{c}"),
                    Some(_) => {}
                    None => {
                        vmm.absorb(&l);
                    }
                },
                Some(_) => {}
                None => return Err(child.crash_error("the VMM process exited before the guest signalled ready")),
            }
        };
        let t_spawned = vmm.mark("start").unwrap_or(start).clamp(start, t_ready);
        let t_vmm = vmm.mark("vmm").unwrap_or(t_spawned).clamp(t_spawned, t_ready);
        let t_kernel = vmm.mark("kernel").unwrap_or(t_ready).clamp(t_vmm, t_ready);
        let boot = Boot::from_marks(start, &[(PHASES[0], t_spawned), (PHASES[1], t_vmm), (PHASES[2], t_kernel), (PHASES[3], t_ready)]);
        let mut inst = VmmProcessInstance::new(child, boot, vmm.guest_ram);
        inst.echo_console = self.opts.console;
        Ok(Box::new(inst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_boot_carries_its_kernels_modules_or_says_where_they_are_missing() {
        let t = tempfile::tempdir().unwrap();
        let k = t.path().join("vmlinuz-9.9-cloud");
        std::fs::write(&k, b"k").unwrap();
        let e = disk_modules(&k).unwrap_err();
        assert!(e.contains("modules-9.9-cloud") && e.contains("harness/fetch-kernel"), "{e}");
        let m = t.path().join("modules-9.9-cloud");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("modules.order"), "virtio\nvirtio_mmio\n").unwrap();
        std::fs::write(m.join("virtio.ko"), b"a").unwrap();
        std::fs::write(m.join("virtio_mmio.ko"), b"b").unwrap();
        let mods = disk_modules(&k).unwrap();
        assert_eq!(mods.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["virtio", "virtio_mmio"]);
        let e = initramfs::parse(&disk_initramfs(&mods).unwrap()).unwrap();
        let order = e.iter().find(|x| x.name == "lib/modules/modules.order").unwrap();
        assert_eq!(order.data, b"virtio\nvirtio_mmio\n");
        assert!(e.iter().any(|x| x.name == "lib/modules/virtio_mmio.ko" && x.data == b"b"));
        assert!(e.iter().any(|x| x.name == "init"), "the guest's own /init is still there");
        assert_eq!(disk_cmdline(), "root=/dev/vda rw init=/versus-init");
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
        let native = crate::host::KvmSpeed {
            cpl0_iters_per_s: Some(3.6e9),
            cpl3_iters_per_s: Some(3.7e9),
            host_iters_per_s: Some(3.8e9),
            user_to_supervisor_ratio: Some(1.03),
            verdict: Some("native".into()),
            ..Default::default()
        };
        assert!(not_representative_reason(&KvmMode::Pvm, &native).unwrap().contains("kvm_pvm"));
        assert!(not_representative_reason(&KvmMode::Hardware { module: "kvm_intel".into(), nested_host: false }, &native).is_none());
    }

    #[test]
    fn guest_initramfs_has_init_and_console() {
        let a = guest_initramfs().unwrap();
        let e = initramfs::parse(&a).unwrap();
        let init = e.iter().find(|e| e.name == "init").expect("/init");
        assert_eq!(init.data, crate::workload::GUEST_BINARY);
        assert_eq!(init.mode, initramfs::S_IFREG | 0o755);
        let console = e.iter().find(|e| e.name == "dev/console").expect("/dev/console");
        assert_eq!((console.mode & initramfs::S_IFMT, console.rdev), (initramfs::S_IFCHR, (5, 1)));
        for d in ["dev", "proc", "sys"] {
            assert!(e.iter().any(|x| x.name == d && x.is_dir()), "{d}/");
        }
        // The guest program must carry the /init mode.
        let needle = b"versus.args=";
        assert!(init.data.windows(needle.len()).any(|w| w == needle), "the embedded guest program has no /init mode (harness/guest/src/init.rs)");
    }
}
