//! The Linux x86 boot protocol as a VMM without firmware speaks it (the
//! Firecracker way): the guest physical layout, the e820 map, the command
//! line, the initrd and the zero page (`struct boot_params`) that the kernel
//! finds in RSI at its 64-bit entry.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::error::{LinuxError, Result};
use super::kernel::{LoadedKernel, HDRS_MAGIC, HIMEM_START};

/// The guest physical layout below 1 MiB (as Firecracker's).
pub mod layout {
    /// GDT (4 entries).
    pub const GDT_ADDR: u64 = 0x500;
    /// An empty IDT (the kernel installs its own before enabling interrupts).
    pub const IDT_ADDR: u64 = 0x520;
    /// The zero page (`struct boot_params`).
    pub const ZERO_PAGE: u64 = 0x7000;
    /// Initial stack pointer (the kernel switches to its own at once).
    pub const BOOT_STACK: u64 = 0x8ff0;
    /// Identity page tables: PML4, PDPT, and one PD of 2 MiB pages.
    pub const PML4: u64 = 0x9000;
    pub const PDPT: u64 = 0xa000;
    pub const PD: u64 = 0xb000;
    /// How much the boot page tables identity-map (1 GiB: kernel, zero page,
    /// command line; the kernel builds its own tables right away).
    pub const IDENTITY_MAPPED: u64 = 1 << 30;
    /// The kernel command line.
    pub const CMDLINE: u64 = 0x2_0000;
    /// The kernel's COMMAND_LINE_SIZE on x86 (what a vmlinux accepts).
    pub const CMDLINE_MAX: usize = 2048;
    /// Start of the extended BIOS data area: low RAM ends here.
    pub const EBDA_START: u64 = 0x9_fc00;
    /// Where 32-bit PCI MMIO would start; RAM above it moves past 4 GiB.
    pub const MMIO_GAP_START: u64 = 0xc000_0000;
    pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
}

/// e820 entry types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// `type_of_loader` for a loader without an assigned id.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// loadflags bits.
pub const LOADED_HIGH: u8 = 0x01;
pub const KEEP_SEGMENTS: u8 = 0x40;
pub const CAN_USE_HEAP: u8 = 0x80;

/// One e820 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820 {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl E820 {
    /// How Linux prints this entry at boot
    /// (`BIOS-e820: [mem 0x...-0x...] usable`), end inclusive.
    pub fn kernel_log_line(&self) -> String {
        let kind = match self.kind {
            E820_RAM => "usable",
            E820_RESERVED => "reserved",
            3 => "ACPI data",
            4 => "ACPI NVS",
            5 => "unusable",
            _ => "type",
        };
        format!("BIOS-e820: [mem {:#018x}-{:#018x}] {kind}", self.addr, self.addr + self.size - 1)
    }
}

/// The e820 map of a guest with `mem_size` bytes of RAM: low RAM up to
/// the EBDA, then RAM from 1 MiB (split around the 32-bit MMIO gap when RAM
/// reaches it). The BIOS area 0x9fc00..1 MiB is left out (no firmware).
pub fn e820_map(mem_size: u64) -> Vec<E820> {
    let mut v = vec![E820 { addr: 0, size: layout::EBDA_START.min(mem_size), kind: E820_RAM }];
    if mem_size <= layout::MMIO_GAP_START {
        if mem_size > HIMEM_START {
            v.push(E820 { addr: HIMEM_START, size: mem_size - HIMEM_START, kind: E820_RAM });
        }
    } else {
        v.push(E820 { addr: HIMEM_START, size: layout::MMIO_GAP_START - HIMEM_START, kind: E820_RAM });
        v.push(E820 { addr: layout::MMIO_GAP_END, size: mem_size - layout::MMIO_GAP_START, kind: E820_RAM });
    }
    v
}

/// The regions to allocate (guest address, bytes) for `mem_size` of RAM.
pub fn memory_regions(mem_size: u64) -> Vec<(GuestAddress, usize)> {
    if mem_size <= layout::MMIO_GAP_START {
        vec![(GuestAddress(0), mem_size as usize)]
    } else {
        vec![(GuestAddress(0), layout::MMIO_GAP_START as usize), (GuestAddress(layout::MMIO_GAP_END), (mem_size - layout::MMIO_GAP_START) as usize)]
    }
}

/// Where an initrd went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Initrd {
    pub addr: u64,
    pub size: u64,
}

/// Places the initrd at the highest page-aligned address that fits below
/// both the end of low RAM and the kernel's `initrd_addr_max`, above the
/// kernel's working area.
pub fn load_initrd(mem: &GuestMemoryMmap, kernel: &LoadedKernel, initrd_addr_max: u64, data: &[u8]) -> Result<Initrd> {
    let low_end = mem.iter().next().map(|r| r.start_addr().raw_value() + r.len()).unwrap_or(0);
    let top = low_end.min(initrd_addr_max.saturating_add(1));
    let size = data.len() as u64;
    let floor = kernel.load_addr.raw_value().max(HIMEM_START) + kernel.init_size.max(kernel.end_addr - kernel.load_addr.raw_value());
    let addr =
        top.checked_sub(size).map(|a| a & !0xfff).filter(|&a| a >= floor).ok_or(LinuxError::MemoryTooSmall { mem_bytes: low_end, need_bytes: floor + size })?;
    mem.write_slice(data, GuestAddress(addr)).map_err(|e| LinuxError::GuestWrite { what: "initrd", addr, detail: e.to_string() })?;
    Ok(Initrd { addr, size })
}

/// Writes the NUL-terminated command line at [`layout::CMDLINE`].
pub fn load_cmdline(mem: &GuestMemoryMmap, cmdline: &str, max: usize) -> Result<()> {
    if cmdline.len() + 1 > max {
        return Err(LinuxError::CmdlineTooLong { len: cmdline.len(), max: max - 1 });
    }
    let mut b = cmdline.as_bytes().to_vec();
    b.push(0);
    mem.write_slice(&b, GuestAddress(layout::CMDLINE)).map_err(|e| LinuxError::GuestWrite {
        what: "command line",
        addr: layout::CMDLINE,
        detail: e.to_string(),
    })
}

/// The longest command line the kernel accepts (bzImage header
/// `cmdline_size`, protocol 2.06+; else 2048).
pub fn cmdline_max(kernel: &LoadedKernel) -> usize {
    match &kernel.setup_header {
        Some(h) if { h.version } >= 0x0206 && { h.cmdline_size } > 0 => ({ h.cmdline_size }) as usize + 1,
        _ => layout::CMDLINE_MAX,
    }
}

/// Highest address the kernel accepts for the initrd.
pub fn initrd_addr_max(kernel: &LoadedKernel) -> u64 {
    match &kernel.setup_header {
        Some(h) if { h.initrd_addr_max } != 0 => ({ h.initrd_addr_max }) as u64,
        _ => 0x7fff_ffff,
    }
}

/// Builds the zero page: the kernel's setup header (bzImage) or a minimal
/// one (vmlinux), the loader fields, command line, initrd and e820 map.
pub fn build_boot_params(kernel: &LoadedKernel, cmdline_len: usize, initrd: Option<Initrd>, e820: &[E820]) -> Result<boot_params> {
    let mut p = boot_params::default();
    let mut hdr =
        kernel.setup_header.unwrap_or_else(|| setup_header { boot_flag: 0xaa55, header: HDRS_MAGIC, kernel_alignment: 0x0100_0000, ..Default::default() });
    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.loadflags |= LOADED_HIGH;
    hdr.cmd_line_ptr = layout::CMDLINE as u32;
    hdr.cmdline_size = cmdline_len as u32;
    if let Some(i) = initrd {
        hdr.ramdisk_image = i.addr as u32;
        hdr.ramdisk_size = i.size as u32;
        p.ext_ramdisk_image = (i.addr >> 32) as u32;
        p.ext_ramdisk_size = (i.size >> 32) as u32;
    }
    p.hdr = hdr;
    if e820.len() > p.e820_table.len() {
        return Err(LinuxError::Load(format!("{} e820 entries exceed the zero page's {}", e820.len(), p.e820_table.len())));
    }
    for (slot, e) in p.e820_table.iter_mut().zip(e820) {
        *slot = boot_e820_entry { addr: e.addr, size: e.size, r#type: e.kind };
    }
    p.e820_entries = e820.len() as u8;
    Ok(p)
}

/// Writes the zero page at [`layout::ZERO_PAGE`].
pub fn write_boot_params(mem: &GuestMemoryMmap, p: &boot_params) -> Result<()> {
    mem.write_obj(*p, GuestAddress(layout::ZERO_PAGE)).map_err(|e| LinuxError::GuestWrite { what: "zero page", addr: layout::ZERO_PAGE, detail: e.to_string() })
}

/// Reads the zero page back (tests, diagnostics).
pub fn read_boot_params(mem: &GuestMemoryMmap) -> Result<boot_params> {
    mem.read_obj(GuestAddress(layout::ZERO_PAGE)).map_err(|e| LinuxError::GuestWrite {
        what: "zero page (read)",
        addr: layout::ZERO_PAGE,
        detail: e.to_string(),
    })
}

/// The e820 entries of a zero page.
pub fn e820_of(p: &boot_params) -> Vec<E820> {
    let n = (p.e820_entries as usize).min(p.e820_table.len());
    p.e820_table[..n].iter().map(|e| E820 { addr: e.addr, size: e.size, kind: e.r#type }).collect()
}

// boot_params is ByteValued (linux-loader implements it); keep the compiler
// checking that assumption here, where it is relied on.
const _: fn() = || {
    fn is_byte_valued<T: ByteValued>() {}
    is_byte_valued::<boot_params>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_small_guest() {
        let m = e820_map(256 << 20);
        assert_eq!(m, vec![E820 { addr: 0, size: 0x9fc00, kind: E820_RAM }, E820 { addr: 0x10_0000, size: (256 << 20) - 0x10_0000, kind: E820_RAM }]);
        assert_eq!(m[0].kernel_log_line(), "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable");
        assert_eq!(m[1].kernel_log_line(), "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable");
        assert_eq!(memory_regions(256 << 20), vec![(GuestAddress(0), 256 << 20)]);
    }

    #[test]
    fn e820_large_guest_skips_the_mmio_gap() {
        let m = e820_map(4 << 30);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1], E820 { addr: 0x10_0000, size: 0xc000_0000 - 0x10_0000, kind: E820_RAM });
        assert_eq!(m[2], E820 { addr: 1 << 32, size: (4 << 30) - 0xc000_0000, kind: E820_RAM });
        let total: u64 = memory_regions(4 << 30).iter().map(|r| r.1 as u64).sum();
        assert_eq!(total, 4 << 30);
    }

    #[test]
    fn boot_params_fields() {
        let k = LoadedKernel {
            format: crate::linux::kernel::KernelFormat::Elf,
            entry: GuestAddress(0x100_0000),
            load_addr: GuestAddress(0x100_0000),
            end_addr: 0x300_0000,
            setup_header: None,
            init_size: 0x200_0000,
            version: None,
        };
        let e = e820_map(128 << 20);
        let p = build_boot_params(&k, 42, Some(Initrd { addr: 0x700_0000, size: 0x1234 }), &e).unwrap();
        assert_eq!({ p.hdr.boot_flag }, 0xaa55);
        assert_eq!({ p.hdr.header }, HDRS_MAGIC);
        assert_eq!({ p.hdr.type_of_loader }, 0xff);
        assert_eq!({ p.hdr.cmd_line_ptr }, layout::CMDLINE as u32);
        assert_eq!({ p.hdr.cmdline_size }, 42);
        assert_eq!({ p.hdr.ramdisk_image }, 0x700_0000);
        assert_eq!({ p.hdr.ramdisk_size }, 0x1234);
        assert_eq!(e820_of(&p), e);
    }

    #[test]
    fn cmdline_length_is_checked() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        load_cmdline(&mem, "console=ttyS0", 2048).unwrap();
        let mut b = [0u8; 14];
        mem.read_slice(&mut b, GuestAddress(layout::CMDLINE)).unwrap();
        assert_eq!(&b, b"console=ttyS0\0");
        assert!(matches!(load_cmdline(&mem, &"x".repeat(2048), 2048), Err(LinuxError::CmdlineTooLong { .. })));
    }
}
