//! virtio-blk (virtio 1.x, section 5.2) over a raw disk image file: the
//! request queue's chains are taken with the rust-vmm `virtio-queue` crate.
//!
//! A request is a chain of a 16-byte readable header (type, reserved,
//! sector), data descriptors (readable for a write, writable for a read),
//! and a 1-byte writable status. Whatever the guest puts in the ring, the
//! VMM never panics: a request outside the disk, an unknown type or a failed
//! host I/O answers `VIRTIO_BLK_S_IOERR`/`UNSUPP`; a malformed chain (no
//! header, no writable status byte, data in the wrong direction, sizes not
//! in whole sectors) is a guest error: it is answered with IOERR when a
//! status byte can be found, and returned to the guest as used either way,
//! so the queue moves on.

use std::fs::File;
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::VirtioDevice;

/// Bytes per sector (virtio-blk's unit, whatever the disk's).
pub const SECTOR: u64 = 512;
/// Largest queue the device offers.
pub const QUEUE_SIZE: u16 = 256;
/// The serial number `GET_ID` answers (padded with NULs to 20 bytes).
pub const DISK_ID: &[u8] = b"versus-root";

/// What one request did (for tests and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub head: u16,
    pub status: Option<u8>,
    /// Bytes written into the chain (data read + status byte).
    pub used_len: u32,
}

/// A virtio-blk device backed by a raw disk file.
pub struct Block {
    file: File,
    sectors: u64,
    read_only: bool,
    /// Requests served, and malformed chains seen.
    pub requests: u64,
    pub malformed: u64,
}

impl Block {
    /// The disk `file` (its length in whole sectors is the capacity).
    pub fn new(file: File, read_only: bool) -> std::io::Result<Block> {
        // The end, not the metadata: a block device's metadata says 0.
        let len = {
            use std::io::Seek;
            let mut f = &file;
            f.seek(std::io::SeekFrom::End(0))?
        };
        Ok(Block { file, sectors: len / SECTOR, read_only, requests: 0, malformed: 0 })
    }

    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Serves every available chain of `queue`; returns what each did.
    pub fn process(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Vec<Done> {
        let mut done = Vec::new();
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<Descriptor> = chain.collect();
            let (status, used_len) = self.request(&descs, mem);
            // A used-ring write that fails (the guest's ring outside its
            // memory) is the guest's problem: it stays unanswered.
            let _ = queue.add_used(mem, head, used_len);
            done.push(Done { head, status, used_len });
        }
        done
    }

    /// One request: (status written, bytes written into the chain).
    fn request(&mut self, descs: &[Descriptor], mem: &GuestMemoryMmap) -> (Option<u8>, u32) {
        self.requests += 1;
        // The status is the last descriptor, 1+ byte, writable.
        let status = descs.last().filter(|d| d.is_write_only() && d.len() >= 1 && descs.len() >= 2);
        let Some(status_desc) = status else {
            self.malformed += 1;
            return (None, 0);
        };
        let header = &descs[0];
        let mut hdr = [0u8; 16];
        let status_code = if header.is_write_only() || header.len() < 16 || mem.read_slice(&mut hdr, header.addr()).is_err() {
            self.malformed += 1;
            VIRTIO_BLK_S_IOERR as u8
        } else {
            let kind = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let sector = u64::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15]]);
            let data = &descs[1..descs.len() - 1];
            match self.serve(kind, sector, data, mem) {
                Ok((code, written)) => return self.finish(status_desc, code, written, mem),
                Err(code) => code,
            }
        };
        self.finish(status_desc, status_code, 0, mem)
    }

    fn finish(&self, status: &Descriptor, code: u8, written: u32, mem: &GuestMemoryMmap) -> (Option<u8>, u32) {
        match mem.write_obj(code, status.addr()) {
            Ok(()) => (Some(code), written.saturating_add(1)),
            Err(_) => (None, written),
        }
    }

    /// Ok((status, data bytes written to the guest)) or Err(status).
    fn serve(&mut self, kind: u32, sector: u64, data: &[Descriptor], mem: &GuestMemoryMmap) -> Result<(u8, u32), u8> {
        let ioerr = VIRTIO_BLK_S_IOERR as u8;
        match kind {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let reading = kind == VIRTIO_BLK_T_IN;
                if self.read_only && !reading {
                    return Err(ioerr);
                }
                let total: u64 = data.iter().map(|d| d.len() as u64).sum();
                if data.is_empty() || total % SECTOR != 0 || data.iter().any(|d| d.is_write_only() != reading) {
                    self.malformed += 1;
                    return Err(ioerr);
                }
                let end = sector.checked_add(total / SECTOR).ok_or(ioerr)?;
                if end > self.sectors {
                    return Err(ioerr);
                }
                let mut off = sector * SECTOR;
                let mut written = 0u32;
                for d in data {
                    let mut buf = vec![0u8; d.len() as usize];
                    if reading {
                        self.file.read_exact_at(&mut buf, off).map_err(|_| ioerr)?;
                        mem.write_slice(&buf, d.addr()).map_err(|_| ioerr)?;
                        written = written.saturating_add(d.len());
                    } else {
                        mem.read_slice(&mut buf, d.addr()).map_err(|_| ioerr)?;
                        self.file.write_all_at(&buf, off).map_err(|_| ioerr)?;
                    }
                    off += d.len() as u64;
                }
                Ok((VIRTIO_BLK_S_OK as u8, written))
            }
            VIRTIO_BLK_T_FLUSH => {
                if self.read_only {
                    return Ok((VIRTIO_BLK_S_OK as u8, 0));
                }
                self.file.sync_all().map_err(|_| ioerr)?;
                Ok((VIRTIO_BLK_S_OK as u8, 0))
            }
            VIRTIO_BLK_T_GET_ID => {
                let Some(d) = data.first().filter(|d| d.is_write_only()) else {
                    self.malformed += 1;
                    return Err(ioerr);
                };
                let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
                id[..DISK_ID.len()].copy_from_slice(DISK_ID);
                let n = (d.len() as usize).min(id.len());
                mem.write_slice(&id[..n], d.addr()).map_err(|_| ioerr)?;
                Ok((VIRTIO_BLK_S_OK as u8, n as u32))
            }
            _ => Err(VIRTIO_BLK_S_UNSUPP as u8),
        }
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }
    fn features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_F_VERSION_1) | (1u64 << VIRTIO_BLK_F_FLUSH);
        if self.read_only {
            f |= 1u64 << virtio_bindings::virtio_blk::VIRTIO_BLK_F_RO;
        }
        f
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }
    /// The config space: the capacity in sectors (le64) at offset 0.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cfg = self.sectors.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset).ok().and_then(|o| cfg.get(o + i)).copied().unwrap_or(0);
        }
    }
    fn process_queue(&mut self, _index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        !self.process(queue, mem).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestAddress;

    const HDR: u64 = 0x10_0000;
    const DATA: u64 = 0x20_0000;
    const STATUS: u64 = 0x30_0000;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
    }

    fn disk(sectors: u64) -> (tempfile::NamedTempFile, Block) {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut content = vec![0u8; (sectors * SECTOR) as usize];
        for (i, b) in content.iter_mut().enumerate() {
            *b = (i / SECTOR as usize) as u8;
        }
        std::fs::write(f.path(), &content).unwrap();
        let b = Block::new(File::options().read(true).write(true).open(f.path()).unwrap(), false).unwrap();
        (f, b)
    }

    fn desc(addr: u64, len: u32, write: bool) -> RawDescriptor {
        RawDescriptor::from(virtio_queue::desc::split::Descriptor::new(addr, len, if write { VRING_DESC_F_WRITE as u16 } else { 0 }, 0))
    }

    fn header(m: &GuestMemoryMmap, kind: u32, sector: u64) {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        m.write_slice(&h, GuestAddress(HDR)).unwrap();
    }

    /// Runs one chain through the device; returns what it did and the used ring's entry.
    fn run(b: &mut Block, m: &GuestMemoryMmap, chain: &[RawDescriptor]) -> (Done, u32) {
        let vq = MockSplitQueue::new(m, 16);
        vq.build_desc_chain(chain).unwrap();
        let mut q: Queue = vq.create_queue().unwrap();
        let done = b.process(&mut q, m);
        assert_eq!(done.len(), 1, "one chain served");
        let used_len = vq.used().ring().ref_at(0).unwrap().load().len();
        assert_eq!(vq.used().idx().load(), 1, "the chain went back to the guest");
        (done[0], used_len)
    }

    #[test]
    fn reads_sectors_into_the_guest() {
        let m = mem();
        let (_f, mut b) = disk(8);
        header(&m, VIRTIO_BLK_T_IN, 2);
        let (d, used) = run(&mut b, &m, &[desc(HDR, 16, false), desc(DATA, 1024, true), desc(STATUS, 1, true)]);
        assert_eq!((d.status, used), (Some(VIRTIO_BLK_S_OK as u8), 1025));
        let mut got = vec![0u8; 1024];
        m.read_slice(&mut got, GuestAddress(DATA)).unwrap();
        assert!(got[..512].iter().all(|&x| x == 2) && got[512..].iter().all(|&x| x == 3), "sectors 2 and 3");
    }

    #[test]
    fn writes_reach_the_disk_and_flush_syncs() {
        let m = mem();
        let (f, mut b) = disk(8);
        m.write_slice(&[0xabu8; 512], GuestAddress(DATA)).unwrap();
        header(&m, VIRTIO_BLK_T_OUT, 5);
        let (d, used) = run(&mut b, &m, &[desc(HDR, 16, false), desc(DATA, 512, false), desc(STATUS, 1, true)]);
        assert_eq!((d.status, used), (Some(VIRTIO_BLK_S_OK as u8), 1));
        let on_disk = std::fs::read(f.path()).unwrap();
        assert!(on_disk[5 * 512..6 * 512].iter().all(|&x| x == 0xab));
        assert!(on_disk[4 * 512..5 * 512].iter().all(|&x| x == 4), "its neighbour untouched");
        header(&m, VIRTIO_BLK_T_FLUSH, 0);
        let (d, _) = run(&mut b, &m, &[desc(HDR, 16, false), desc(STATUS, 1, true)]);
        assert_eq!(d.status, Some(VIRTIO_BLK_S_OK as u8));
        header(&m, VIRTIO_BLK_T_GET_ID, 0);
        let (d, used) = run(&mut b, &m, &[desc(HDR, 16, false), desc(DATA, 20, true), desc(STATUS, 1, true)]);
        assert_eq!((d.status, used), (Some(VIRTIO_BLK_S_OK as u8), 21));
        let mut id = [0u8; 11];
        m.read_slice(&mut id, GuestAddress(DATA)).unwrap();
        assert_eq!(&id, DISK_ID);
    }

    #[test]
    fn out_of_range_sectors_are_io_errors() {
        let m = mem();
        let (f, mut b) = disk(8);
        let before = std::fs::read(f.path()).unwrap();
        for (kind, sector, len) in [(VIRTIO_BLK_T_IN, 8, 512), (VIRTIO_BLK_T_IN, 7, 1024), (VIRTIO_BLK_T_OUT, u64::MAX, 512), (VIRTIO_BLK_T_OUT, 7, 1024)] {
            header(&m, kind, sector);
            let (d, used) = run(&mut b, &m, &[desc(HDR, 16, false), desc(DATA, len, kind == VIRTIO_BLK_T_IN), desc(STATUS, 1, true)]);
            assert_eq!((d.status, used), (Some(VIRTIO_BLK_S_IOERR as u8), 1), "kind {kind} sector {sector} len {len}");
        }
        assert_eq!(std::fs::read(f.path()).unwrap(), before, "nothing written outside the disk");
        header(&m, 99, 0);
        let (d, _) = run(&mut b, &m, &[desc(HDR, 16, false), desc(STATUS, 1, true)]);
        assert_eq!(d.status, Some(VIRTIO_BLK_S_UNSUPP as u8));
    }

    #[test]
    fn malformed_chains_are_guest_errors_not_crashes() {
        let m = mem();
        let (f, mut b) = disk(8);
        let before = std::fs::read(f.path()).unwrap();
        header(&m, VIRTIO_BLK_T_OUT, 0);
        let cases: Vec<(Vec<RawDescriptor>, Option<u8>)> = vec![
            // No status byte at all: nothing to answer in, but returned used.
            (vec![desc(HDR, 16, false)], None),
            // A status descriptor the device may not write.
            (vec![desc(HDR, 16, false), desc(DATA, 512, false), desc(STATUS, 1, false)], None),
            // A header too short.
            (vec![desc(HDR, 8, false), desc(STATUS, 1, true)], Some(VIRTIO_BLK_S_IOERR as u8)),
            // Data in the wrong direction for a write.
            (vec![desc(HDR, 16, false), desc(DATA, 512, true), desc(STATUS, 1, true)], Some(VIRTIO_BLK_S_IOERR as u8)),
            // Not a whole sector.
            (vec![desc(HDR, 16, false), desc(DATA, 100, false), desc(STATUS, 1, true)], Some(VIRTIO_BLK_S_IOERR as u8)),
            // Data outside guest memory.
            (vec![desc(HDR, 16, false), desc(0x1_0000_0000, 512, false), desc(STATUS, 1, true)], Some(VIRTIO_BLK_S_IOERR as u8)),
            // A status byte outside guest memory.
            (vec![desc(HDR, 16, false), desc(DATA, 512, false), desc(0x1_0000_0000, 1, true)], None),
        ];
        for (chain, want) in cases {
            let (d, _) = run(&mut b, &m, &chain);
            assert_eq!(d.status, want, "{chain:?}");
        }
        assert_eq!(std::fs::read(f.path()).unwrap(), before, "no malformed request wrote the disk");
        assert!(b.malformed >= 4, "{}", b.malformed);
        // A descriptor index past the table: virtio-queue ends the chain; the device survives it.
        let vq = MockSplitQueue::new(&m, 16);
        vq.desc_table().store(0, RawDescriptor::from(virtio_queue::desc::split::Descriptor::new(HDR, 16, 1, 99))).unwrap();
        vq.avail().ring().ref_at(0).unwrap().store(0u16.to_le());
        vq.avail().idx().store(1u16.to_le());
        let mut q: Queue = vq.create_queue().unwrap();
        let _ = b.process(&mut q, &m);
    }

    #[test]
    fn config_space_is_the_capacity() {
        let (_f, b) = disk(8);
        let mut c = [0u8; 8];
        b.read_config(0, &mut c);
        assert_eq!(u64::from_le_bytes(c), 8);
        let mut past = [0xffu8; 4];
        b.read_config(60, &mut past);
        assert_eq!(past, [0; 4]);
        assert_ne!(b.features() & (1 << VIRTIO_F_VERSION_1), 0);
    }
}
