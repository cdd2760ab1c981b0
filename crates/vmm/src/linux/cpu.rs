//! vCPU and VM state for the Linux 64-bit boot protocol: GDT, identity page
//! tables, segment and control registers, general registers, FPU, boot MSRs,
//! LAPIC LINT0/LINT1, CPUID, and the in-kernel irqchip and PIT.
//!
//! Values follow Documentation/arch/x86/boot.rst ("64-bit boot protocol") and
//! Firecracker's x86_64 set-up.

use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_pit_config, kvm_regs, kvm_segment, CpuId, Msrs, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::bootparams::layout;
use super::error::{LinuxError, Result};

/// GDT selectors the boot protocol asks for: `__BOOT_CS` = 0x10, `__BOOT_DS`
/// = 0x18 (entries 2 and 3); entry 4 is a TSS (KVM wants a usable TR).
pub const BOOT_CS: u16 = 0x10;
pub const BOOT_DS: u16 = 0x18;
pub const BOOT_TSS: u16 = 0x20;

/// A GDT entry from flags, base and limit (the kernel's GDT_ENTRY macro).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The boot GDT: null, null, 64-bit code, data, TSS.
pub const GDT: [u64; 5] = [0, 0, gdt_entry(0xa09b, 0, 0xfffff), gdt_entry(0xc093, 0, 0xfffff), gdt_entry(0x808b, 0, 0xfffff)];

/// The KVM segment described by GDT entry `index`.
pub fn segment(index: usize) -> kvm_segment {
    let e = GDT[index];
    let g = ((e >> 55) & 1) as u8;
    let limit = (((e >> 32) & 0x000f_0000) | (e & 0xffff)) as u32;
    let present = ((e >> 47) & 1) as u8;
    kvm_segment {
        base: ((e >> 16) & 0x00ff_ffff) | ((e >> 32) & 0xff00_0000),
        limit: if g == 1 { (limit << 12) | 0xfff } else { limit },
        selector: (index * 8) as u16,
        type_: ((e >> 40) & 0xf) as u8,
        present,
        dpl: ((e >> 45) & 3) as u8,
        db: ((e >> 54) & 1) as u8,
        s: ((e >> 44) & 1) as u8,
        l: ((e >> 53) & 1) as u8,
        g,
        avl: ((e >> 52) & 1) as u8,
        unusable: if present == 1 { 0 } else { 1 },
        padding: 0,
    }
}

const X86_CR0_PE: u64 = 1;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Writes the GDT, an empty IDT and the identity page tables (first
/// [`layout::IDENTITY_MAPPED`] bytes with 2 MiB pages) into guest memory.
pub fn write_tables(mem: &GuestMemoryMmap) -> Result<()> {
    let w = |what: &'static str, addr: u64, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(addr)).map_err(|e| LinuxError::GuestWrite { what, addr, detail: e.to_string() })
    };
    let gdt: Vec<u8> = GDT.iter().flat_map(|e| e.to_le_bytes()).collect();
    w("GDT", layout::GDT_ADDR, &gdt)?;
    w("IDT", layout::IDT_ADDR, &0u64.to_le_bytes())?;
    w("PML4", layout::PML4, &(layout::PDPT | 0x03).to_le_bytes())?;
    w("PDPT", layout::PDPT, &(layout::PD | 0x03).to_le_bytes())?;
    let pd: Vec<u8> = (0..512u64).flat_map(|i| ((i << 21) | 0x83).to_le_bytes()).collect();
    w("PD", layout::PD, &pd)
}

/// Segment, control and table registers for 64-bit entry.
pub fn setup_sregs(vcpu: &VcpuFd) -> Result<()> {
    let mut s = vcpu.get_sregs().map_err(LinuxError::kvm("KVM_GET_SREGS"))?;
    s.gdt.base = layout::GDT_ADDR;
    s.gdt.limit = (GDT.len() * 8 - 1) as u16;
    s.idt.base = layout::IDT_ADDR;
    s.idt.limit = 7;
    let code = segment((BOOT_CS / 8) as usize);
    let data = segment((BOOT_DS / 8) as usize);
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = segment((BOOT_TSS / 8) as usize);
    s.cr0 |= X86_CR0_PE | X86_CR0_PG;
    s.cr3 = layout::PML4;
    s.cr4 |= X86_CR4_PAE;
    s.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&s).map_err(LinuxError::kvm("KVM_SET_SREGS"))
}

/// General registers: RIP at the entry, RSI at the zero page.
pub fn setup_regs(vcpu: &VcpuFd, entry: u64) -> Result<()> {
    let r = kvm_regs { rflags: 0x2, rip: entry, rsp: layout::BOOT_STACK, rbp: layout::BOOT_STACK, rsi: layout::ZERO_PAGE, ..Default::default() };
    vcpu.set_regs(&r).map_err(LinuxError::kvm("KVM_SET_REGS"))
}

/// x87 control word and MXCSR at their reset values.
pub fn setup_fpu(vcpu: &VcpuFd) -> Result<()> {
    let f = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    vcpu.set_fpu(&f).map_err(LinuxError::kvm("KVM_SET_FPU"))
}

/// The boot MSRs (Firecracker's set): SYSENTER/SYSCALL MSRs cleared, TSC 0,
/// fast strings enabled, MTRRs enabled with write-back default.
pub fn boot_msrs() -> Vec<kvm_msr_entry> {
    const MSR_IA32_SYSENTER_CS: u32 = 0x174;
    const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
    const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
    const MSR_STAR: u32 = 0xc000_0081;
    const MSR_LSTAR: u32 = 0xc000_0082;
    const MSR_CSTAR: u32 = 0xc000_0083;
    const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
    const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
    const MSR_IA32_TSC: u32 = 0x10;
    const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
    const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
    let e = |index, data| kvm_msr_entry { index, data, ..Default::default() };
    vec![
        e(MSR_IA32_SYSENTER_CS, 0),
        e(MSR_IA32_SYSENTER_ESP, 0),
        e(MSR_IA32_SYSENTER_EIP, 0),
        e(MSR_STAR, 0),
        e(MSR_CSTAR, 0),
        e(MSR_KERNEL_GS_BASE, 0),
        e(MSR_SYSCALL_MASK, 0),
        e(MSR_LSTAR, 0),
        e(MSR_IA32_TSC, 0),
        e(MSR_IA32_MISC_ENABLE, 1),
        e(MSR_MTRR_DEF_TYPE, (1 << 11) | 6),
    ]
}

/// Sets the boot MSRs; returns the indices KVM did not accept (some KVM
/// flavours, PVM among them, refuse a few; Linux copes without them).
pub fn setup_msrs(vcpu: &VcpuFd) -> Result<Vec<u32>> {
    let entries = boot_msrs();
    let mut refused = Vec::new();
    // One at a time, so that one refused MSR does not hide the others.
    for e in entries {
        let msrs = Msrs::from_entries(&[e]).map_err(|x| LinuxError::Load(format!("MSR list: {x:?}")))?;
        match vcpu.set_msrs(&msrs) {
            Ok(1) => {}
            Ok(_) | Err(_) => refused.push(e.index),
        }
    }
    Ok(refused)
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn set_apic_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// LINT0 as ExtINT (the 8259 PIC's output) and LINT1 as NMI, as the BIOS
/// leaves them on a PC.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<()> {
    let mut l = vcpu.get_lapic().map_err(LinuxError::kvm("KVM_GET_LAPIC"))?;
    let get = |regs: &[std::os::raw::c_char], off: usize| -> u32 {
        u32::from_le_bytes([regs[off] as u8, regs[off + 1] as u8, regs[off + 2] as u8, regs[off + 3] as u8])
    };
    let put = |regs: &mut [std::os::raw::c_char], off: usize, v: u32| {
        for (i, b) in v.to_le_bytes().iter().enumerate() {
            regs[off + i] = *b as std::os::raw::c_char;
        }
    };
    let lvt0 = get(&l.regs, APIC_LVT0);
    put(&mut l.regs, APIC_LVT0, set_apic_delivery_mode(lvt0, APIC_MODE_EXTINT));
    let lvt1 = get(&l.regs, APIC_LVT1);
    put(&mut l.regs, APIC_LVT1, set_apic_delivery_mode(lvt1, APIC_MODE_NMI));
    vcpu.set_lapic(&l).map_err(LinuxError::kvm("KVM_SET_LAPIC"))
}

/// CPUID feature bits (leaf 1) that versus may hide.
pub const CPUID1_ECX_CX16: u32 = 1 << 13;
pub const CPUID1_ECX_XSAVE: u32 = 1 << 26;
pub const CPUID1_ECX_OSXSAVE: u32 = 1 << 27;
pub const CPUID1_ECX_AVX: u32 = 1 << 28;
pub const CPUID1_ECX_HYPERVISOR: u32 = 1 << 31;

/// Adapts KVM's supported CPUID for vCPU `id` of a one-vCPU guest: APIC id
/// and logical count in leaf 1, the hypervisor bit set. With
/// `hide_unemulated` (hosts where guest kernel code is emulated, whose
/// emulator cannot run XRSTOR or CMPXCHG16B), XSAVE/AVX and CX16 are hidden
/// so that the kernel does not use them. (kvm_pvm overrides leaf 1 from the
/// host, so the command line carries `EMULATION_WORKAROUNDS` there too.)
pub fn guest_cpuid(supported: &CpuId, id: u8, hide_unemulated: bool) -> CpuId {
    let mut c = supported.clone();
    for e in c.as_mut_slice() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | ((id as u32) << 24) | (1 << 16);
                e.ecx |= CPUID1_ECX_HYPERVISOR;
                if hide_unemulated {
                    e.ecx &= !(CPUID1_ECX_XSAVE | CPUID1_ECX_OSXSAVE | CPUID1_ECX_AVX | CPUID1_ECX_CX16);
                }
            }
            0xb | 0x1f => {
                // x2APIC id of this vCPU in every topology level.
                e.edx = id as u32;
            }
            _ => {}
        }
    }
    c
}

/// The in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT; must run before the
/// vCPUs are created.
pub fn setup_irqchip(vm: &VmFd) -> Result<()> {
    // Intel needs a TSS region in guest physical space for real-mode
    // emulation; harmless elsewhere. Above the MMIO gap start, below 4 GiB.
    let _ = vm.set_tss_address(0xfffb_d000);
    vm.create_irq_chip().map_err(LinuxError::kvm("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
    vm.create_pit2(pit).map_err(LinuxError::kvm("KVM_CREATE_PIT2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_boot_segments() {
        let cs = segment(2);
        assert_eq!((cs.selector, cs.l, cs.db, cs.present, cs.s, cs.type_, cs.limit), (BOOT_CS, 1, 0, 1, 1, 0xb, 0xffff_ffff));
        let ds = segment(3);
        assert_eq!((ds.selector, ds.l, ds.db, ds.type_, ds.g), (BOOT_DS, 0, 1, 3, 1));
        let tr = segment(4);
        assert_eq!((tr.selector, tr.type_, tr.s, tr.present), (BOOT_TSS, 0xb, 0, 1));
        assert_eq!(segment(0).unusable, 1);
        // Linux's GDT_ENTRY_INIT(0xa09b, 0, 0xfffff) for __KERNEL_CS.
        assert_eq!(GDT[2], 0x00af_9b00_0000_ffff);
    }

    #[test]
    fn page_tables_identity_map_first_gib() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(layout::PML4)).unwrap();
        assert_eq!(pml4, layout::PDPT | 3);
        let pde: u64 = mem.read_obj(GuestAddress(layout::PD + 8 * 511)).unwrap();
        assert_eq!(pde, (511 << 21) | 0x83);
        let gdt: u64 = mem.read_obj(GuestAddress(layout::GDT_ADDR + 16)).unwrap();
        assert_eq!(gdt, GDT[2]);
    }

    #[test]
    fn cpuid_hides_what_the_emulator_cannot_run() {
        let mut c = CpuId::new(1).unwrap();
        c.as_mut_slice()[0].function = 1;
        c.as_mut_slice()[0].ecx = CPUID1_ECX_XSAVE | CPUID1_ECX_CX16 | 1;
        c.as_mut_slice()[0].ebx = 0xffff_ffff;
        let kept = guest_cpuid(&c, 0, false);
        assert_eq!(kept.as_slice()[0].ecx, CPUID1_ECX_XSAVE | CPUID1_ECX_CX16 | 1 | CPUID1_ECX_HYPERVISOR);
        assert_eq!(kept.as_slice()[0].ebx >> 16, 0x0001);
        let hidden = guest_cpuid(&c, 0, true);
        assert_eq!(hidden.as_slice()[0].ecx, 1 | CPUID1_ECX_HYPERVISOR);
    }
}
