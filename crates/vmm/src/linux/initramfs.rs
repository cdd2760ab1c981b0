//! The guest's initramfs, built in Rust: a newc ("070701") cpio archive,
//! uncompressed (the kernel unpacks it without a decompressor, which matters
//! where guest kernel code is emulated). Also a parser, so tests can read an
//! archive back.

use super::error::{LinuxError, Result};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFLNK: u32 = 0o120000;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path without a leading `/` (as the kernel expects), e.g. `dev/console`.
    pub name: String,
    /// File type and permission bits (`S_IF*` | 0oNNN).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device numbers for character/block devices.
    pub rdev: (u32, u32),
    /// File contents, or the target of a symlink.
    pub data: Vec<u8>,
}

impl Entry {
    pub fn dir(name: &str, perm: u32) -> Entry {
        Entry { name: name.into(), mode: S_IFDIR | perm, uid: 0, gid: 0, rdev: (0, 0), data: Vec::new() }
    }
    pub fn file(name: &str, perm: u32, data: &[u8]) -> Entry {
        Entry { name: name.into(), mode: S_IFREG | perm, uid: 0, gid: 0, rdev: (0, 0), data: data.to_vec() }
    }
    pub fn char_dev(name: &str, perm: u32, major: u32, minor: u32) -> Entry {
        Entry { name: name.into(), mode: S_IFCHR | perm, uid: 0, gid: 0, rdev: (major, minor), data: Vec::new() }
    }
    pub fn symlink(name: &str, target: &str) -> Entry {
        Entry { name: name.into(), mode: S_IFLNK | 0o777, uid: 0, gid: 0, rdev: (0, 0), data: target.as_bytes().to_vec() }
    }
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, e: &Entry, name_len: usize) {
    let nlink = if e.is_dir() { 2 } else { 1 };
    let fields = [ino, e.mode, e.uid, e.gid, nlink, 0, e.data.len() as u32, 0, 0, e.rdev.0, e.rdev.1, (name_len + 1) as u32, 0];
    out.extend_from_slice(MAGIC);
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
}

/// Writes a newc archive of `entries` (in order; parents before children)
/// followed by the trailer.
pub fn write(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.data.len() + HEADER_LEN + e.name.len() + 8).sum::<usize>() + 256);
    for (i, e) in entries.iter().enumerate() {
        if e.name.is_empty() || e.name.starts_with('/') || e.name.contains('\0') {
            return Err(LinuxError::Initramfs(format!("bad member name {:?} (relative, non-empty, no NUL)", e.name)));
        }
        if e.data.len() > u32::MAX as usize {
            return Err(LinuxError::Initramfs(format!("{} is larger than 4 GiB", e.name)));
        }
        header(&mut out, i as u32 + 1, e, e.name.len());
        out.extend_from_slice(e.name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(&e.data);
        pad4(&mut out);
    }
    let t = Entry { name: TRAILER.into(), mode: 0, uid: 0, gid: 0, rdev: (0, 0), data: Vec::new() };
    header(&mut out, 0, &Entry { mode: 0, ..t.clone() }, TRAILER.len());
    // The trailer has nlink 1 in GNU cpio; the kernel ignores it.
    out.extend_from_slice(TRAILER.as_bytes());
    out.push(0);
    pad4(&mut out);
    // Pad the archive to 512 bytes as cpio does (not required).
    while out.len() % 512 != 0 {
        out.push(0);
    }
    Ok(out)
}

/// Parses a newc archive up to its trailer.
pub fn parse(data: &[u8]) -> Result<Vec<Entry>> {
    let bad = |what: String| LinuxError::Initramfs(format!("not a valid newc archive: {what}"));
    let mut p = 0;
    let mut v = Vec::new();
    loop {
        let h = data.get(p..p + HEADER_LEN).ok_or_else(|| bad(format!("truncated header at {p}")))?;
        if &h[..6] != MAGIC {
            return Err(bad(format!("bad magic at {p}")));
        }
        let field = |i: usize| -> Result<u32> {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).map_err(|_| bad(format!("non-ASCII field at {p}")))?;
            u32::from_str_radix(s, 16).map_err(|_| bad(format!("bad hex field {s:?} at {p}")))
        };
        let (mode, uid, gid, filesize, rmaj, rmin, namesize) =
            (field(1)?, field(2)?, field(3)?, field(6)? as usize, field(9)?, field(10)?, field(11)? as usize);
        let name_start = p + HEADER_LEN;
        let name_bytes = data.get(name_start..name_start + namesize).ok_or_else(|| bad("truncated name".into()))?;
        let name = String::from_utf8_lossy(name_bytes.strip_suffix(&[0]).unwrap_or(name_bytes)).into_owned();
        let mut q = name_start + namesize;
        q = (q + 3) & !3;
        if name == TRAILER {
            return Ok(v);
        }
        let body = data.get(q..q + filesize).ok_or_else(|| bad(format!("truncated contents of {name}")))?.to_vec();
        q = (q + filesize + 3) & !3;
        v.push(Entry { name, mode, uid, gid, rdev: (rmaj, rmin), data: body });
        p = q;
    }
}

/// The entries of the versus guest's initramfs: the directories /init
/// mounts on, /dev/console for the kernel to open as init's stdio, and the
/// workload program as /init.
pub fn guest_entries(init: &[u8]) -> Vec<Entry> {
    vec![
        Entry::dir("dev", 0o755),
        Entry::char_dev("dev/console", 0o600, 5, 1),
        Entry::dir("proc", 0o555),
        Entry::dir("sys", 0o555),
        Entry::dir("tmp", 0o1777),
        Entry::file("init", 0o755, init),
    ]
}

/// The versus guest's initramfs with `init` as /init.
pub fn guest_initramfs(init: &[u8]) -> Result<Vec<u8>> {
    write(&guest_entries(init))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            Entry::dir("dev", 0o755),
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::file("a/odd", 0o644, b"xyz"),
            Entry::symlink("bin", "usr/bin"),
            Entry::file("empty", 0o600, b""),
        ];
        let a = write(&entries).unwrap();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(a.len() % 512, 0);
        assert_eq!(parse(&a).unwrap(), entries);
    }

    #[test]
    fn header_layout_matches_newc() {
        let a = write(&[Entry::file("init", 0o755, b"\x7fELF")]).unwrap();
        let h = std::str::from_utf8(&a[..110]).unwrap();
        // magic, ino 1, mode 0100755, uid, gid, nlink 1, mtime, size 4, ...,
        // namesize 5 ("init\0"), check 0.
        assert_eq!(&h[..6], "070701");
        assert_eq!(&h[6..14], "00000001");
        assert_eq!(&h[14..22], "000081ed");
        assert_eq!(&h[38..46], "00000001");
        assert_eq!(&h[54..62], "00000004");
        assert_eq!(&h[94..102], "00000005");
        assert_eq!(&a[110..115], b"init\0");
        // Name padded so the data starts 4-aligned: 110 + 5 = 115 -> 116.
        assert_eq!(&a[116..120], b"\x7fELF");
    }

    #[test]
    fn rejects_garbage_and_absolute_names() {
        assert!(parse(b"070702").is_err());
        assert!(parse(&[0u8; 200]).is_err());
        assert!(write(&[Entry::file("/init", 0o755, b"")]).is_err());
        let mut a = write(&[Entry::file("x", 0o644, b"hello")]).unwrap();
        a.truncate(114);
        assert!(parse(&a).is_err());
    }
}
