//! Loading a kernel image (vmlinux ELF or bzImage) into guest memory with
//! linux-loader.

use std::io::Cursor;

use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Address, GuestAddress, GuestMemoryMmap};

use linux_loader::loader::bootparam::setup_header;

use super::{bzimage_header, bzimage_version, detect, vmlinux_banner, KernelFormat, BZIMAGE_64BIT_ENTRY_OFFSET, HIMEM_START, XLF_KERNEL_64};
use crate::linux::error::{LinuxError, Result};

/// A kernel placed in guest memory.
#[derive(Debug, Clone)]
pub struct LoadedKernel {
    pub format: KernelFormat,
    /// Where the vCPU starts (64-bit entry).
    pub entry: GuestAddress,
    /// First byte of the loaded image.
    pub load_addr: GuestAddress,
    /// One past the last byte the image occupies (including BSS for ELF).
    pub end_addr: u64,
    /// The bzImage's setup header (to copy into boot_params); `None` for ELF.
    pub setup_header: Option<setup_header>,
    /// Memory the kernel needs from its load address before it can set up
    /// its own allocator (bzImage `init_size`; ELF: its extent).
    pub init_size: u64,
    /// The version banner or header string, when found.
    pub version: Option<String>,
}

/// Loads a kernel image (vmlinux ELF or bzImage) into guest memory.
pub fn load(mem: &GuestMemoryMmap, image: &[u8]) -> Result<LoadedKernel> {
    match detect(image) {
        Some(KernelFormat::Elf) => load_elf(mem, image),
        Some(KernelFormat::BzImage) => load_bzimage(mem, image),
        None => Err(LinuxError::NotAKernel("the image".into())),
    }
}

fn last_addr(mem: &GuestMemoryMmap) -> u64 {
    use vm_memory::GuestMemoryBackend;
    mem.last_addr().raw_value()
}

fn load_elf(mem: &GuestMemoryMmap, image: &[u8]) -> Result<LoadedKernel> {
    let res = Elf::load(mem, None, &mut Cursor::new(image), Some(GuestAddress(HIMEM_START))).map_err(|e| {
        let s = e.to_string();
        if s.contains("ReadKernelImage") || s.to_lowercase().contains("read kernel image") {
            LinuxError::Load(format!("{s} (guest memory ends at {:#x})", last_addr(mem) + 1))
        } else {
            LinuxError::BadElf(s)
        }
    })?;
    let mem_end = last_addr(mem) + 1;
    if res.kernel_end > mem_end {
        return Err(LinuxError::MemoryTooSmall { mem_bytes: mem_end, need_bytes: res.kernel_end });
    }
    Ok(LoadedKernel {
        format: KernelFormat::Elf,
        entry: res.kernel_load,
        load_addr: res.kernel_load,
        end_addr: res.kernel_end,
        setup_header: None,
        init_size: res.kernel_end - res.kernel_load.raw_value(),
        version: vmlinux_banner(image),
    })
}

fn load_bzimage(mem: &GuestMemoryMmap, image: &[u8]) -> Result<LoadedKernel> {
    let hdr = bzimage_header(image)?;
    if { hdr.version } < 0x0206 {
        return Err(LinuxError::BadBzImage(format!("boot protocol {:#x} is older than 2.06", { hdr.version })));
    }
    if { hdr.xloadflags } & XLF_KERNEL_64 == 0 {
        return Err(LinuxError::BadBzImage("it has no 64-bit entry point (xloadflags bit 0 clear): a 32-bit kernel?".into()));
    }
    let mem_end = last_addr(mem) + 1;
    // The decompressor moves itself and writes the kernel at pref_address,
    // needing init_size bytes there.
    let need = { hdr.pref_address }.max(HIMEM_START) + { hdr.init_size } as u64;
    if need > mem_end {
        return Err(LinuxError::MemoryTooSmall { mem_bytes: mem_end, need_bytes: need });
    }
    let res = BzImage::load(mem, None, &mut Cursor::new(image), Some(GuestAddress(HIMEM_START))).map_err(|e| LinuxError::Load(e.to_string()))?;
    let header = res.setup_header.unwrap_or(hdr);
    Ok(LoadedKernel {
        format: KernelFormat::BzImage,
        entry: res.kernel_load.checked_add(BZIMAGE_64BIT_ENTRY_OFFSET).ok_or_else(|| LinuxError::Load("entry overflows".into()))?,
        load_addr: res.kernel_load,
        end_addr: res.kernel_end,
        setup_header: Some(header),
        init_size: { hdr.init_size } as u64,
        version: bzimage_version(image, &hdr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::kernel::tests::real::{bz, loads, mem, vmlinux};
    use crate::linux::kernel::{setup_size, HDRS_MAGIC};
    use vm_memory::Bytes;

    #[test]
    fn load_vmlinux_places_every_segment() {
        let v = vmlinux();
        let m = mem(256 << 20);
        let k = load(&m, v).unwrap();
        assert_eq!(k.format, KernelFormat::Elf);
        assert_eq!(k.entry, GuestAddress(0x100_0000));
        assert!(k.setup_header.is_none());
        assert!(k.version.as_deref().unwrap().starts_with("Linux version 6."));
        let segs = loads(v);
        assert!(segs.len() >= 3, "{segs:?}");
        for (off, paddr, filesz) in segs {
            let n = filesz.min(4096);
            let mut got = vec![0u8; n];
            m.read_slice(&mut got, GuestAddress(paddr)).unwrap();
            assert_eq!(got, v[off..off + n], "segment at {paddr:#x}");
            assert!(paddr + filesz as u64 <= k.end_addr);
        }
        // Too little memory is an error that says so.
        assert!(matches!(load(&mem(32 << 20), v), Err(LinuxError::Load(_) | LinuxError::MemoryTooSmall { .. })));
    }

    #[test]
    fn load_bzimage_at_code32_start() {
        let img = bz();
        let m = mem(512 << 20);
        let k = load(&m, img).unwrap();
        let h = bzimage_header(img).unwrap();
        assert_eq!(k.format, KernelFormat::BzImage);
        assert_eq!(k.load_addr, GuestAddress(HIMEM_START));
        assert_eq!(k.entry, GuestAddress(HIMEM_START + 0x200));
        let setup = setup_size(&h);
        assert_eq!(k.end_addr, HIMEM_START + (img.len() - setup) as u64);
        let mut got = vec![0u8; 4096];
        m.read_slice(&mut got, GuestAddress(HIMEM_START)).unwrap();
        assert_eq!(got, img[setup..setup + 4096]);
        let kh = k.setup_header.unwrap();
        assert_eq!({ kh.header }, HDRS_MAGIC);
        assert_eq!({ kh.init_size }, { h.init_size });
        assert!(matches!(load(&mem(64 << 20), img), Err(LinuxError::MemoryTooSmall { .. })));
    }
}
