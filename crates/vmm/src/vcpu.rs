//! vCPU creation and the run loop: KVM_RUN, exit dispatch to the device
//! bus, and a deadline enforced by a per-thread POSIX timer whose signal
//! kicks the vCPU out of KVM_RUN (so a guest that loops forever never hangs
//! the host).

use std::cell::RefCell;
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};

use crate::bus::{Bus, Flow};
use crate::VmError;

/// KVM_CREATE_VCPU.
pub fn create_vcpu(vm: &VmFd, id: u64) -> Result<VcpuFd, VmError> {
    vm.create_vcpu(id).map_err(|e| VmError::kvm("KVM_CREATE_VCPU", e))
}

static CPUID: OnceLock<CpuId> = OnceLock::new();

/// The host's KVM-supported CPUID (queried once per process).
pub fn supported_cpuid() -> Result<&'static CpuId, VmError> {
    if let Some(c) = CPUID.get() {
        return Ok(c);
    }
    let c = crate::vm::kvm()?.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(|e| VmError::kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    let _ = CPUID.set(c);
    CPUID.get().ok_or_else(|| VmError::VmmProcess("the CPUID table vanished".into()))
}

/// Gives the vCPU the CPUID KVM supports on this host (what a guest sees
/// when it executes CPUID).
pub fn set_supported_cpuid(vcpu: &VcpuFd) -> Result<(), VmError> {
    vcpu.set_cpuid2(supported_cpuid()?).map_err(|e| VmError::kvm("KVM_SET_CPUID2", e))
}

/// Why [`run`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paused {
    /// A device answered [`Flow::Pause`].
    ByDevice,
    /// The guest executed HLT (only with [`RunLimit::hlt_pauses`]).
    Hlt,
}

/// The bound on one [`run`]: a deadline, and what the guest was expected to
/// do by then (for the timeout error).
#[derive(Debug, Clone)]
pub struct RunLimit {
    pub deadline: Instant,
    pub what: &'static str,
    pub timeout: Duration,
    /// Return [`Paused::Hlt`] on HLT instead of failing.
    pub hlt_pauses: bool,
}

impl RunLimit {
    pub fn new(timeout: Duration, what: &'static str) -> RunLimit {
        RunLimit { deadline: Instant::now() + timeout, what, timeout, hlt_pauses: false }
    }
}

/// Runs the vCPU until a device pauses it, the deadline passes, an
/// interrupt (Ctrl-C) is requested, or the guest does something no device
/// expects (an error naming the exit, port/address and guest RIP).
pub fn run(vcpu: &mut VcpuFd, bus: &Bus, limit: &RunLimit) -> Result<Paused, VmError> {
    let _kick = Kicker::arm(limit.deadline)?;
    loop {
        let exit = vcpu.run();
        let err = match exit {
            Ok(VcpuExit::IoOut(port, data)) => match bus.pio_write(port, data) {
                Some(Ok(Flow::Continue)) => continue,
                Some(Ok(Flow::Pause)) => return Ok(Paused::ByDevice),
                Some(Err(reason)) => Err(("dev", port as u64, reason)),
                None => Err(("out", port as u64, data.len().to_string())),
            },
            Ok(VcpuExit::IoIn(port, data)) => match bus.pio_read(port, data) {
                Some(Ok(Flow::Continue)) => continue,
                Some(Ok(Flow::Pause)) => return Ok(Paused::ByDevice),
                Some(Err(reason)) => Err(("dev", port as u64, reason)),
                None => Err(("in", port as u64, data.len().to_string())),
            },
            Ok(VcpuExit::MmioRead(addr, data)) => match bus.mmio_read(addr, data) {
                Some(Ok(Flow::Continue)) => continue,
                Some(Ok(Flow::Pause)) => return Ok(Paused::ByDevice),
                Some(Err(reason)) => Err(("dev", addr, reason)),
                None => Err(("read", addr, data.len().to_string())),
            },
            Ok(VcpuExit::MmioWrite(addr, data)) => match bus.mmio_write(addr, data) {
                Some(Ok(Flow::Continue)) => continue,
                Some(Ok(Flow::Pause)) => return Ok(Paused::ByDevice),
                Some(Err(reason)) => Err(("dev", addr, reason)),
                None => Err(("write", addr, data.len().to_string())),
            },
            Ok(VcpuExit::Hlt) if limit.hlt_pauses => return Ok(Paused::Hlt),
            Ok(VcpuExit::Shutdown) => return Err(VmError::Shutdown { rip: rip(vcpu) }),
            Ok(other) => {
                let exit = format!("{other:?}");
                return Err(VmError::UnexpectedExit { exit, rip: rip(vcpu), detail: String::new() });
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                if crate::interrupt::requested() {
                    return Err(VmError::Interrupted);
                }
                if Instant::now() >= limit.deadline {
                    return Err(VmError::Timeout { what: limit.what, after: limit.timeout });
                }
                continue;
            }
            Err(e) => return Err(VmError::kvm("KVM_RUN", e)),
        };
        // An I/O exit nobody handles, or a device error.
        let (dir, where_, what) = match err {
            Err(t) => t,
            Ok(()) => continue,
        };
        let rip = rip(vcpu);
        return Err(match dir {
            "dev" => VmError::Device { port: where_, reason: what, rip },
            "in" | "out" => VmError::UnknownPort { port: where_ as u16, dir, size: what.parse().unwrap_or(0), rip },
            _ => VmError::Mmio { addr: where_, dir, size: what.parse().unwrap_or(0), rip },
        });
    }
}

/// The guest RIP now (0 when it cannot be read).
pub fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The kick: a per-thread CLOCK_MONOTONIC timer delivering a real-time signal
// to this thread. Its handler does nothing; its only effect is that KVM_RUN
// returns EINTR. It repeats every KICK_PERIOD while armed, so a signal that
// lands between two KVM_RUN calls is never a lost wake-up.

const KICK_PERIOD: Duration = Duration::from_millis(20);

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

static HANDLER: Once = Once::new();

struct ThreadTimer(libc::timer_t);

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        // SAFETY: the timer was created by timer_create on this thread and is
        // deleted exactly once, here.
        unsafe { libc::timer_delete(self.0) };
    }
}

thread_local! {
    static TIMER: RefCell<Option<ThreadTimer>> = const { RefCell::new(None) };
}

fn set_timer(t: libc::timer_t, first: Duration, period: Duration) -> Result<(), VmError> {
    let ts = |d: Duration| libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as libc::c_long };
    let spec = libc::itimerspec { it_interval: ts(period), it_value: ts(first) };
    // SAFETY: `t` is a live timer of this thread; `spec` is a valid itimerspec.
    if unsafe { libc::timer_settime(t, 0, &spec, std::ptr::null_mut()) } != 0 {
        return Err(VmError::VmmProcess(format!("timer_settime: {}", std::io::Error::last_os_error())));
    }
    Ok(())
}

/// Arms this thread's kick timer; disarms it when dropped.
struct Kicker(libc::timer_t);

impl Kicker {
    fn arm(deadline: Instant) -> Result<Kicker, VmError> {
        let mut err = None;
        HANDLER.call_once(|| {
            if let Err(e) = vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick) {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            return Err(VmError::VmmProcess(format!("cannot install the vCPU kick signal handler: {e}")));
        }
        let t = TIMER.with(|cell| -> Result<libc::timer_t, VmError> {
            let mut slot = cell.borrow_mut();
            if let Some(t) = slot.as_ref() {
                return Ok(t.0);
            }
            // SAFETY: zeroed sigevent is a valid starting value; the fields
            // set below select delivery of `kick_signal` to this thread.
            let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
            sev.sigev_notify = libc::SIGEV_THREAD_ID;
            sev.sigev_signo = kick_signal();
            // SAFETY: the gettid system call has no preconditions. (Made
            // directly: a static glibc link of the `gettid` wrapper left a
            // null function pointer in the static versus-vmm.)
            sev.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
            let mut t: libc::timer_t = std::ptr::null_mut();
            // SAFETY: `sev` and `t` are valid for the call; the timer is
            // owned by the thread-local and deleted when the thread ends.
            if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut t) } != 0 {
                return Err(VmError::VmmProcess(format!("timer_create: {}", std::io::Error::last_os_error())));
            }
            *slot = Some(ThreadTimer(t));
            Ok(t)
        })?;
        let first = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)).max(Duration::from_micros(10));
        set_timer(t, first, KICK_PERIOD)?;
        Ok(Kicker(t))
    }
}

impl Drop for Kicker {
    fn drop(&mut self) {
        let _ = set_timer(self.0, Duration::ZERO, Duration::ZERO);
    }
}
