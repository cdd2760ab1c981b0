//! The kernel-less versus guest. The VMM loads this static ELF at
//! `abi::IMAGE_BASE`, enters `_start` in 64-bit mode at CPL3 with IOPL 3 and a
//! stack, and leaves a boot argument block at `abi::BOOT_ARGS_ADDR` saying
//! what to run. Everything else goes through port I/O host calls (see
//! `crates/vmm/src/abi.rs`, included below). The workloads are the very
//! same code as the static workload program's (`versus_workload`).
//!
//! Time: `rdtsc` (allowed at CPL3), converted to ns with the TSC frequency
//! the VMM passes in the boot block (KVM_GET_TSC_KHZ).
//!
//! This file is the image's entry and its use of the hardware; what can be
//! tested off the guest (the memory functions, the clock, the evidence
//! encoding) is the library, `lib.rs`.
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt::{self, Write};

use versus_workload::protocol::{self, Report};
use versus_workload::{self as wl};

#[path = "../../../crates/vmm/src/abi.rs"]
#[allow(dead_code)]
mod abi;

use abi::{mode, BootArgs};
use versus_bare::{Clock, Enc};

fn outl(port: u16, v: u32) {
    // SAFETY: port I/O at CPL3 is allowed by IOPL 3 and traps to the VMM; it
    // touches no guest memory.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) };
}

fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as `outl`.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags)) };
    v
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc reads the time-stamp counter; allowed at CPL3 (CR4.TSD clear).
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags)) };
    ((hi as u64) << 32) | lo as u64
}

/// Writes one line into the mailbox page, then hands it to the host.
struct Mailbox {
    len: usize,
}

impl Write for Mailbox {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        if self.len + b.len() > abi::MAILBOX_SIZE as usize {
            return Err(fmt::Error);
        }
        // SAFETY: the mailbox page is guest RAM mapped user-writable by the
        // VMM; the bounds were checked above.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), (abi::MAILBOX_ADDR as *mut u8).add(self.len), b.len()) };
        self.len += b.len();
        Ok(())
    }
}

fn send(f: impl FnOnce(&mut Mailbox) -> fmt::Result) {
    let mut m = Mailbox { len: 0 };
    if f(&mut m).is_err() {
        m.len = 0;
        let _ = m.write_str("ABORT protocol line longer than the mailbox\n");
    }
    outl(abi::PORT_LINE, m.len as u32);
}

fn exit(code: u32) -> ! {
    loop {
        outl(abi::PORT_EXIT, code);
    }
}

fn result(name: &'static str, param: u32, elapsed_ns: u64, checksum: u64) {
    let r = Report { workload: name, param, elapsed_ns, checksum, started_ns: None };
    send(|m| protocol::write_result(m, &r));
}

fn heap(args: &BootArgs, mib: u32) -> &'static mut [u8] {
    let want = (mib as u64) << 20;
    if want > args.heap_size {
        send(|m| writeln!(m, "ABORT the workload needs {mib} MiB but the VMM gave a heap of {} bytes", args.heap_size));
        exit(abi::EXIT_DONE);
    }
    // SAFETY: the VMM maps [heap_base, heap_base+heap_size) as guest RAM
    // for this guest alone; nothing else refers to it.
    unsafe { core::slice::from_raw_parts_mut(args.heap_base as *mut u8, want as usize) }
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: the VMM writes a BootArgs at this address before entry; the
    // page is mapped user-readable.
    let args: BootArgs = unsafe { core::ptr::read_volatile(abi::BOOT_ARGS_ADDR as *const BootArgs) };
    if args.magic != abi::BOOT_MAGIC {
        send(|m| m.write_str("ABORT bad boot block magic\n"));
        exit(abi::EXIT_DONE);
    }
    let clock = Clock { khz: args.tsc_khz };
    let p = args.param;
    let ready = || send(|m| protocol::write_ready(m, None));
    match args.mode {
        mode::READY => ready(),
        mode::CPU => {
            ready();
            let t = rdtsc();
            let d = wl::cpu(p);
            let el = clock.ns(rdtsc() - t);
            result("cpu", p, el, wl::checksum64(&d));
        }
        mode::MEM => {
            let buf = heap(&args, p);
            ready();
            let t = rdtsc();
            let acc = wl::touch_pages(buf);
            let el = clock.ns(rdtsc() - t);
            result("mem", p, el, acc);
        }
        mode::CALL => {
            ready();
            let t = rdtsc();
            let acc = wl::call_loop(p, || inl(abi::PORT_CALL) as u64);
            let el = clock.ns(rdtsc() - t);
            result("call", p, el, acc);
        }
        mode::IDLE => {
            let buf = heap(&args, p);
            let t = rdtsc();
            let acc = wl::touch_pages(buf);
            let el = clock.ns(rdtsc() - t);
            ready();
            result("idle", p, el, acc);
            exit(abi::EXIT_IDLE);
        }
        mode::FAULT => {
            send(|m| m.write_str("LOG faulting on purpose (ud2)\n"));
            // SAFETY: deliberately raises #UD; with no IDT the guest triple faults.
            unsafe { asm!("ud2", options(nostack, noreturn)) };
        }
        mode::LOOP => loop {
            core::hint::spin_loop();
        },
        mode::BADPORT => {
            outl(p as u16, 0x42);
        }
        mode::OOB_READ => {
            // SAFETY: deliberately reads outside guest RAM; the VMM stops us.
            let v = unsafe { core::ptr::read_volatile(((p as u64) << 20) as *const u32) };
            send(|m| writeln!(m, "LOG read {v:#x} outside RAM"));
        }
        mode::OOB_WRITE => {
            // SAFETY: deliberately writes outside guest RAM; the VMM stops us.
            unsafe { core::ptr::write_volatile(((p as u64) << 20) as *mut u32, 0xdead_beef) };
        }
        mode::PANIC => {
            ready();
            panic!("panicking on purpose (mode {:#x})", args.mode);
        }
        mode::PROBE => {
            ready();
            probe();
        }
        mode::PROBE_SUPERVISOR => {
            ready();
            probe_supervisor(p);
        }
        mode::PROBE_MEM => {
            ready();
            let addr = ((p >> 1) as u64) << 20;
            if p & 1 == 0 {
                // SAFETY: deliberately reads `addr` (normally outside RAM): the
                // VMM must stop us; if it returns, that is the finding.
                let v = unsafe { core::ptr::read_volatile(addr as *const u32) };
                probe_line("vm.mem_outside_ram", "exposed", format_args!("a dword read of {addr:#x} returned {v:#x}"));
            } else {
                // SAFETY: as above, a deliberate write.
                let back = unsafe {
                    core::ptr::write_volatile(addr as *mut u32, 0x5eed_f00d);
                    core::ptr::read_volatile(addr as *const u32)
                };
                probe_line("vm.mem_outside_ram", "exposed", format_args!("a dword write to {addr:#x} was accepted (reads back {back:#x})"));
            }
        }
        mode::PROBE_PORT => {
            ready();
            let port = (p & 0xffff) as u16;
            if p & 0x1_0000 != 0 {
                let v = inl(port);
                probe_line("vm.unknown_port", "exposed", format_args!("in from port {port:#x} returned {v:#x}"));
            } else {
                outl(port, 0x42);
                probe_line("vm.unknown_port", "exposed", format_args!("out to port {port:#x} was accepted"));
            }
        }
        mode::STRESS_CPU => {
            ready();
            let limit = p as u64 * args.tsc_khz;
            let t = rdtsc();
            let mut h = [0u8; 32];
            let mut rounds = 0u64;
            while rdtsc().wrapping_sub(t) < limit && !stop_requested() {
                for _ in 0..100 {
                    h = wl::sha256::digest(&h);
                }
                rounds += 100;
            }
            core::hint::black_box(h);
            result("stress-cpu", p, clock.ns(rdtsc().wrapping_sub(t)), rounds);
        }
        mode::STRESS_MEM => {
            let buf = heap(&args, (abi::STRESS_MEM_BYTES >> 20) as u32);
            ready();
            let limit = p as u64 * args.tsc_khz;
            let half = buf.len() / 2;
            let t = rdtsc();
            let mut mib = 0u64;
            let mut flip = false;
            while rdtsc().wrapping_sub(t) < limit && !stop_requested() {
                let (a, b) = buf.split_at_mut(half);
                if flip {
                    a.copy_from_slice(b);
                } else {
                    b.copy_from_slice(a);
                }
                flip = !flip;
                core::hint::black_box(&mut *buf);
                mib += (half >> 20) as u64;
            }
            result("stress-mem", p, clock.ns(rdtsc().wrapping_sub(t)), mib);
        }
        m => send(|w| writeln!(w, "ABORT unknown guest mode {m:#x}")),
    }
    exit(abi::EXIT_DONE)
}

fn cpuid(leaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: cpuid only writes the four registers; rbx is saved and
    // restored around it because LLVM reserves it.
    unsafe {
        asm!("mov {tmp:r}, rbx", "cpuid", "xchg {tmp:r}, rbx", tmp = out(reg) b, inout("eax") leaf => a, inout("ecx") 0u32 => c, out("edx") d, options(nostack));
    }
    [a, b, c, d]
}

fn read_cs() -> u16 {
    let cs: u16;
    // SAFETY: reading CS is allowed at every privilege level.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    cs
}

fn stop_requested() -> bool {
    // SAFETY: the boot block page is guest RAM mapped user-readable; the VMM
    // writes the flag from outside (hence volatile).
    unsafe { core::ptr::read_volatile(abi::STOP_FLAG_ADDR as *const u32) != 0 }
}

/// The probes the guest answers itself (the VMM-answered `vm.*` probes are
/// the `PROBE_*` modes, one launch each). Values are observations; versus
/// judges them against the host's.
fn probe() {
    // kernel.shared: there is no kernel under this code; CS is the VMM's
    // GDT user selector, not a host kernel's.
    let cs = read_cs();
    probe_line("kernel.shared", "observed", format_args!("kernel=none cs={cs:#x} cpl={}", cs & 3));
    // dev.cpu_identity: vendor (leaf 0), signature (leaf 1), brand string
    // (leaves 0x80000002..4).
    let l0 = cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&l0[1].to_le_bytes());
    vendor[4..8].copy_from_slice(&l0[3].to_le_bytes());
    vendor[8..].copy_from_slice(&l0[2].to_le_bytes());
    let sig = if l0[0] >= 1 { cpuid(1)[0] } else { 0 };
    let max_ext = cpuid(0x8000_0000)[0];
    let mut brand = [0u8; 48];
    let b = wl::cpu_brand(&mut brand);
    probe_line("dev.cpu_identity", "observed", format_args!("brand={} vendor={} sig={sig:#x} max_ext={max_ext:#x}", Enc(b), Enc(&vendor)));
}

// The ways out of user mode that `mode::PROBE_SUPERVISOR` tries (see
// `abi::supervisor`). Each `sup_*_site` label is the instruction that must
// fault; the guest logs its address so that the VMM can check the guest
// stopped exactly there.
core::arch::global_asm!(
    ".pushsection .text.sup, \"ax\"",
    ".global sup_hlt, sup_hlt_site",
    "sup_hlt:",
    "sup_hlt_site:",
    "hlt",
    "ret",
    ".global sup_cr3, sup_cr3_site",
    "sup_cr3:",
    "sup_cr3_site:",
    "mov rax, cr3",
    "ret",
    ".global sup_rdmsr, sup_rdmsr_site",
    "sup_rdmsr:",
    "mov ecx, 0x10",
    "sup_rdmsr_site:",
    "rdmsr",
    "ret",
    ".global sup_lgdt, sup_lgdt_site",
    "sup_lgdt:",
    "sub rsp, 16",
    "mov qword ptr [rsp], 0",
    "mov qword ptr [rsp + 8], 0",
    "sup_lgdt_site:",
    "lgdt [rsp]",
    "add rsp, 16",
    "ret",
    ".global sup_int80, sup_int80_site",
    "sup_int80:",
    "sup_int80_site:",
    "int 0x80",
    "ret",
    ".global sup_syscall, sup_syscall_site",
    "sup_syscall:",
    "sup_syscall_site:",
    "syscall",
    "ret",
    ".global sup_iret, sup_iret_site",
    "sup_iret:",
    "mov rax, rsp",
    "push 0x10",
    "push rax",
    "pushfq",
    "push 0x08",
    "lea rax, [rip + 2f]",
    "push rax",
    "sup_iret_site:",
    "iretq",
    "2:",
    "ret",
    ".global sup_pt, sup_pt_site",
    "sup_pt:",
    "mov rax, 0x9000",
    "sup_pt_site:",
    "or qword ptr [rax], 0",
    "ret",
    ".global sup_ctl, sup_ctl_site",
    "sup_ctl:",
    "sup_ctl_site:",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "ret",
    ".popsection",
);

extern "C" {
    fn sup_hlt() -> u64;
    fn sup_cr3() -> u64;
    fn sup_rdmsr() -> u64;
    fn sup_lgdt() -> u64;
    fn sup_int80() -> u64;
    fn sup_syscall() -> u64;
    fn sup_iret() -> u64;
    fn sup_pt() -> u64;
    fn sup_ctl() -> u64;
    static sup_hlt_site: u8;
    static sup_cr3_site: u8;
    static sup_rdmsr_site: u8;
    static sup_lgdt_site: u8;
    static sup_int80_site: u8;
    static sup_syscall_site: u8;
    static sup_iret_site: u8;
    static sup_pt_site: u8;
    static sup_ctl_site: u8;
}

fn probe_supervisor(which: u32) {
    use abi::supervisor as s;
    // Only the addresses of the labels are taken (no unsafe needed).
    let (f, site): (unsafe extern "C" fn() -> u64, u64) = {
        match which {
            s::HLT => (sup_hlt, core::ptr::addr_of!(sup_hlt_site) as u64),
            s::READ_CR3 => (sup_cr3, core::ptr::addr_of!(sup_cr3_site) as u64),
            s::RDMSR => (sup_rdmsr, core::ptr::addr_of!(sup_rdmsr_site) as u64),
            s::LGDT => (sup_lgdt, core::ptr::addr_of!(sup_lgdt_site) as u64),
            s::INT80 => (sup_int80, core::ptr::addr_of!(sup_int80_site) as u64),
            s::SYSCALL => (sup_syscall, core::ptr::addr_of!(sup_syscall_site) as u64),
            s::IRET_TO_CPL0 => (sup_iret, core::ptr::addr_of!(sup_iret_site) as u64),
            s::WRITE_PAGE_TABLES => (sup_pt, core::ptr::addr_of!(sup_pt_site) as u64),
            s::CONTROL => (sup_ctl, core::ptr::addr_of!(sup_ctl_site) as u64),
            other => {
                send(|m| writeln!(m, "ABORT unknown supervisor attempt {other}"));
                return;
            }
        }
    };
    send(|m| writeln!(m, "LOG site={site:#x}"));
    // SAFETY: each routine is self-contained (it restores the stack and
    // clobbers only caller-saved registers); the privileged ones are meant
    // to fault, which ends the guest.
    let v = unsafe { f() };
    let cs = read_cs();
    probe_line("vm.supervisor", "exposed", format_args!("attempt {which} at {site:#x} returned {v:#x}; CS is now {cs:#x} (CPL {})", cs & 3));
}

fn probe_line(id: &str, result: &str, evidence: fmt::Arguments<'_>) {
    let mut ev = protocol::LineBuf::<512>::new();
    let _ = ev.write_fmt(evidence);
    let ev = core::str::from_utf8(ev.as_bytes()).unwrap_or("(not utf-8)");
    send(|m| protocol::write_probe(m, id, result, ev));
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    send(|m| writeln!(m, "ABORT guest panic: {}", info.message()));
    exit(abi::EXIT_DONE)
}
