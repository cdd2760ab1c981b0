//! The bare guest's machine state: GDT, TSS, identity page tables and the
//! long-mode special registers, at the addresses of [`super::abi`].

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};

use crate::abi::*;
use crate::memory::GuestMemoryMmap;
use crate::VmError;

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

const PTE_P: u64 = 1;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;

/// RFLAGS: reserved bit 1, IOPL 3 (port I/O allowed at CPL3), IF clear.
pub const RFLAGS_IOPL3: u64 = 0x2 | (3 << 12);

/// GDT selectors.
pub const SEL_CODE0: u16 = 0x08;
pub const SEL_DATA0: u16 = 0x10;
pub const SEL_CODE3: u16 = 0x18 | 3;
pub const SEL_DATA3: u16 = 0x20 | 3;
pub const SEL_TSS: u16 = 0x28;

/// The privilege level the guest is entered at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpl {
    /// Supervisor mode (emulated on kvm_pvm).
    Zero,
    /// User mode: where the bare guest runs.
    Three,
}

fn gdt() -> [u64; 7] {
    let tss_lo =
        (TSS_LIMIT & 0xffff) | (((TSS_LIMIT >> 16) & 0xf) << 48) | ((TSS_ADDR & 0xff_ffff) << 16) | (0x89u64 << 40) | (((TSS_ADDR >> 24) & 0xff) << 56);
    [
        0,
        0x00af_9a00_0000_ffff, // 64-bit code, DPL0
        0x00cf_9200_0000_ffff, // data, DPL0
        0x00af_fa00_0000_ffff, // 64-bit code, DPL3
        0x00cf_f200_0000_ffff, // data, DPL3
        tss_lo,                // 64-bit TSS (available), two slots
        TSS_ADDR >> 32,
    ]
}

/// Writes the GDT, an empty TSS and the page tables. Pages of the first
/// 2 MiB: page 0 absent (null guard), the VMM's tables supervisor-only, the
/// boot block and mailbox user read/write, the image and up user. Above
/// 2 MiB, 2 MiB user pages up to [`MAPPED_LIMIT`], RAM or not (an access
/// beyond RAM then reaches the VMM as an MMIO exit rather than a page
/// fault).
pub fn write_tables(mem: &GuestMemoryMmap) -> Result<(), VmError> {
    let w =
        |addr: u64, bytes: &[u8]| mem.write_slice(bytes, GuestAddress(addr)).map_err(|e| VmError::Image(format!("writing the page tables at {addr:#x}: {e}")));
    let mut buf = Vec::with_capacity(4096);
    for d in gdt() {
        buf.extend_from_slice(&d.to_le_bytes());
    }
    w(GDT_ADDR, &buf)?;
    // The TSS stays zero (fresh guest RAM is zero; nothing switches stacks)
    // except the I/O bitmap offset and the bitmap's terminator.
    w(TSS_ADDR + 0x66, &0x68u16.to_le_bytes())?;
    w(TSS_ADDR + TSS_LIMIT, &[0xff])?;

    let user = PTE_P | PTE_RW | PTE_US;
    let sup = PTE_P | PTE_RW;
    w(PML4_ADDR, &(PDPT_ADDR | user).to_le_bytes())?;
    buf.clear();
    let n_pd = MAPPED_LIMIT >> 30;
    for i in 0..n_pd {
        buf.extend_from_slice(&((PD_ADDR + i * 0x1000) | user).to_le_bytes());
    }
    w(PDPT_ADDR, &buf)?;
    buf.clear();
    for i in 0..(n_pd * 512) {
        let e = if i == 0 { PT0_ADDR | user } else { (i << 21) | user | PTE_PS };
        buf.extend_from_slice(&e.to_le_bytes());
    }
    w(PD_ADDR, &buf)?;
    buf.clear();
    for i in 0..512u64 {
        let a = i << 12;
        let e = if a == 0 {
            0
        } else if a == BOOT_ARGS_ADDR || (MAILBOX_ADDR..MAILBOX_ADDR + MAILBOX_SIZE).contains(&a) || a >= IMAGE_BASE {
            a | user
        } else {
            a | sup
        };
        buf.extend_from_slice(&e.to_le_bytes());
    }
    w(PT0_ADDR, &buf)
}

fn seg(selector: u16, type_: u8, dpl: u8, code64: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl,
        db: if code64 { 0 } else { 1 },
        s: 1,
        l: if code64 { 1 } else { 0 },
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Long-mode special registers with paging on, SSE enabled, no IDT (any
/// exception becomes a triple fault: a shutdown exit), entered at `cpl`.
pub fn long_mode_sregs(base: kvm_sregs, cpl: Cpl) -> kvm_sregs {
    let mut s = base;
    let (cs, ds, dpl) = match cpl {
        Cpl::Zero => (SEL_CODE0, SEL_DATA0, 0),
        Cpl::Three => (SEL_CODE3, SEL_DATA3, 3),
    };
    s.cs = seg(cs, 0xb, dpl, true);
    let data = seg(ds, 0x3, dpl, false);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = kvm_segment {
        base: TSS_ADDR,
        limit: TSS_LIMIT as u32,
        selector: SEL_TSS,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.ldt = kvm_segment { base: 0, limit: 0, selector: 0, type_: 0x2, present: 0, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 1, padding: 0 };
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = (gdt().len() * 8 - 1) as u16;
    s.idt.base = 0;
    s.idt.limit = 0;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    s.cr3 = PML4_ADDR;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s.efer = EFER_LME | EFER_LMA;
    s
}

/// General registers at entry: `rip`, the stack, IOPL 3.
pub fn entry_regs(rip: u64, rsp: u64) -> kvm_regs {
    kvm_regs { rip, rsp, rflags: RFLAGS_IOPL3, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_map_identity_with_a_null_guard() {
        let mem = crate::memory::allocate(&[(GuestAddress(0), 8 << 20)]).unwrap();
        write_tables(&mem).unwrap();
        let rd = |a: u64| mem.read_obj::<u64>(GuestAddress(a)).unwrap();
        assert_eq!(rd(PML4_ADDR) & !0xfff, PDPT_ADDR);
        assert_eq!(rd(PDPT_ADDR + 8 * 3) & !0xfff, PD_ADDR + 3 * 0x1000);
        // 2 MiB page 1 maps 2 MiB, user.
        assert_eq!(rd(PD_ADDR + 8), (2 << 20) | 0x87);
        // Page 0 absent, the page tables supervisor-only, the image user.
        assert_eq!(rd(PT0_ADDR), 0);
        assert_eq!(rd(PT0_ADDR + 8 * (PML4_ADDR >> 12)) & PTE_US, 0);
        assert_eq!(rd(PT0_ADDR + 8 * (IMAGE_BASE >> 12)), IMAGE_BASE | 7);
        // Last 2 MiB page below 4 GiB.
        assert_eq!(rd(PD_ADDR + 8 * 2047), (2047u64 << 21) | 0x87);
    }

    #[test]
    fn sregs_are_64_bit_user_mode() {
        let s = long_mode_sregs(kvm_sregs::default(), Cpl::Three);
        assert_eq!(s.cs.dpl, 3);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.ss.selector & 3, 3);
        assert_ne!(s.cr4 & CR4_OSFXSR, 0);
        assert_eq!(entry_regs(1, 2).rflags & 0x3000, 0x3000);
    }
}
