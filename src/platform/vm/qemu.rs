//! `qemu`: QEMU (`qemu-system-x86_64 -M microvm`, `-M q35` where microvm is
//! missing) with `-accel kvm`, booting the same kernel and initramfs as
//! `vm-linux` with the same command line: COM1 is the console, COM2 carries
//! the workload protocol (the guest's /init hands /dev/ttyS1 to the
//! workload as fd 3); QEMU writes COM2 to the channel pipe versus gave it as
//! fd 3. Guest RAM is a memory-backend-memfd object (`versus-ram`), the
//! only mapping of QEMU named `/memfd:memory-backend-memfd`, so that it is
//! found in QEMU's smaps and `mem.vmm` is QEMU's memory outside it.
//!
//! QEMU starts paused (`-S`) with a QMP socket: `vmm` runs from its spawn
//! until QMP answers (machine built, kernel and initramfs loaded), `guest`
//! from QMP's `cont` to READY received. Teardown is QMP `quit` and the
//! reaping of the process.
//!
//! Where guest kernel code is emulated (kvm_pvm) it is skipped with the
//! same reason as `vm-linux`. For a host without hardware KVM (and for the
//! tests there) `VERSUS_QEMU_ACCEL=tcg` runs it on QEMU's own emulator,
//! marked not representative; `VERSUS_QEMU` names the binary and
//! `VERSUS_QEMU_MACHINE` the machine (an emulated hardware-KVM host under
//! test uses these).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::smaps;
use crate::measure::Boot;
use crate::platform::cgroup::Controls;
use crate::platform::child::{spawn_command, ChildWorkload};
use crate::platform::registry::PlatformOptions;
use crate::platform::vm::linux::{find_kernel, guest_initramfs, not_representative_reason, DEFAULT_MEM_MIB};
use crate::platform::{Finished, Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable, VmmMemory};
use versus_vmm::linux::cmdline;

/// QEMU booting the same kernel and initramfs.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "qemu",
    article: "a QEMU VM",
    summary: "QEMU (-M microvm, -accel kvm) booting the same kernel and initramfs as vm-linux: the reference VMM",
    colour: (0xCC, 0x79, 0xA7),
    group: Group::Vmm,
    isolation: Isolation::Vm,
    guest: Guest::OwnKernel,
    memory: MemoryAccounting::VmmProcess,
    baseline: false,
};

/// Boot phases, in order.
pub const PHASES: [&str; 2] = ["vmm", "guest"];

/// The QOM id of the guest-RAM backend.
pub const RAM_ID: &str = "versus-ram";
/// What QEMU calls every memfd backend's file (its mapping is
/// `/memfd:memory-backend-memfd (deleted)`, whatever the object's id).
pub const RAM_MAPPING: &str = "memfd:memory-backend-memfd";

/// The registry's constructor.
pub fn create(opts: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(QemuPlatform::new(QemuOptions { kernel: opts.kernel.clone(), force: opts.force, ..QemuOptions::from_env() })?))
}

/// How QEMU accelerates the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// QEMU's own emulator: for hosts without hardware KVM; never
    /// representative.
    Tcg,
}

/// Options of the `qemu` platform.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    pub kernel: Option<PathBuf>,
    pub force: bool,
    pub accel: Accel,
    /// `None`: microvm where QEMU has it, else q35.
    pub machine: Option<String>,
    /// The binary (`VERSUS_QEMU`); else qemu-system-x86_64 on PATH.
    pub binary: Option<PathBuf>,
    pub mem_mib: u64,
}

impl QemuOptions {
    /// Defaults, with `VERSUS_QEMU`, `VERSUS_QEMU_ACCEL` and
    /// `VERSUS_QEMU_MACHINE` applied.
    pub fn from_env() -> QemuOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        QemuOptions {
            kernel: None,
            force: false,
            accel: if var("VERSUS_QEMU_ACCEL").as_deref() == Some("tcg") { Accel::Tcg } else { Accel::Kvm },
            machine: var("VERSUS_QEMU_MACHINE"),
            binary: var("VERSUS_QEMU").map(PathBuf::from),
            mem_mib: DEFAULT_MEM_MIB,
        }
    }
}

/// The `qemu` platform.
pub struct QemuPlatform {
    opts: QemuOptions,
    binary: PathBuf,
    version: String,
    kernel: std::result::Result<PathBuf, String>,
    machine: String,
    /// The initramfs written to a file, once (removed with the platform).
    initrd: OnceLock<std::result::Result<tempfile::TempPath, String>>,
}

/// Machines QEMU knows (`-M help`).
fn machines(binary: &Path) -> Vec<String> {
    let mut c = Command::new(binary);
    c.args(["-M", "help"]);
    match crate::platform::command::run(c, Duration::from_secs(10), "qemu -M help") {
        Ok(o) => o.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(String::from)).collect(),
        Err(_) => Vec::new(),
    }
}

impl QemuPlatform {
    pub fn new(opts: QemuOptions) -> std::result::Result<QemuPlatform, Unavailable> {
        let binary = match &opts.binary {
            Some(b) => b.clone(),
            None => crate::host::find_peer("qemu-system-x86_64").ok_or_else(|| {
                Unavailable::Missing("qemu-system-x86_64 is not installed: apt-get install qemu-system-x86 (harness/setup-test-host does)".into())
            })?,
        };
        let version = crate::host::program_version(&binary).ok_or_else(|| Unavailable::Missing(format!("{} does not answer --version", binary.display())))?;
        let machine = match &opts.machine {
            Some(m) => m.clone(),
            None => {
                // microvm under TCG finds no usable clock (no PIT, HPET or
                // kvmclock there): q35 is the emulator's machine.
                let have = machines(&binary);
                if opts.accel == Accel::Kvm && have.iter().any(|m| m == "microvm") {
                    "microvm".into()
                } else {
                    "q35".into()
                }
            }
        };
        let kernel = find_kernel(opts.kernel.as_deref()).map_err(|e| e.to_string());
        Ok(QemuPlatform { opts, binary, version, kernel, machine, initrd: OnceLock::new() })
    }

    /// The machine QEMU runs (`microvm` or `q35`).
    pub fn machine(&self) -> &str {
        &self.machine
    }

    fn initrd(&self) -> Result<PathBuf> {
        let f = self.initrd.get_or_init(|| {
            let img = guest_initramfs().map_err(|e| e.to_string())?;
            let mut f = tempfile::Builder::new().prefix("versus-qemu-initrd-").tempfile().map_err(|e| e.to_string())?;
            f.write_all(&img).map_err(|e| e.to_string())?;
            // Closed; the path lives (and the file with it) as long as the platform.
            Ok(f.into_temp_path())
        });
        f.as_ref().map(|f| f.to_path_buf()).map_err(|e| LaunchError::Unsupported(format!("writing the guest initramfs for QEMU: {e}")))
    }

    fn machine_arg(&self) -> String {
        let mut m = self.machine.clone();
        m.push_str(",memory-backend=");
        m.push_str(RAM_ID);
        m
    }

    /// The QEMU command line of one launch.
    pub fn command(&self, kernel: &Path, initrd: &Path, args: &[String], dir: &Path) -> Command {
        let mut c = Command::new(&self.binary);
        let mem = format!("{}M", self.opts.mem_mib);
        let (accel, cpu) = match self.opts.accel {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg", "max"),
        };
        c.args(["-M", &self.machine_arg(), "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", &mem]);
        c.arg("-object").arg(format!("memory-backend-memfd,id={RAM_ID},size={mem}"));
        c.args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S"]);
        c.arg("-qmp").arg(format!("unix:{},server=on,wait=off", dir.join("qmp.sock").display()));
        c.arg("-kernel").arg(kernel).arg("-initrd").arg(initrd);
        c.arg("-append").arg(cmdline(args, false, ""));
        // COM1: the console, to a file; COM2: the protocol, to fd 3.
        c.arg("-chardev").arg(format!("file,id=con,path={}", dir.join("console.log").display()));
        c.args(["-serial", "chardev:con"]);
        c.args(["-chardev", "file,id=ch,path=/proc/self/fd/3", "-device", "isa-serial,chardev=ch,index=1"]);
        c
    }
}

/// A QMP connection (QEMU's JSON monitor).
struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qmp {
    /// Connects (retrying while QEMU creates the socket), reads the
    /// greeting and enters command mode.
    fn connect(path: &Path, deadline: Instant, child: &mut ChildWorkload) -> Result<Qmp> {
        let s = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    if child.wait_exit(Duration::ZERO).is_ok() {
                        return Err(child.crash_error("exited before its QMP socket answered"));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => return Err(LaunchError::io(format!("connecting to QEMU's QMP socket {}", path.display()), e)),
            }
        };
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        s.set_read_timeout(Some(left)).map_err(|e| LaunchError::io("setting a QMP timeout", e))?;
        let w = s.try_clone().map_err(|e| LaunchError::io("cloning the QMP socket", e))?;
        let mut q = Qmp { r: BufReader::new(s), w };
        let greeting = q.line()?;
        if !greeting.contains("\"QMP\"") {
            return Err(LaunchError::Vm(format!("QEMU's QMP greeting is not one: {greeting}")));
        }
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn line(&mut self) -> Result<String> {
        let mut l = String::new();
        match self.r.read_line(&mut l) {
            Ok(0) => Err(LaunchError::Vm("QEMU closed its QMP socket".into())),
            Ok(_) => Ok(l),
            Err(e) => Err(LaunchError::io("reading QEMU's QMP socket", e)),
        }
    }

    /// Runs a command and waits for its return (events are skipped).
    fn execute(&mut self, cmd: &str) -> Result<()> {
        writeln!(self.w, "{{\"execute\": \"{cmd}\"}}").map_err(|e| LaunchError::io(format!("sending QMP {cmd}"), e))?;
        loop {
            let l = self.line()?;
            if l.contains("\"return\"") {
                return Ok(());
            }
            if l.contains("\"error\"") {
                return Err(LaunchError::Vm(format!("QMP {cmd} failed: {}", l.trim())));
            }
        }
    }
}

impl Platform for QemuPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        if self.opts.accel == Accel::Kvm {
            versus_vmm::vm::available().map_err(Unavailable::NoKvm)?;
        }
        self.kernel.as_ref().map(|_| ()).map_err(|e| Unavailable::Missing(e.clone()))
    }

    fn representative(&self) -> std::result::Result<(), String> {
        if self.opts.accel == Accel::Tcg {
            return Err("VERSUS_QEMU_ACCEL=tcg: QEMU emulates every guest instruction (TCG); these numbers test the plumbing, not QEMU's cost".into());
        }
        match not_representative_reason(&crate::host::kvm_mode(), crate::host::KvmSpeed::of_this_host()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn notes(&self) -> Vec<String> {
        vec![
            format!("VMM: {} ({}), -M {}, -accel {}", self.version, self.binary.display(), self.machine, if self.opts.accel == Accel::Kvm { "kvm" } else { "tcg" }),
            format!("kernel: {}; the same initramfs and command line as vm-linux; guest RAM {} MiB (a memfd backend, {RAM_MAPPING} in QEMU's maps), 1 vCPU", self.kernel.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|e| e.clone()), self.opts.mem_mib),
            "boot phases: vmm (QEMU started paused until its QMP monitor answers: machine built, kernel and initramfs loaded), guest (QMP cont to READY on COM2); teardown: QMP quit".into(),
            "memory: mem.host is the QEMU process's PSS (guest RAM it touched included), mem.vmm its resident memory outside the guest-RAM memfd".into(),
            "call: a getpid system call in the guest kernel".into(),
        ]
    }

    fn storage(&self) -> Vec<Storage> {
        match &self.kernel {
            Ok(k) => vec![Storage::Shared(vec![k.clone()])],
            Err(_) => Vec::new(),
        }
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root("qemu")?;
        if !self.opts.force {
            if let Err(why) = self.representative() {
                return Err(LaunchError::Unsupported(format!("{why}; pass --force (versus launch qemu --force) to boot it anyway")));
            }
        }
        let kernel = self.kernel.as_ref().map_err(|e| LaunchError::Unsupported(e.clone()))?;
        let initrd = self.initrd()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("versus-qemu-{}-", std::process::id()))
            .tempdir()
            .map_err(|e| LaunchError::io("creating QEMU's run directory", e))?;
        let cmd = self.command(kernel, &initrd, &spec.workload.guest_args(), dir.path());
        let what = crate::platform::command::display(&cmd);
        let deadline = Instant::now() + spec.timeout;
        let t0 = now_ns();
        let (child, _) = spawn_command(&cmd, 3, &format!("`{what}`"), spec.timeout, Controls::needs(spec.cgroup, &spec.limits))?;
        let mut inst = QemuInstance { child, qmp: None, dir, boot: Boot::default() };
        let mut qmp = Qmp::connect(&inst.dir.path().join("qmp.sock"), deadline, &mut inst.child)?;
        let t_vmm = now_ns();
        qmp.execute("cont")?;
        inst.qmp = Some(qmp);
        let (t_ready, _) = match inst.child.wait_ready() {
            Ok(v) => v,
            Err(e) => return Err(inst.with_console(e)),
        };
        inst.boot = Boot::from_marks(t0, &[(PHASES[0], t_vmm), (PHASES[1], t_ready)]);
        Ok(Box::new(inst))
    }
}

/// A running QEMU. Dropping it kills and reaps the process and removes its
/// run directory.
pub struct QemuInstance {
    child: ChildWorkload,
    qmp: Option<Qmp>,
    dir: tempfile::TempDir,
    boot: Boot,
}

impl QemuInstance {
    /// Adds the console's last lines to a failure.
    fn with_console(&self, e: LaunchError) -> LaunchError {
        let text = std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        if tail.is_empty() {
            return e;
        }
        LaunchError::Vm(format!("{e}; last console lines: {}", tail.join(" | ")))
    }
}

impl Instance for QemuInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }

    fn pids(&self) -> Vec<i32> {
        self.child.pid().map(|p| p.as_raw()).into_iter().collect()
    }

    fn vmm_memory(&self) -> Option<Result<VmmMemory>> {
        let Some(pid) = self.child.pid() else {
            return Some(Err(LaunchError::Vm("the QEMU process has exited".into())));
        };
        let pid = pid.as_raw();
        let read = || -> std::result::Result<VmmMemory, smaps::SmapsError> {
            let ram = smaps::ranges_named(pid, RAM_MAPPING)?;
            let s = smaps::split(pid, &ram)?;
            Ok(VmmMemory { rss_excl_guest: s.outside().rss, pss_excl_guest: s.outside().pss, guest_ram_rss: s.in_ranges.rss })
        };
        Some(read().map_err(|e| LaunchError::Vm(format!("reading QEMU's smaps: {e}"))))
    }

    fn finish(&mut self) -> Result<Finished> {
        match self.child.finish() {
            Ok(f) => Ok(f),
            Err(e) => Err(self.with_console(e)),
        }
    }

    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        if self.child.pid().is_some() {
            if let Some(q) = self.qmp.as_mut() {
                let _ = q.execute("quit");
            }
            self.qmp = None;
            self.child.stop(Duration::from_secs(5))?;
        }
        Ok((now_ns() - t) as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::KvmMode;

    #[test]
    fn command_line_has_both_uarts_named_ram_and_the_vm_linux_cmdline() {
        let p = QemuPlatform {
            opts: QemuOptions { kernel: None, force: false, accel: Accel::Kvm, machine: None, binary: None, mem_mib: 256 },
            binary: PathBuf::from("/usr/bin/qemu-system-x86_64"),
            version: "QEMU emulator version 7.2.19".into(),
            kernel: Ok(PathBuf::from("/k")),
            machine: "microvm".into(),
            initrd: OnceLock::new(),
        };
        let c = p.command(Path::new("/k"), Path::new("/i"), &["cpu".into(), "1000".into()], Path::new("/run/x"));
        let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let line = args.join(" ");
        assert!(line.contains("-M microvm,memory-backend=versus-ram -accel kvm"), "{line}");
        assert!(line.contains("memory-backend-memfd,id=versus-ram,size=256M"), "{line}");
        assert!(line.contains("-serial chardev:con") && line.contains("path=/proc/self/fd/3") && line.contains("isa-serial,chardev=ch,index=1"), "{line}");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(append, &cmdline(&["cpu".into(), "1000".into()], false, ""));
        assert!(line.contains(" -S ") && line.contains("server=on,wait=off"), "{line}");
    }

    #[test]
    fn pvm_and_tcg_are_not_representative() {
        assert!(not_representative_reason(&KvmMode::Pvm, &crate::host::KvmSpeed::default()).is_some());
        let mut o = QemuOptions::from_env();
        o.accel = Accel::Tcg;
        o.binary = Some(PathBuf::from("/nonexistent/qemu"));
        // A binary that does not answer is missing, said with the path.
        match QemuPlatform::new(o) {
            Err(e) => assert!(e.to_string().contains("/nonexistent/qemu"), "{e}"),
            Ok(_) => panic!("a missing QEMU binary must not make a platform"),
        }
    }
}
