//! The contract between the VMM and the kernel-less guest (`harness/bare`):
//! guest-physical layout, the boot argument block, the host-call ports and
//! the guest modes. This file is `no_std`-clean: the guest includes this very
//! file (`#[path]`), so both sides always agree.
//!
//! Host calls (port I/O at CPL3 with IOPL 3; any other port is rejected):
//!
//! | port | access | meaning |
//! |---|---|---|
//! | `PORT_LINE` | `out` dword `len` | the guest wrote one protocol line (`READY`, `RESULT`, `LOG`, `ABORT`, `PROBE`) of `len` bytes at `MAILBOX_ADDR` |
//! | `PORT_CALL` | `in` dword | the trivial host call of the `call` workload: returns the instance id (the analogue of getpid) |
//! | `PORT_EXIT` | `out` dword | the guest is done: `EXIT_DONE`, or `EXIT_IDLE` (park me until stopped) |

/// Guest-physical (= guest-virtual, identity mapped) addresses.
pub const GDT_ADDR: u64 = 0x1000;
/// The TSS (0x68 bytes) followed by its I/O permission bitmap (8 KiB, all
/// ports allowed, so that every port access reaches the VMM, which decides)
/// and the bitmap's 0xff terminator.
pub const TSS_ADDR: u64 = 0x4000;
pub const TSS_LIMIT: u64 = 0x68 + 8192;
pub const BOOT_ARGS_ADDR: u64 = 0x2000;
pub const MAILBOX_ADDR: u64 = 0x3000;
pub const MAILBOX_SIZE: u64 = 0x1000;
/// Page tables: PML4, PDPT, 4 PDs (first 4 GiB in 2 MiB pages), and one 4 KiB
/// page table for the first 2 MiB (page 0 unmapped: a null guard; the
/// VMM's own pages supervisor-only).
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
pub const PD_ADDR: u64 = 0xb000;
pub const PT0_ADDR: u64 = 0xf000;
/// Where the guest image is linked (`--image-base`) and loaded.
pub const IMAGE_BASE: u64 = 0x10_0000;
/// The image must end below this.
pub const IMAGE_LIMIT: u64 = 0x30_0000;
/// The stack grows down from here (1 MiB).
pub const STACK_TOP: u64 = 0x40_0000;
/// The heap (workload memory) starts here and ends at the end of RAM.
pub const HEAP_BASE: u64 = 0x40_0000;
/// The identity map covers this much; RAM is smaller, so an access between
/// RAM's end and here reaches the VMM as an MMIO exit.
pub const MAPPED_LIMIT: u64 = 4 << 30;
/// The most guest RAM a bare guest gets (below `MAPPED_LIMIT`, leaving a
/// mapped hole above RAM for out-of-RAM probes).
pub const MAX_RAM: u64 = 3 << 30;

pub const PORT_LINE: u16 = 0x7e0;
pub const PORT_CALL: u16 = 0x7e1;
pub const PORT_EXIT: u16 = 0x7e2;
pub const PORT_FIRST: u16 = PORT_LINE;
pub const PORT_COUNT: u16 = 3;

pub const EXIT_DONE: u32 = 0;
pub const EXIT_IDLE: u32 = 1;

pub const BOOT_MAGIC: u64 = 0x5645_5253_5553_4231; // "VERSUSB1"

/// A dword in the (user-readable) boot block page that the VMM sets to
/// non-zero to ask a running stress neighbour to finish now. The guest
/// polls it with a plain memory read: stopping costs no VM exit.
pub const STOP_FLAG_ADDR: u64 = BOOT_ARGS_ADDR + 0x800;

/// The guest's modes: the five workloads, then test and probe modes (one
/// image serves all).
pub mod mode {
    pub const READY: u32 = 0;
    pub const CPU: u32 = 1;
    pub const MEM: u32 = 2;
    pub const CALL: u32 = 3;
    pub const IDLE: u32 = 4;
    /// Executes `ud2` (an exception with no IDT: a triple fault).
    pub const FAULT: u32 = 0x100;
    /// Spins forever without signalling ready.
    pub const LOOP: u32 = 0x101;
    /// Writes to an I/O port no device serves (`param` = the port).
    pub const BADPORT: u32 = 0x102;
    /// Reads guest-physical `param` MiB (outside RAM).
    pub const OOB_READ: u32 = 0x103;
    /// Writes guest-physical `param` MiB (outside RAM).
    pub const OOB_WRITE: u32 = 0x104;
    /// Signals ready, then panics (the panic handler sends ABORT).
    pub const PANIC: u32 = 0x105;
    /// Kernel-less isolation probes: emits PROBE lines (`kernel.shared`,
    /// `dev.cpu_identity`) and exits.
    pub const PROBE: u32 = 0x200;
    /// Signals ready, then tries to leave user mode with the instruction
    /// `param` of [`super::supervisor`]; first logs `site=<addr>` (where the
    /// instruction is). If it returns, sends `PROBE vm.supervisor
    /// result=exposed` and exits.
    pub const PROBE_SUPERVISOR: u32 = 0x201;
    /// Signals ready, then reads (`param & 1 == 0`) or writes a dword at
    /// guest-physical `(param >> 1)` MiB. If it returns, sends `PROBE
    /// vm.mem_outside_ram result=exposed` with the value and exits.
    pub const PROBE_MEM: u32 = 0x202;
    /// Signals ready, then accesses port `param & 0xffff` with a dword (`in`
    /// when bit 16 is set, else `out`). If it returns, sends `PROBE
    /// vm.unknown_port result=exposed` and exits.
    pub const PROBE_PORT: u32 = 0x203;
    /// Noisy neighbour: SHA-256 chain for `param` ms (rdtsc clock) or until
    /// [`super::STOP_FLAG_ADDR`] is set; RESULT `stress-cpu`, checksum =
    /// rounds done (hex).
    pub const STRESS_CPU: u32 = 0x300;
    /// Noisy neighbour: copies between two 16 MiB halves of a 32 MiB heap
    /// buffer for `param` ms; RESULT `stress-mem`, checksum = MiB copied.
    pub const STRESS_MEM: u32 = 0x301;
}

/// Heap a `STRESS_MEM` guest copies within (two halves).
pub const STRESS_MEM_BYTES: u64 = 32 << 20;

/// The attempts of `mode::PROBE_SUPERVISOR` (its `param`), each a way out of
/// CPL3 that must fault (no IDT: a triple fault, KVM_EXIT_SHUTDOWN) at the
/// instruction itself. `CONTROL` runs an unprivileged instruction instead:
/// the probe's positive control.
pub mod supervisor {
    pub const HLT: u32 = 0;
    pub const READ_CR3: u32 = 1;
    pub const RDMSR: u32 = 2;
    pub const LGDT: u32 = 3;
    pub const INT80: u32 = 4;
    pub const SYSCALL: u32 = 5;
    pub const IRET_TO_CPL0: u32 = 6;
    pub const WRITE_PAGE_TABLES: u32 = 7;
    pub const CONTROL: u32 = 0xff;
    /// Every attempt with what it tries, in report order.
    pub const ATTEMPTS: [(u32, &str); 8] = [
        (HLT, "hlt"),
        (READ_CR3, "mov rax, cr3"),
        (RDMSR, "rdmsr (IA32_TSC)"),
        (LGDT, "lgdt"),
        (INT80, "int 0x80"),
        (SYSCALL, "syscall"),
        (IRET_TO_CPL0, "iretq to a CPL0 code segment"),
        (WRITE_PAGE_TABLES, "write to its own page tables (supervisor-only PML4)"),
    ];
}

/// The boot argument block at `BOOT_ARGS_ADDR`, written by the VMM.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BootArgs {
    pub magic: u64,
    pub mode: u32,
    pub param: u32,
    /// Guest TSC frequency in kHz (from KVM_GET_TSC_KHZ), to turn rdtsc
    /// ticks into ns.
    pub tsc_khz: u64,
    pub heap_base: u64,
    pub heap_size: u64,
    /// What `PORT_CALL` answers.
    pub instance_id: u64,
    /// Guest RAM size in bytes.
    pub ram_size: u64,
}

impl BootArgs {
    /// The block as bytes, for copying into guest memory.
    pub fn to_bytes(self) -> [u8; core::mem::size_of::<BootArgs>()] {
        let mut out = [0u8; core::mem::size_of::<BootArgs>()];
        let mut put = |off: usize, v: &[u8]| out[off..off + v.len()].copy_from_slice(v);
        put(0, &self.magic.to_le_bytes());
        put(8, &self.mode.to_le_bytes());
        put(12, &self.param.to_le_bytes());
        put(16, &self.tsc_khz.to_le_bytes());
        put(24, &self.heap_base.to_le_bytes());
        put(32, &self.heap_size.to_le_bytes());
        put(40, &self.instance_id.to_le_bytes());
        put(48, &self.ram_size.to_le_bytes());
        out
    }
}
