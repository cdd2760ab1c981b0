//! Guest kernel images: recognising a vmlinux ELF or a bzImage, loading
//! either into guest memory with linux-loader, and extracting the vmlinux
//! from a bzImage (find the compressed payload, decompress it) so that a
//! distribution kernel boots without running its own decompressor.
//!
//! Supported payload compressions: lz4 (legacy frames, Debian), zstd (Ubuntu,
//! Arch, Fedora), gzip, xz (with the x86 BCJ filter the kernel build uses) and
//! lzma. bzip2 and lzo are recognised and refused with a message.

use std::io::{Cursor, Read};

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader};
use vm_memory::{Address, ByteValued, GuestAddress, GuestMemoryMmap};

use super::error::{LinuxError, Result};

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
    if image.len() >= 0x206
        && u32::from_le_bytes([image[0x202], image[0x203], image[0x204], image[0x205]])
            == HDRS_MAGIC
    {
        return Some(KernelFormat::BzImage);
    }
    None
}

/// Reads the setup header of a bzImage.
pub fn bzimage_header(image: &[u8]) -> Result<setup_header> {
    let size = std::mem::size_of::<setup_header>();
    let Some(bytes) = image.get(SETUP_HEADER_OFFSET..SETUP_HEADER_OFFSET + size) else {
        return Err(LinuxError::BadBzImage(format!(
            "{} bytes is too short for a setup header",
            image.len()
        )));
    };
    let hdr = setup_header::from_slice(bytes)
        .copied()
        .ok_or_else(|| LinuxError::BadBzImage("setup header unreadable".into()))?;
    if { hdr.header } != HDRS_MAGIC {
        return Err(LinuxError::BadBzImage(
            "no `HdrS` signature at 0x202".into(),
        ));
    }
    Ok(hdr)
}

/// Size of the real-mode setup code that precedes the protected-mode kernel.
pub fn setup_size(hdr: &setup_header) -> usize {
    let sects = if hdr.setup_sects == 0 {
        4
    } else {
        hdr.setup_sects as usize
    };
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
    while let Some(i) = image[from..]
        .windows(needle.len())
        .position(|w| w == needle)
    {
        let start = from + i;
        let rest = &image[start..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .unwrap_or(rest.len())
            .min(512);
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
    let numbered = |b: &&String| {
        b.split(" #")
            .nth(1)
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    all.iter().find(numbered).or(all.last()).cloned()
}

/// A compression the kernel build can use for its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4Legacy,
    Lzma,
    Bzip2,
    Lzo,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4Legacy => "lz4",
            Compression::Lzma => "lzma",
            Compression::Bzip2 => "bzip2",
            Compression::Lzo => "lzo",
        }
    }

    /// Recognises a compressed stream by its magic bytes.
    pub fn detect(data: &[u8]) -> Option<Compression> {
        let starts = |m: &[u8]| data.len() >= m.len() && &data[..m.len()] == m;
        if starts(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Compression::Xz)
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
            Some(Compression::Lz4Legacy)
        } else if starts(&[0x5d, 0x00, 0x00]) {
            Some(Compression::Lzma)
        } else if starts(b"BZh") {
            Some(Compression::Bzip2)
        } else if starts(&[0x89, b'L', b'Z', b'O']) {
            Some(Compression::Lzo)
        } else {
            None
        }
    }
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
        return Err(LinuxError::BadBzImage(format!(
            "boot protocol {:#x} predates payload_offset (2.08); pass a vmlinux with --kernel",
            { hdr.version }
        )));
    }
    let start = setup_size(&hdr) + { hdr.payload_offset } as usize;
    let len = { hdr.payload_length } as usize;
    let payload = image.get(start..start.saturating_add(len)).ok_or_else(|| {
        LinuxError::BadBzImage(format!(
            "payload {start:#x}+{len:#x} lies past the end of the {}-byte file (truncated?)",
            image.len()
        ))
    })?;
    if payload.len() < 8 {
        return Err(LinuxError::BadBzImage("empty payload".into()));
    }
    let compression = Compression::detect(payload).ok_or_else(|| {
        LinuxError::BadBzImage(format!(
            "unknown compression magic {:02x?} at payload start",
            &payload[..4]
        ))
    })?;
    let (data, trailer) = payload.split_at(payload.len() - 4);
    let uncompressed_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    Ok(Payload {
        compression,
        data,
        uncompressed_len,
        file_offset: start,
    })
}

/// Extracts the uncompressed vmlinux ELF from a bzImage.
pub fn extract_vmlinux(image: &[u8]) -> Result<Vec<u8>> {
    let p = find_payload(image)?;
    let out = decompress(p.compression, p.data, p.uncompressed_len as usize)?;
    if out.len() as u32 != p.uncompressed_len {
        return Err(LinuxError::Decompress {
            format: p.compression.name(),
            detail: format!(
                "got {} bytes, the image says {}",
                out.len(),
                p.uncompressed_len
            ),
        });
    }
    if detect(&out) != Some(KernelFormat::Elf) {
        return Err(LinuxError::Decompress {
            format: p.compression.name(),
            detail: "the decompressed payload is not an ELF vmlinux".into(),
        });
    }
    Ok(out)
}

fn derr(format: &'static str) -> impl Fn(String) -> LinuxError {
    move |detail| LinuxError::Decompress { format, detail }
}

/// Decompresses a kernel payload.
pub fn decompress(c: Compression, data: &[u8], expected: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected);
    match c {
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| derr("gzip")(e.to_string()))?;
        }
        Compression::Zstd => {
            let mut d =
                ruzstd::StreamingDecoder::new(data).map_err(|e| derr("zstd")(e.to_string()))?;
            d.read_to_end(&mut out)
                .map_err(|e| derr("zstd")(e.to_string()))?;
        }
        Compression::Lzma => {
            lzma_rs::lzma_decompress(&mut std::io::BufReader::new(data), &mut out)
                .map_err(|e| derr("lzma")(e.to_string()))?;
        }
        Compression::Xz => out = xz_decompress(data, expected)?,
        Compression::Lz4Legacy => out = lz4_legacy_decompress(data, expected)?,
        Compression::Bzip2 | Compression::Lzo => {
            return Err(LinuxError::UnsupportedCompression(c.name()))
        }
    }
    Ok(out)
}

const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Decodes the lz4 "legacy" format `lz4 -l` writes (what Kbuild uses): the
/// magic, then blocks of up to 8 MiB each preceded by their compressed size;
/// the magic may repeat (concatenated streams).
pub fn lz4_legacy_decompress(data: &[u8], expected: usize) -> Result<Vec<u8>> {
    let e = derr("lz4");
    let rd = |p: usize| -> Option<u32> {
        data.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if rd(0) != Some(LZ4_LEGACY_MAGIC) {
        return Err(e("missing legacy lz4 magic".into()));
    }
    let mut out = Vec::with_capacity(expected);
    let mut p = 4;
    while let Some(n) = rd(p) {
        p += 4;
        if n == LZ4_LEGACY_MAGIC {
            continue;
        }
        let n = n as usize;
        let block = data
            .get(p..p + n)
            .ok_or_else(|| e(format!("block of {n} bytes at {p:#x} runs past the end")))?;
        let start = out.len();
        out.resize(start + LZ4_LEGACY_BLOCK, 0);
        let got = lz4_flex::block::decompress_into(block, &mut out[start..])
            .map_err(|x| e(format!("block at {p:#x}: {x}")))?;
        out.truncate(start + got);
        p += n;
    }
    if p != data.len() {
        return Err(e(format!(
            "{} stray bytes after the last block",
            data.len() - p
        )));
    }
    Ok(out)
}

/// Decodes the single-block xz stream the kernel build writes
/// (`xz --check=crc32 --x86 --lzma2=...`): lzma-rs decodes LZMA2 but not the
/// x86 BCJ filter, so the container is parsed here, LZMA2 is decoded by
/// lzma-rs and the BCJ filter is undone here.
pub fn xz_decompress(data: &[u8], expected: usize) -> Result<Vec<u8>> {
    let e = derr("xz");
    if data.len() < 12 + 12 {
        return Err(e("stream too short".into()));
    }
    // Stream header: magic (6), flags (2), crc32 (4).
    let mut p = 12;
    let mut out = Vec::with_capacity(expected);
    loop {
        let hsize_byte = *data
            .get(p)
            .ok_or_else(|| e("truncated before a block".into()))?;
        if hsize_byte == 0 {
            break; // index indicator: no more blocks
        }
        let hsize = (hsize_byte as usize + 1) * 4;
        let hdr = data
            .get(p..p + hsize)
            .ok_or_else(|| e("truncated block header".into()))?;
        let flags = hdr[1];
        let nfilters = (flags & 3) as usize + 1;
        let mut q = 2;
        let varint = |q: &mut usize| -> Result<u64> {
            let mut v = 0u64;
            for i in 0..9 {
                let b = *hdr
                    .get(*q)
                    .ok_or_else(|| e("truncated block header".into()))?;
                *q += 1;
                v |= ((b & 0x7f) as u64) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            Err(e("bad varint in block header".into()))
        };
        if flags & 0x40 != 0 {
            varint(&mut q)?; // compressed size
        }
        if flags & 0x80 != 0 {
            varint(&mut q)?; // uncompressed size
        }
        let mut filters = Vec::new();
        for _ in 0..nfilters {
            let id = varint(&mut q)?;
            let plen = varint(&mut q)? as usize;
            let props = hdr
                .get(q..q + plen)
                .ok_or_else(|| e("truncated filter properties".into()))?
                .to_vec();
            q += plen;
            filters.push((id, props));
        }
        p += hsize;
        let (last_id, _) = filters.last().cloned().unwrap_or((0, Vec::new()));
        if last_id != 0x21 {
            return Err(e(format!(
                "last filter is {last_id:#x}, expected LZMA2 (0x21)"
            )));
        }
        let mut cursor = Cursor::new(&data[p..]);
        let mut block = Vec::with_capacity(expected.saturating_sub(out.len()));
        lzma_rs::lzma2_decompress(&mut cursor, &mut block).map_err(|x| e(format!("LZMA2: {x}")))?;
        p += cursor.position() as usize;
        for (id, props) in filters[..filters.len() - 1].iter().rev() {
            match id {
                0x04 => {
                    let start = if props.len() == 4 {
                        u32::from_le_bytes([props[0], props[1], props[2], props[3]])
                    } else {
                        0
                    };
                    bcj_x86_decode(&mut block, start);
                }
                other => {
                    return Err(e(format!(
                        "filter {other:#x} is not supported (only x86 BCJ and LZMA2)"
                    )))
                }
            }
        }
        out.extend_from_slice(&block);
        // Block padding to a multiple of 4, then the check (size from the
        // stream flags: 0 none, 1 crc32, 4 crc64, 10 sha256).
        while p % 4 != 0 {
            p += 1;
        }
        let check = match data[7] & 0x0f {
            0 => 0,
            1 => 4,
            4 => 8,
            10 => 32,
            _ => return Err(e("unknown check type".into())),
        };
        p += check;
    }
    Ok(out)
}

/// Undoes the x86 BCJ filter (converts absolute CALL/JMP targets back to
/// relative), as in xz-embedded's `bcj_x86`.
pub fn bcj_x86_decode(buf: &mut [u8], start_offset: u32) {
    const MASK_TO_ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const MASK_TO_BIT_NUMBER: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let test_86_ms_byte = |b: u8| b == 0x00 || b == 0xff;
    let size = buf.len();
    if size <= 4 {
        return;
    }
    let end = size - 4;
    let mut prev_pos: usize = usize::MAX; // "-1"
    let mut prev_mask: u32 = 0;
    let mut i = 0usize;
    while i < end {
        if buf[i] & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let dist = i.wrapping_sub(prev_pos);
        if prev_pos == usize::MAX || dist > 3 {
            prev_mask = 0;
        } else {
            prev_mask = (prev_mask << (dist - 1)) & 7;
            if prev_mask != 0 {
                let b = buf[i + 4 - MASK_TO_BIT_NUMBER[prev_mask as usize] as usize];
                if !MASK_TO_ALLOWED[prev_mask as usize] || test_86_ms_byte(b) {
                    prev_pos = i;
                    prev_mask = (prev_mask << 1) | 1;
                    i += 1;
                    continue;
                }
            }
        }
        prev_pos = i;
        if test_86_ms_byte(buf[i + 4]) {
            let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
            let mut dest;
            loop {
                dest = src.wrapping_sub(start_offset.wrapping_add(i as u32).wrapping_add(5));
                if prev_mask == 0 {
                    break;
                }
                let j = MASK_TO_BIT_NUMBER[prev_mask as usize] * 8;
                let b = (dest >> (24 - j)) as u8;
                if !test_86_ms_byte(b) {
                    break;
                }
                src = dest ^ ((1u32 << (32 - j)) - 1);
            }
            dest &= 0x01ff_ffff;
            dest |= 0u32.wrapping_sub(dest & 0x0100_0000);
            buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
            i += 5;
        } else {
            prev_mask = (prev_mask << 1) | 1;
            i += 1;
        }
    }
}

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
    let res = Elf::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(|e| {
        let s = e.to_string();
        if s.contains("ReadKernelImage") || s.to_lowercase().contains("read kernel image") {
            LinuxError::Load(format!(
                "{s} (guest memory ends at {:#x})",
                last_addr(mem) + 1
            ))
        } else {
            LinuxError::BadElf(s)
        }
    })?;
    let mem_end = last_addr(mem) + 1;
    if res.kernel_end > mem_end {
        return Err(LinuxError::MemoryTooSmall {
            mem_bytes: mem_end,
            need_bytes: res.kernel_end,
        });
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
        return Err(LinuxError::BadBzImage(format!(
            "boot protocol {:#x} is older than 2.06",
            { hdr.version }
        )));
    }
    if { hdr.xloadflags } & XLF_KERNEL_64 == 0 {
        return Err(LinuxError::BadBzImage(
            "it has no 64-bit entry point (xloadflags bit 0 clear): a 32-bit kernel?".into(),
        ));
    }
    let mem_end = last_addr(mem) + 1;
    // The decompressor moves itself and writes the kernel at pref_address,
    // needing init_size bytes there.
    let need = { hdr.pref_address }.max(HIMEM_START) + { hdr.init_size } as u64;
    if need > mem_end {
        return Err(LinuxError::MemoryTooSmall {
            mem_bytes: mem_end,
            need_bytes: need,
        });
    }
    let res = BzImage::load(
        mem,
        None,
        &mut Cursor::new(image),
        Some(GuestAddress(HIMEM_START)),
    )
    .map_err(|e| LinuxError::Load(e.to_string()))?;
    let header = res.setup_header.unwrap_or(hdr);
    Ok(LoadedKernel {
        format: KernelFormat::BzImage,
        entry: res
            .kernel_load
            .checked_add(BZIMAGE_64BIT_ENTRY_OFFSET)
            .ok_or_else(|| LinuxError::Load("entry overflows".into()))?,
        load_addr: res.kernel_load,
        end_addr: res.kernel_end,
        setup_header: Some(header),
        init_size: { hdr.init_size } as u64,
        version: bzimage_version(image, &hdr),
    })
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/harness/fetch-kernel");
    let out = std::process::Command::new(script)
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        Ok(o) => panic!("harness/fetch-kernel failed ({}); run it by hand (as root: it may need apt-get update) or set VERSUS_TEST_KERNEL", o.status),
        Err(e) => panic!("cannot run {script}: {e}; set VERSUS_TEST_KERNEL to a bzImage"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
    fn compression_magics() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8, 0]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::detect(&[0x02, 0x21, 0x4c, 0x18]),
            Some(Compression::Lz4Legacy)
        );
        assert_eq!(
            Compression::detect(b"\xfd7zXZ\x00\x00"),
            Some(Compression::Xz)
        );
        assert_eq!(Compression::detect(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(Compression::detect(b"plain"), None);
        assert!(matches!(
            decompress(Compression::Bzip2, b"BZh9", 0),
            Err(LinuxError::UnsupportedCompression("bzip2"))
        ));
    }

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, with x86 call opcodes sprinkled in.
        (0..200_000u32)
            .map(|i| {
                if i % 97 == 0 {
                    0xe8
                } else {
                    (i.wrapping_mul(2654435761) >> 27) as u8
                }
            })
            .collect()
    }

    #[test]
    fn gzip_round_trip() {
        let data = sample();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(decompress(Compression::Gzip, &z, data.len()).unwrap(), data);
    }

    #[test]
    fn lz4_legacy_round_trip_with_two_blocks_and_repeated_magic() {
        let data = sample();
        let mut z = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        let (a, b) = data.split_at(120_000);
        for (i, part) in [a, b].into_iter().enumerate() {
            if i == 1 {
                z.extend_from_slice(&LZ4_LEGACY_MAGIC.to_le_bytes());
            }
            let c = lz4_flex::block::compress(part);
            z.extend_from_slice(&(c.len() as u32).to_le_bytes());
            z.extend_from_slice(&c);
        }
        assert_eq!(lz4_legacy_decompress(&z, data.len()).unwrap(), data);
        // Truncation is an error, not a short kernel.
        assert!(lz4_legacy_decompress(&z[..z.len() - 10], data.len()).is_err());
    }

    #[test]
    fn xz_round_trip_plain_lzma2() {
        let data = sample();
        let mut z = Vec::new();
        lzma_rs::xz_compress(&mut std::io::BufReader::new(&data[..]), &mut z).unwrap();
        assert_eq!(xz_decompress(&z, data.len()).unwrap(), data);
    }

    /// The BCJ encoder (the inverse of [`bcj_x86_decode`]), for the test.
    fn bcj_x86_encode(buf: &mut [u8]) {
        // Encoding differs from decoding only in the direction of the
        // conversion: dest = src + (pos + 5).
        let size = buf.len();
        let mut prev_pos = usize::MAX;
        let mut prev_mask: u32 = 0;
        const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
        const BITN: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
        let ms = |b: u8| b == 0 || b == 0xff;
        let mut i = 0;
        while i + 4 < size {
            if buf[i] & 0xfe != 0xe8 {
                i += 1;
                continue;
            }
            let dist = i.wrapping_sub(prev_pos);
            if prev_pos == usize::MAX || dist > 3 {
                prev_mask = 0;
            } else {
                prev_mask = (prev_mask << (dist - 1)) & 7;
                if prev_mask != 0 {
                    let b = buf[i + 4 - BITN[prev_mask as usize] as usize];
                    if !ALLOWED[prev_mask as usize] || ms(b) {
                        prev_pos = i;
                        prev_mask = (prev_mask << 1) | 1;
                        i += 1;
                        continue;
                    }
                }
            }
            prev_pos = i;
            if ms(buf[i + 4]) {
                let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
                let mut dest;
                loop {
                    dest = src.wrapping_add((i as u32).wrapping_add(5));
                    if prev_mask == 0 {
                        break;
                    }
                    let j = BITN[prev_mask as usize] * 8;
                    let b = (dest >> (24 - j)) as u8;
                    if !ms(b) {
                        break;
                    }
                    src = dest ^ ((1u32 << (32 - j)) - 1);
                }
                dest &= 0x01ff_ffff;
                dest |= 0u32.wrapping_sub(dest & 0x0100_0000);
                buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
                i += 5;
            } else {
                prev_mask = (prev_mask << 1) | 1;
                i += 1;
            }
        }
    }

    #[test]
    fn bcj_x86_inverts_encoder() {
        // Calls with small relative targets, as in real code.
        let mut code = Vec::new();
        for k in 0..5000u32 {
            code.push(0xe8);
            code.extend_from_slice(&((k as i32 * 37 - 90_000) as u32).to_le_bytes());
            code.extend_from_slice(&[0x48, 0x89, 0xe5]);
        }
        let orig = code.clone();
        bcj_x86_encode(&mut code);
        assert_ne!(
            code, orig,
            "the encoder changed nothing: the test would prove nothing"
        );
        bcj_x86_decode(&mut code, 0);
        assert_eq!(code, orig);
    }

    #[test]
    fn vmlinux_banner_is_found() {
        let mut img = b"\x7fELF junk\0Linux version 6.1.0-test (x@y) #1 SMP\n\0more".to_vec();
        img.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            vmlinux_banner(&img).as_deref(),
            Some("Linux version 6.1.0-test (x@y) #1 SMP")
        );
        // 6.1+: the unnumbered copy from init/version.c comes first.
        let two =
            b"..Linux version 6.1 (x@y) # SMP\n\0..Linux version 6.1 (x@y) #1 SMP\n\0".to_vec();
        assert_eq!(vmlinux_banners(&two).len(), 2);
        assert_eq!(
            vmlinux_banner(&two).as_deref(),
            Some("Linux version 6.1 (x@y) #1 SMP")
        );
    }

    /// Tests on the real distribution kernel fetched by harness/fetch-kernel.
    mod real {
        use super::super::*;
        use std::sync::OnceLock;
        use vm_memory::Bytes;

        fn bz() -> &'static [u8] {
            static IMG: OnceLock<Vec<u8>> = OnceLock::new();
            IMG.get_or_init(|| {
                let p = test_kernel();
                std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            })
        }

        pub(crate) fn vmlinux() -> &'static [u8] {
            static IMG: OnceLock<Vec<u8>> = OnceLock::new();
            IMG.get_or_init(|| {
                extract_vmlinux(bz()).expect("extract vmlinux from the real bzImage")
            })
        }

        fn mem(bytes: usize) -> GuestMemoryMmap {
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), bytes)]).unwrap()
        }

        /// (p_offset, p_paddr, p_filesz) of the PT_LOAD segments.
        fn loads(elf: &[u8]) -> Vec<(usize, u64, usize)> {
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
            assert!({ h.version } >= 0x020c, "boot protocol {:#x}", {
                h.version
            });
            assert_ne!({ h.xloadflags } & XLF_KERNEL_64, 0, "64-bit entry point");
            assert_eq!({ h.pref_address }, 0x100_0000, "CONFIG_PHYSICAL_START");
            let v = bzimage_version(img, &h).unwrap();
            assert!(v.starts_with("6.") && v.contains("cloud-amd64"), "{v}");
            let p = find_payload(img).unwrap();
            // Debian builds with CONFIG_KERNEL_LZ4; read the config next to
            // the cached image when there is one.
            let cfg = test_kernel().with_file_name(
                test_kernel()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .replace("vmlinuz-", "config-"),
            );
            if let Ok(c) = std::fs::read_to_string(&cfg) {
                let want = [
                    ("CONFIG_KERNEL_LZ4=y", Compression::Lz4Legacy),
                    ("CONFIG_KERNEL_ZSTD=y", Compression::Zstd),
                    ("CONFIG_KERNEL_XZ=y", Compression::Xz),
                    ("CONFIG_KERNEL_GZIP=y", Compression::Gzip),
                ];
                let exp = want
                    .iter()
                    .find(|(k, _)| c.lines().any(|l| l == *k))
                    .map(|w| w.1);
                assert_eq!(
                    Some(p.compression),
                    exp,
                    "payload compression vs {}",
                    cfg.display()
                );
            }
            assert!(
                p.uncompressed_len as usize > 4 * img.len() / 2,
                "uncompressed {} vs image {}",
                p.uncompressed_len,
                img.len()
            );
        }

        #[test]
        fn extracted_vmlinux_is_the_kernel() {
            let v = vmlinux();
            assert_eq!(detect(v), Some(KernelFormat::Elf));
            let h = bzimage_header(bz()).unwrap();
            let banner = vmlinux_banner(v).unwrap();
            let release = bzimage_version(bz(), &h)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            assert!(
                banner.starts_with(&format!("Linux version {release} ")),
                "{banner} vs {release}"
            );
            // x86-64 ELF, entry at the physical load address.
            assert_eq!(u16::from_le_bytes([v[0x12], v[0x13]]), 62, "EM_X86_64");
            assert_eq!(
                u64::from_le_bytes(v[0x18..0x20].try_into().unwrap()),
                0x100_0000
            );
        }

        #[test]
        fn load_vmlinux_places_every_segment() {
            let v = vmlinux();
            let m = mem(256 << 20);
            let k = load(&m, v).unwrap();
            assert_eq!(k.format, KernelFormat::Elf);
            assert_eq!(k.entry, GuestAddress(0x100_0000));
            assert!(k.setup_header.is_none());
            assert!(k
                .version
                .as_deref()
                .unwrap()
                .starts_with("Linux version 6."));
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
            assert!(matches!(
                load(&mem(32 << 20), v),
                Err(LinuxError::Load(_) | LinuxError::MemoryTooSmall { .. })
            ));
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
            assert!(matches!(
                load(&mem(64 << 20), img),
                Err(LinuxError::MemoryTooSmall { .. })
            ));
        }
    }
}
