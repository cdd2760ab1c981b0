//! The kernel-less versus guest. The VMM loads this static ELF at
//! `abi::IMAGE_BASE`, enters `_start` in 64-bit mode at CPL3 with IOPL 3 and a
//! stack, and leaves a boot argument block at `abi::BOOT_ARGS_ADDR` saying
//! what to run. Everything else goes through port I/O host calls (see
//! `src/platform/vm/abi.rs`, included below). The workloads are the very
//! same code as the static workload program's (`versus_workload`).
//!
//! Time: `rdtsc` (allowed at CPL3), converted to ns with the TSC frequency
//! the VMM passes in the boot block (KVM_GET_TSC_KHZ).
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt::{self, Write};

use versus_workload::protocol::{self, Report};
use versus_workload::{self as wl};

#[path = "../../../src/platform/vm/abi.rs"]
#[allow(dead_code)]
mod abi;

mod mem;

use abi::{mode, BootArgs};

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

struct Clock {
    khz: u64,
}

impl Clock {
    fn ns(&self, ticks: u64) -> u64 {
        if self.khz == 0 {
            return 0;
        }
        (ticks as u128 * 1_000_000 / self.khz as u128) as u64
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
            probe(&args);
        }
        m => send(|w| writeln!(w, "ABORT unknown guest mode {m:#x}")),
    }
    exit(abi::EXIT_DONE)
}

/// Kernel-less isolation probes (extend here; one PROBE line each).
fn probe(args: &BootArgs) {
    // CPUID: what the guest learns about the host CPU.
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: cpuid leaf 0 only writes the four registers; rbx is saved and
    // restored around it because LLVM reserves it.
    unsafe {
        asm!("mov {tmp:r}, rbx", "cpuid", "xchg {tmp:r}, rbx", tmp = out(reg) b, inout("eax") 0u32 => a, out("ecx") c, out("edx") d, options(nostack));
    }
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&b.to_le_bytes());
    vendor[4..8].copy_from_slice(&d.to_le_bytes());
    vendor[8..].copy_from_slice(&c.to_le_bytes());
    let v = core::str::from_utf8(&vendor).unwrap_or("?");
    probe_line("cpuid_vendor", "exposed", format_args!("cpuid leaf 0: max leaf {a}, vendor {v}"));
    probe_line("guest_ram", "isolated", format_args!("guest RAM is {} bytes; accesses beyond it exit to the VMM", args.ram_size));
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
