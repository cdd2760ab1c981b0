//! A Linux guest (`vm-linux`): loads the kernel and initramfs files, builds
//! the VM, runs its vCPU and forwards the workload channel (COM2) to the
//! protocol fd.
//!
//! Marks, in the first line: `start` (before the kernel file is read),
//! `vmm` (the VM is built and its vCPU about to start); then
//! `LOG vmm boot kernel=<ns>` when /init signals boot-done. `READY` is the
//! guest's own line, forwarded: the harness stamps it on arrival as it does
//! a process's.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use versus_vmm::clock::now_ns;
use versus_vmm::devices::GuestEvent;
use versus_vmm::linux::boot::{Ended, LinuxVm, Next, VmConfig};
use versus_vmm::linux::read_kernel;
use versus_vmm::memory::RamOptions;

/// `linux --kernel PATH --initrd PATH [--mem MIB] [--cmdline STR] [--disk PATH] [--console] [--hide-unemulated] [--boot-bzimage]`.
#[derive(Debug, PartialEq)]
pub struct Args {
    /// A vmlinux (or a bzImage, whose vmlinux is extracted first).
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub mem_mib: u64,
    pub cmdline: String,
    /// Forward console (COM1) lines as `LOG console <line>`.
    pub console: bool,
    /// Hide CPUID features an emulating host cannot run.
    pub hide_unemulated: bool,
    /// Enter a bzImage at its own 64-bit entry instead of extracting its vmlinux.
    pub boot_bzimage: bool,
    /// A raw disk image (ext4 for vm-linux on an OS image) attached as a
    /// virtio-blk device on virtio-mmio, announced by ACPI tables. Raw
    /// only: this VMM does not read qcow2 (versus gives each instance a raw
    /// copy instead).
    pub disk: Option<PathBuf>,
}

impl Args {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
        let (mut kernel, mut initrd, mut mem_mib, mut cmdline) = (None, None, 256u64, String::new());
        let (mut console, mut hide_unemulated, mut boot_bzimage) = (false, false, false);
        let mut disk = None;
        let mut args = args.peekable();
        while let Some(a) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match a.as_str() {
                "--kernel" => kernel = Some(PathBuf::from(value("--kernel")?)),
                "--initrd" => initrd = Some(PathBuf::from(value("--initrd")?)),
                "--mem" => mem_mib = value("--mem")?.parse().ok().filter(|m| *m >= 16).ok_or("--mem needs a size in MiB, at least 16")?,
                "--cmdline" => cmdline = value("--cmdline")?,
                "--disk" => disk = Some(PathBuf::from(value("--disk")?)),
                "--console" => console = true,
                "--hide-unemulated" => hide_unemulated = true,
                "--boot-bzimage" => boot_bzimage = true,
                other => return Err(format!("unknown linux option `{other}`")),
            }
        }
        Ok(Args {
            kernel: kernel.ok_or("linux needs --kernel PATH")?,
            initrd: initrd.ok_or("linux needs --initrd PATH")?,
            mem_mib,
            cmdline,
            console,
            hide_unemulated,
            boot_bzimage,
            disk,
        })
    }
}

/// The vCPU thread's own bound, once the guest is ready: none to speak of.
/// Like a process, a ready guest runs until it ends or the harness stops
/// it (end of file on standard input, or a signal when it does not listen).
const UNBOUNDED: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Boots the guest and forwards its channel until it reboots (its workload
/// ended) or standard input reaches end of file (the harness stops it). It
/// must signal READY within `timeout`.
pub fn run(out: &mut File, args: &Args, ram: RamOptions, started: u64, timeout: Duration) -> Result<(), String> {
    let start = now_ns();
    let kernel = read_kernel(&args.kernel, args.boot_bzimage).map_err(|e| e.to_string())?;
    let initramfs = std::fs::read(&args.initrd).map_err(|e| format!("cannot read the initramfs {}: {e}", args.initrd.display()))?;
    let cfg = VmConfig {
        kernel: kernel.into(),
        initramfs: Some(initramfs.into()),
        cmdline: args.cmdline.clone(),
        mem_bytes: args.mem_mib << 20,
        console_echo: false,
        hide_unemulated: args.hide_unemulated,
        ram,
        disk: args.disk.clone(),
    };
    let vm = LinuxVm::build(&cfg).map_err(|e| e.to_string())?;
    // The kernel and initramfs are in guest memory now: give their copies back.
    drop(cfg);
    let ram = versus_vmm::memory::host_ranges(&vm.mem);
    let t_vmm = now_ns();
    let _ = out.write_all(super::vmm_line(&ram, started, start, &[("vmm", t_vmm)]).as_bytes());
    let ready_by = Instant::now() + timeout;
    let mut deadline = ready_by;
    let mut running = vm.start(UNBOUNDED, "end its workload");
    // The harness stops an idle guest by closing our standard input.
    let stop = running.stop_handle();
    let _ = std::thread::Builder::new().name("versus-vmm-stdin".into()).spawn(move || {
        super::wait_stdin_eof();
        stop.request();
    });
    loop {
        let line = match running.next(deadline) {
            Next::Event(GuestEvent::Channel(l)) => {
                if l.starts_with("READY") {
                    deadline = Instant::now() + UNBOUNDED;
                }
                l + "\n"
            }
            Next::Event(GuestEvent::BootDone { t_ns }) => format!("LOG vmm boot kernel={t_ns}\n"),
            Next::Event(GuestEvent::Console(l)) if args.console => format!("LOG console {l}\n"),
            Next::Event(_) => continue,
            Next::Ended(Ended::Reset | Ended::Stopped) => return Ok(()),
            Next::Ended(Ended::Failed(f)) => return Err(f.to_string()),
            Next::TimedOut => {
                let tail = running.console_tail();
                let _ = running.stop();
                return Err(format!(
                    "the guest did not signal ready within {timeout:?} (raise --timeout if it is just slow); last console lines: {}",
                    tail.join(" | ")
                ));
            }
        };
        if out.write_all(line.as_bytes()).is_err() {
            // The harness is gone: nobody reads the guest any more.
            let _ = running.stop();
            return Err("the protocol fd was closed".into());
        }
    }
}
