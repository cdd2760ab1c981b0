//! Decompressing a bzImage's payload: lz4 (legacy frames, Debian), zstd
//! (Ubuntu, Arch, Fedora), gzip, xz (with the x86 BCJ filter the kernel build
//! uses) and lzma. bzip2 and lzo are recognised and refused with a message.

use std::io::{Cursor, Read};

use crate::linux::error::{LinuxError, Result};

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

fn derr(format: &'static str) -> impl Fn(String) -> LinuxError {
    move |detail| LinuxError::Decompress { format, detail }
}

/// Decompresses a kernel payload.
pub fn decompress(c: Compression, data: &[u8], expected: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected);
    match c {
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out).map_err(|e| derr("gzip")(e.to_string()))?;
        }
        Compression::Zstd => {
            let mut d = ruzstd::StreamingDecoder::new(data).map_err(|e| derr("zstd")(e.to_string()))?;
            d.read_to_end(&mut out).map_err(|e| derr("zstd")(e.to_string()))?;
        }
        Compression::Lzma => {
            lzma_rs::lzma_decompress(&mut std::io::BufReader::new(data), &mut out).map_err(|e| derr("lzma")(e.to_string()))?;
        }
        Compression::Xz => out = xz_decompress(data, expected)?,
        Compression::Lz4Legacy => out = lz4_legacy_decompress(data, expected)?,
        Compression::Bzip2 | Compression::Lzo => return Err(LinuxError::UnsupportedCompression(c.name())),
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
    let rd = |p: usize| -> Option<u32> { data.get(p..p + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) };
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
        let block = data.get(p..p + n).ok_or_else(|| e(format!("block of {n} bytes at {p:#x} runs past the end")))?;
        let start = out.len();
        out.resize(start + LZ4_LEGACY_BLOCK, 0);
        let got = lz4_flex::block::decompress_into(block, &mut out[start..]).map_err(|x| e(format!("block at {p:#x}: {x}")))?;
        out.truncate(start + got);
        p += n;
    }
    if p != data.len() {
        return Err(e(format!("{} stray bytes after the last block", data.len() - p)));
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
        let hsize_byte = *data.get(p).ok_or_else(|| e("truncated before a block".into()))?;
        if hsize_byte == 0 {
            break; // index indicator: no more blocks
        }
        let hsize = (hsize_byte as usize + 1) * 4;
        let hdr = data.get(p..p + hsize).ok_or_else(|| e("truncated block header".into()))?;
        let flags = hdr[1];
        let nfilters = (flags & 3) as usize + 1;
        let mut q = 2;
        let varint = |q: &mut usize| -> Result<u64> {
            let mut v = 0u64;
            for i in 0..9 {
                let b = *hdr.get(*q).ok_or_else(|| e("truncated block header".into()))?;
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
            let props = hdr.get(q..q + plen).ok_or_else(|| e("truncated filter properties".into()))?.to_vec();
            q += plen;
            filters.push((id, props));
        }
        p += hsize;
        let (last_id, _) = filters.last().cloned().unwrap_or((0, Vec::new()));
        if last_id != 0x21 {
            return Err(e(format!("last filter is {last_id:#x}, expected LZMA2 (0x21)")));
        }
        let mut cursor = Cursor::new(&data[p..]);
        let mut block = Vec::with_capacity(expected.saturating_sub(out.len()));
        lzma_rs::lzma2_decompress(&mut cursor, &mut block).map_err(|x| e(format!("LZMA2: {x}")))?;
        p += cursor.position() as usize;
        for (id, props) in filters[..filters.len() - 1].iter().rev() {
            match id {
                0x04 => {
                    let start = if props.len() == 4 { u32::from_le_bytes([props[0], props[1], props[2], props[3]]) } else { 0 };
                    bcj_x86_decode(&mut block, start);
                }
                other => return Err(e(format!("filter {other:#x} is not supported (only x86 BCJ and LZMA2)"))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn compression_magics() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Some(Compression::Gzip));
        assert_eq!(Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Compression::Zstd));
        assert_eq!(Compression::detect(&[0x02, 0x21, 0x4c, 0x18]), Some(Compression::Lz4Legacy));
        assert_eq!(Compression::detect(b"\xfd7zXZ\x00\x00"), Some(Compression::Xz));
        assert_eq!(Compression::detect(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(Compression::detect(b"plain"), None);
        assert!(matches!(decompress(Compression::Bzip2, b"BZh9", 0), Err(LinuxError::UnsupportedCompression("bzip2"))));
    }

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, with x86 call opcodes sprinkled in.
        (0..200_000u32).map(|i| if i % 97 == 0 { 0xe8 } else { (i.wrapping_mul(2654435761) >> 27) as u8 }).collect()
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
        assert_ne!(code, orig, "the encoder changed nothing: the test would prove nothing");
        bcj_x86_decode(&mut code, 0);
        assert_eq!(code, orig);
    }
}
