//! Guest kernel images: recognising a vmlinux ELF or a bzImage (this file:
//! format detection, the bzImage's setup header, banner and payload, and the
//! vmlinux extracted from it so that a distribution kernel boots without
//! running its own decompressor), decompressing the payload
//! ([`decompress`]), and loading either format into guest memory with
//! linux-loader ([`load`]).

pub mod decompress;
pub mod load;

use linux_loader::loader::bootparam::setup_header;
use vm_memory::ByteValued;

use super::error::{LinuxError, Result};
pub use decompress::{decompress, Compression};
pub use load::{load, LoadedKernel};

/// Where high memory (above the BIOS area) starts; kernels load above it.
pub const HIMEM_START: u64 = 0x10_0000;
/// Offset of the 64-bit entry point (startup_64) in a bzImage's protected-mode
/// code, per Documentation/arch/x86/boot.rst ("64-bit boot protocol").
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// xloadflags bit: the kernel has the legacy 64-bit entry point at 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// The `HdrS` signature at offset 0x202.
pub const HDRS_MAGIC: u32 = 0x5372_6448;
/// Offset of the setup header in a bzImage file (and in boot_params).
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;

/// The two kernel image formats versus boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An uncompressed ELF vmlinux, entered at its ELF entry (startup_64).
    Elf,
    /// A bzImage, entered at its 64-bit entry (load address + 0x200); it
    /// decompresses itself first.
    BzImage,
}

impl KernelFormat {
    pub fn name(self) -> &'static str {
        match self {
            KernelFormat::Elf => "vmlinux",
            KernelFormat::BzImage => "bzImage",
        }
    }
}

/// Recognises the format of a kernel image from its first bytes.
pub fn detect(image: &[u8]) -> Option<KernelFormat> {
    if image.len() >= 4 && &image[..4] == b"\x7fELF" {
        return Some(KernelFormat::Elf);
    }
    if image.len() >= 0x206 && u32::from_le_bytes([image[0x202], image[0x203], image[0x204], image[0x205]]) == HDRS_MAGIC {
        return Some(KernelFormat::BzImage);
    }
    None
}

/// Reads the setup header of a bzImage.
pub fn bzimage_header(image: &[u8]) -> Result<setup_header> {
    let size = std::mem::size_of::<setup_header>();
    let Some(bytes) = image.get(SETUP_HEADER_OFFSET..SETUP_HEADER_OFFSET + size) else {
        return Err(LinuxError::BadBzImage(format!("{} bytes is too short for a setup header", image.len())));
    };
    let hdr = setup_header::from_slice(bytes).copied().ok_or_else(|| LinuxError::BadBzImage("setup header unreadable".into()))?;
    if { hdr.header } != HDRS_MAGIC {
        return Err(LinuxError::BadBzImage("no `HdrS` signature at 0x202".into()));
    }
    Ok(hdr)
}

/// Size of the real-mode setup code that precedes the protected-mode kernel.
pub fn setup_size(hdr: &setup_header) -> usize {
    let sects = if hdr.setup_sects == 0 { 4 } else { hdr.setup_sects as usize };
    (sects + 1) * 512
}

/// The kernel version a bzImage advertises in its header, e.g.
/// `6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP ...`.
pub fn bzimage_version(image: &[u8], hdr: &setup_header) -> Option<String> {
    let off = { hdr.kernel_version } as usize;
    if off == 0 {
        return None;
    }
    let s = image.get(off + 0x200..)?;
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len()).min(256);
    Some(String::from_utf8_lossy(&s[..end]).trim().to_string())
}

/// Every `Linux version ...` string in a vmlinux image, without newlines.
pub fn vmlinux_banners(image: &[u8]) -> Vec<String> {
    let needle = b"Linux version ";
    let mut v = Vec::new();
    let mut from = 0;
    while let Some(i) = image[from..].windows(needle.len()).position(|w| w == needle) {
        let start = from + i;
        let rest = &image[start..];
        let end = rest.iter().position(|&b| b == b'\n' || b == 0).unwrap_or(rest.len()).min(512);
        v.push(String::from_utf8_lossy(&rest[..end]).to_string());
        from = start + end.max(1);
    }
    v
}

/// The banner a vmlinux prints first (`Linux version ...`). Kernels since
/// 6.1 carry two: init/version.c's with an empty build number (`# SMP`) and
/// the linked-in one from version-timestamp.c (`#1 SMP`), which is printed;
/// the one whose `#` is followed by a digit wins, else the last one.
pub fn vmlinux_banner(image: &[u8]) -> Option<String> {
    let all = vmlinux_banners(image);
    let numbered = |b: &&String| b.split(" #").nth(1).is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    all.iter().find(numbered).or(all.last()).cloned()
}

/// The compressed payload of a bzImage: its compression, the compressed
/// bytes (without the size trailer) and the uncompressed size the build
/// appended (little-endian u32 after the stream, `size_append` in Kbuild).
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    pub compression: Compression,
    pub data: &'a [u8],
    pub uncompressed_len: u32,
    /// Offset of the payload in the bzImage file.
    pub file_offset: usize,
}

/// Locates the compressed vmlinux in a bzImage from the header's
/// `payload_offset`/`payload_length` (boot protocol 2.08+).
pub fn find_payload(image: &[u8]) -> Result<Payload<'_>> {
    let hdr = bzimage_header(image)?;
    if { hdr.version } < 0x0208 {
        return Err(LinuxError::BadBzImage(format!("boot protocol {:#x} predates payload_offset (2.08); pass a vmlinux with --kernel", { hdr.version })));
    }
    let start = setup_size(&hdr) + { hdr.payload_offset } as usize;
    let len = { hdr.payload_length } as usize;
    let payload = image
        .get(start..start.saturating_add(len))
        .ok_or_else(|| LinuxError::BadBzImage(format!("payload {start:#x}+{len:#x} lies past the end of the {}-byte file (truncated?)", image.len())))?;
    if payload.len() < 8 {
        return Err(LinuxError::BadBzImage("empty payload".into()));
    }
    let compression =
        Compression::detect(payload).ok_or_else(|| LinuxError::BadBzImage(format!("unknown compression magic {:02x?} at payload start", &payload[..4])))?;
    let (data, trailer) = payload.split_at(payload.len() - 4);
    let uncompressed_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    Ok(Payload { compression, data, uncompressed_len, file_offset: start })
}

/// Extracts the uncompressed vmlinux ELF from a bzImage.
pub fn extract_vmlinux(image: &[u8]) -> Result<Vec<u8>> {
    let p = find_payload(image)?;
    let out = decompress(p.compression, p.data, p.uncompressed_len as usize)?;
    if out.len() as u32 != p.uncompressed_len {
        return Err(LinuxError::Decompress { format: p.compression.name(), detail: format!("got {} bytes, the image says {}", out.len(), p.uncompressed_len) });
    }
    if detect(&out) != Some(KernelFormat::Elf) {
        return Err(LinuxError::Decompress { format: p.compression.name(), detail: "the decompressed payload is not an ELF vmlinux".into() });
    }
    Ok(out)
}

/// The kernel the tests use: `$VERSUS_TEST_KERNEL`, else what
/// `harness/fetch-kernel` (in the source tree) prints, downloading Debian's
/// cloud kernel on first use. Panics with what to do when neither works:
/// these tests are about a real kernel and must not pass without one.
#[cfg(test)]
pub(crate) fn test_kernel() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("VERSUS_TEST_KERNEL") {
        return p.into();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../harness/fetch-kernel");
    let out = std::process::Command::new(script).stderr(std::process::Stdio::inherit()).output();
    match out {
        Ok(o) if o.status.success() => std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        Ok(o) => panic!("harness/fetch-kernel failed ({}); run it by hand (as root: it may need apt-get update) or set VERSUS_TEST_KERNEL", o.status),
        Err(e) => panic!("cannot run {script}: {e}; set VERSUS_TEST_KERNEL to a bzImage"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn detect_formats() {
        assert_eq!(detect(b"\x7fELF\x02\x01"), Some(KernelFormat::Elf));
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(detect(&bz), Some(KernelFormat::BzImage));
        assert_eq!(detect(b"#!/bin/sh\n"), None);
        assert!(bzimage_header(&bz[..0x210]).is_err());
    }

    #[test]
    fn vmlinux_banner_is_found() {
        let mut img = b"\x7fELF junk\0Linux version 6.1.0-test (x@y) #1 SMP\n\0more".to_vec();
        img.extend_from_slice(&[0u8; 16]);
        assert_eq!(vmlinux_banner(&img).as_deref(), Some("Linux version 6.1.0-test (x@y) #1 SMP"));
        // 6.1+: the unnumbered copy from init/version.c comes first.
        let two = b"..Linux version 6.1 (x@y) # SMP\n\0..Linux version 6.1 (x@y) #1 SMP\n\0".to_vec();
        assert_eq!(vmlinux_banners(&two).len(), 2);
        assert_eq!(vmlinux_banner(&two).as_deref(), Some("Linux version 6.1 (x@y) #1 SMP"));
    }

    /// Tests on the real distribution kernel fetched by harness/fetch-kernel.
    pub(crate) mod real {
        use super::super::*;
        use std::sync::OnceLock;
        use vm_memory::{GuestAddress, GuestMemoryMmap};

        pub(crate) fn bz() -> &'static [u8] {
            static IMG: OnceLock<Vec<u8>> = OnceLock::new();
            IMG.get_or_init(|| {
                let p = test_kernel();
                std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            })
        }

        pub(crate) fn vmlinux() -> &'static [u8] {
            static IMG: OnceLock<Vec<u8>> = OnceLock::new();
            IMG.get_or_init(|| extract_vmlinux(bz()).expect("extract vmlinux from the real bzImage"))
        }

        pub(crate) fn mem(bytes: usize) -> GuestMemoryMmap {
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), bytes)]).unwrap()
        }

        /// (p_offset, p_paddr, p_filesz) of the PT_LOAD segments.
        pub(crate) fn loads(elf: &[u8]) -> Vec<(usize, u64, usize)> {
            let u16a = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
            let u64a = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
            let (phoff, phentsize, phnum) = (u64a(0x20) as usize, u16a(0x36), u16a(0x38));
            (0..phnum)
                .map(|i| phoff + i * phentsize)
                .filter(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 1)
                .map(|ph| (u64a(ph + 8) as usize, u64a(ph + 24), u64a(ph + 32) as usize))
                .collect()
        }

        #[test]
        fn bzimage_header_and_payload() {
            let img = bz();
            assert_eq!(detect(img), Some(KernelFormat::BzImage));
            let h = bzimage_header(img).unwrap();
            assert!({ h.version } >= 0x020c, "boot protocol {:#x}", { h.version });
            assert_ne!({ h.xloadflags } & XLF_KERNEL_64, 0, "64-bit entry point");
            assert_eq!({ h.pref_address }, 0x100_0000, "CONFIG_PHYSICAL_START");
            let v = bzimage_version(img, &h).unwrap();
            assert!(v.starts_with("6.") && v.contains("cloud-amd64"), "{v}");
            let p = find_payload(img).unwrap();
            // Debian builds with CONFIG_KERNEL_LZ4; read the config next to
            // the cached image when there is one.
            let cfg = test_kernel().with_file_name(test_kernel().file_name().unwrap().to_string_lossy().replace("vmlinuz-", "config-"));
            if let Ok(c) = std::fs::read_to_string(&cfg) {
                let want = [
                    ("CONFIG_KERNEL_LZ4=y", Compression::Lz4Legacy),
                    ("CONFIG_KERNEL_ZSTD=y", Compression::Zstd),
                    ("CONFIG_KERNEL_XZ=y", Compression::Xz),
                    ("CONFIG_KERNEL_GZIP=y", Compression::Gzip),
                ];
                let exp = want.iter().find(|(k, _)| c.lines().any(|l| l == *k)).map(|w| w.1);
                assert_eq!(Some(p.compression), exp, "payload compression vs {}", cfg.display());
            }
            assert!(p.uncompressed_len as usize > 4 * img.len() / 2, "uncompressed {} vs image {}", p.uncompressed_len, img.len());
        }

        #[test]
        fn extracted_vmlinux_is_the_kernel() {
            let v = vmlinux();
            assert_eq!(detect(v), Some(KernelFormat::Elf));
            let h = bzimage_header(bz()).unwrap();
            let banner = vmlinux_banner(v).unwrap();
            let release = bzimage_version(bz(), &h).unwrap().split_whitespace().next().unwrap().to_string();
            assert!(banner.starts_with(&format!("Linux version {release} ")), "{banner} vs {release}");
            // x86-64 ELF, entry at the physical load address.
            assert_eq!(u16::from_le_bytes([v[0x12], v[0x13]]), 62, "EM_X86_64");
            assert_eq!(u64::from_le_bytes(v[0x18..0x20].try_into().unwrap()), 0x100_0000);
        }
    }
}
