//! Content digests (SHA-256, hex) of what an instance runs on: a directory
//! tree (a container layer, an image's root), or a file (a VM disk, a
//! kernel). The patch drill counts the artefacts a fix changed by comparing
//! these before and after, never by assuming.
//!
//! A tree's digest covers, for every entry in path order, its relative
//! path, type, mode, owner, and content (a file's bytes, a link's target, a
//! device's numbers); times are left out (two builds of the same content
//! digest alike). A file's digest covers its size and its non-zero 64 KiB
//! blocks with their offsets (holes and zero blocks read as zeros alike),
//! found with SEEK_DATA so that a sparse disk is read only where it has data.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of the tree at `root`.
pub fn tree(root: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    walk(root, Path::new(""), &mut h)?;
    Ok(hex(&h.finalize()))
}

fn walk(root: &Path, rel: &Path, h: &mut Sha256) -> std::io::Result<()> {
    let p = root.join(rel);
    let m = std::fs::symlink_metadata(&p)?;
    let ft = m.file_type();
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(format!("{:o} {} {}", m.mode(), m.uid(), m.gid()).as_bytes());
    if ft.is_file() {
        h.update(b" f ");
        h.update(m.size().to_le_bytes());
        let mut f = std::fs::File::open(&p)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    } else if ft.is_symlink() {
        h.update(b" l ");
        h.update(std::fs::read_link(&p)?.as_os_str().as_encoded_bytes());
    } else if ft.is_char_device() || ft.is_block_device() {
        h.update(format!(" d {}", m.rdev()).as_bytes());
    } else if ft.is_dir() {
        h.update(b" /");
        let mut names: Vec<_> = std::fs::read_dir(&p)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        h.update([b'\n']);
        for n in names {
            walk(root, &rel.join(n), h)?;
        }
        return Ok(());
    }
    h.update([b'\n']);
    Ok(())
}

const BLOCK: usize = 64 * 1024;

/// The digest of the file at `path` (see the module's documentation).
pub fn file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    let mut h = Sha256::new();
    h.update(size.to_le_bytes());
    let mut buf = vec![0u8; BLOCK];
    let mut pos: u64 = 0;
    use std::os::fd::AsRawFd;
    while pos < size {
        // SAFETY: lseek on our own open fd; no memory is passed.
        let data = unsafe { libc::lseek(f.as_raw_fd(), pos as i64, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after `pos` (the rest is a hole); other errors:
            // the filesystem cannot tell, so read everything.
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                break;
            }
        } else {
            pos = (data as u64) / BLOCK as u64 * BLOCK as u64;
        }
        f.seek(SeekFrom::Start(pos))?;
        let want = (size - pos).min(BLOCK as u64) as usize;
        f.read_exact(&mut buf[..want])?;
        if buf[..want].iter().any(|&b| b != 0) {
            h.update(pos.to_le_bytes());
            h.update(&buf[..want]);
        }
        pos += want as u64;
    }
    Ok(hex(&h.finalize()))
}

/// The digest of a path: a tree's or a file's.
pub fn of(path: &Path) -> std::io::Result<String> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        tree(path)
    } else {
        file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_change_with_content_mode_and_names_only() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/a"), b"one").unwrap();
        std::os::unix::fs::symlink("a", r.join("etc/l")).unwrap();
        let d0 = tree(r).unwrap();
        assert_eq!(d0.len(), 64);
        // Times do not count.
        std::fs::File::options().write(true).open(r.join("etc/a")).unwrap().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(tree(r).unwrap(), d0);
        std::fs::write(r.join("etc/a"), b"two").unwrap();
        let d1 = tree(r).unwrap();
        assert_ne!(d1, d0);
        std::fs::write(r.join("etc/a"), b"one").unwrap();
        assert_eq!(tree(r).unwrap(), d0, "same content, same digest");
        std::fs::rename(r.join("etc/a"), r.join("etc/b")).unwrap();
        assert_ne!(tree(r).unwrap(), d0);
    }

    #[test]
    fn files_read_holes_as_zeros() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        // `a`: sparse, 8 MiB with one byte at 5 MiB; `b`: the same bytes, all written.
        let f = std::fs::File::create(&a).unwrap();
        f.set_len(8 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_at(b"x", 5 << 20).unwrap();
        let mut full = vec![0u8; 8 << 20];
        full[5 << 20] = b'x';
        std::fs::write(&b, &full).unwrap();
        assert_eq!(file(&a).unwrap(), file(&b).unwrap());
        f.write_at(b"y", 5 << 20).unwrap();
        assert_ne!(file(&a).unwrap(), file(&b).unwrap());
    }
}
