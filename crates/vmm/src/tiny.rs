//! A VM around a few bytes of machine code, for the raw KVM floor and the
//! CPL0/CPL3 speed fingerprint: same memory, tables and sregs as the bare
//! guest, no image, and one device that pauses on `PORT_EXIT`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_bindings::kvm_regs;
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use crate::abi::{self, PORT_EXIT};
use crate::bus::{Bus, DeviceResult, Flow, PioDevice};
use crate::layout::{self, Cpl};
use crate::memory::{self, GuestMemoryMmap};
use crate::vcpu::{self, RunLimit};
use crate::{vm, VmError};

/// Pauses the run loop on any write to `PORT_EXIT`.
struct ExitPort;

impl PioDevice for ExitPort {
    fn pio_read(&mut self, port: u16, _data: &mut [u8]) -> DeviceResult {
        Err(format!("port {port:#x} is write-only"))
    }
    fn pio_write(&mut self, _port: u16, _data: &[u8]) -> DeviceResult {
        Ok(Flow::Pause)
    }
}

/// A VM running `code` at `abi::IMAGE_BASE`. Fields drop in order: vCPU,
/// VM, bus, memory.
pub struct TinyVm {
    pub vcpu: VcpuFd,
    _vm: VmFd,
    bus: Bus,
    _mem: GuestMemoryMmap,
    regs: kvm_regs,
}

/// `out dx, eax` then `jmp $`: the first instruction exits (rdx preset).
pub const FLOOR_CODE: [u8; 3] = [0xef, 0xeb, 0xfe];

impl TinyVm {
    /// Creates the VM with `ram` bytes of guest memory, writes `code`, and
    /// sets up the vCPU at `cpl` with `rdx = PORT_EXIT`, `rax = 0`.
    pub fn new(code: &[u8], cpl: Cpl, ram: u64) -> Result<TinyVm, VmError> {
        let vmfd = vm::create_vm()?;
        let mem = memory::allocate(&[(GuestAddress(0), ram as usize)])?;
        memory::register(&vmfd, &mem)?;
        layout::write_tables(&mem)?;
        mem.write_slice(code, GuestAddress(abi::IMAGE_BASE)).map_err(|e| VmError::Image(format!("writing code: {e}")))?;
        let cpu = vcpu::create_vcpu(&vmfd, 0)?;
        let s = cpu.get_sregs().map_err(|e| VmError::kvm("KVM_GET_SREGS", e))?;
        cpu.set_sregs(&layout::long_mode_sregs(s, cpl)).map_err(|e| VmError::kvm("KVM_SET_SREGS", e))?;
        let mut regs = layout::entry_regs(abi::IMAGE_BASE, abi::STACK_TOP - 8);
        regs.rdx = PORT_EXIT as u64;
        cpu.set_regs(&regs).map_err(|e| VmError::kvm("KVM_SET_REGS", e))?;
        let mut bus = Bus::new();
        bus.add_pio(PORT_EXIT, 1, Arc::new(Mutex::new(ExitPort))).map_err(|e| VmError::VmmProcess(e.to_string()))?;
        Ok(TinyVm { vcpu: cpu, _vm: vmfd, bus, _mem: mem, regs })
    }

    /// Runs from the entry point with `rcx = rcx` until the exit port is
    /// written.
    pub fn run_from_entry(&mut self, rcx: u64, timeout: Duration) -> Result<(), VmError> {
        let mut r = self.regs;
        r.rcx = rcx;
        self.vcpu.set_regs(&r).map_err(|e| VmError::kvm("KVM_SET_REGS", e))?;
        self.run(timeout)
    }

    /// Runs from where the vCPU is until the exit port is written.
    pub fn run(&mut self, timeout: Duration) -> Result<(), VmError> {
        vcpu::run(&mut self.vcpu, &self.bus, &RunLimit::new(timeout, "reach its exit port")).map(|_| ())
    }
}

/// The raw KVM floor of a launch: KVM_CREATE_VM, guest memory (the size of
/// a `vm-bare` `ready` guest), one vCPU in long mode at CPL3, first entry
/// to the first port-I/O exit; nothing else (no image, no protocol).
/// Returns the elapsed ns.
pub fn raw_floor_ns() -> Result<u64, VmError> {
    let ram = crate::bare::GuestRun { mode: crate::abi::mode::READY, param: 0 }.ram_bytes();
    let t = std::time::Instant::now();
    let mut vm = TinyVm::new(&FLOOR_CODE, Cpl::Three, ram)?;
    vm.run(Duration::from_secs(10))?;
    let ns = t.elapsed().as_nanos() as u64;
    drop(vm);
    Ok(ns)
}
