//! The virtio-mmio transport (virtio 1.x, section 4.2, version 2 registers)
//! on the VMM's MMIO bus: feature negotiation, queue set-up, notification
//! and the interrupt (an eventfd registered as a KVM irqfd). A guest kernel
//! finds it from `virtio_mmio.device=4K@<base>:<irq>` on its command line
//! (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) or from firmware tables.

use virtio_bindings::virtio_config::{VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK};
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::VirtioDevice;
use crate::bus::{DeviceResult, Flow, MmioDevice};

/// "virt", little endian.
pub const MAGIC: u32 = 0x7472_6976;
/// The register window of one device.
pub const MMIO_LEN: u64 = 0x1000;
/// versus' vendor id ("VRSS").
pub const VENDOR: u32 = 0x5653_5256;

/// A virtio device behind the MMIO registers.
pub struct MmioTransport<D: VirtioDevice> {
    base: u64,
    pub device: D,
    mem: GuestMemoryMmap,
    irq: EventFd,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    interrupt_status: u32,
    config_generation: u32,
}

impl<D: VirtioDevice> MmioTransport<D> {
    pub fn new(base: u64, device: D, mem: GuestMemoryMmap, irq: EventFd) -> Result<MmioTransport<D>, String> {
        let queues = device.queue_max_sizes().iter().map(|&n| Queue::new(n).map_err(|e| format!("a virtqueue of {n}: {e:?}"))).collect::<Result<_, _>>()?;
        Ok(MmioTransport {
            base,
            device,
            mem,
            irq,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            interrupt_status: 0,
            config_generation: 0,
        })
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.interrupt_status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
    }

    fn read_reg(&self, off: u32) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match off {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => 2,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => q.map_or(0, |q| q.max_size() as u32),
            VIRTIO_MMIO_QUEUE_READY => q.map_or(0, |q| q.ready() as u32),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status,
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    fn write_reg(&mut self, off: u32, v: u32) {
        let setting_up = self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0;
        match off {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES if self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0 => {
                // Only features the device offered are taken.
                let offered = self.device.features();
                match self.driver_features_sel {
                    0 => self.driver_features = (self.driver_features & !0xffff_ffff) | (v as u64 & offered),
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (((v as u64) << 32) & offered),
                    _ => {}
                }
            }
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM if setting_up => {
                if let Some(q) = self.queue() {
                    q.set_size(v as u16);
                }
            }
            VIRTIO_MMIO_QUEUE_READY if setting_up => {
                if let Some(q) = self.queue() {
                    q.set_ready(v == 1);
                }
            }
            VIRTIO_MMIO_QUEUE_DESC_LOW if setting_up => self.queue().into_iter().for_each(|q| q.set_desc_table_address(Some(v), None)),
            VIRTIO_MMIO_QUEUE_DESC_HIGH if setting_up => self.queue().into_iter().for_each(|q| q.set_desc_table_address(None, Some(v))),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW if setting_up => self.queue().into_iter().for_each(|q| q.set_avail_ring_address(Some(v), None)),
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH if setting_up => self.queue().into_iter().for_each(|q| q.set_avail_ring_address(None, Some(v))),
            VIRTIO_MMIO_QUEUE_USED_LOW if setting_up => self.queue().into_iter().for_each(|q| q.set_used_ring_address(Some(v), None)),
            VIRTIO_MMIO_QUEUE_USED_HIGH if setting_up => self.queue().into_iter().for_each(|q| q.set_used_ring_address(None, Some(v))),
            VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(v as usize),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt_status &= !v,
            VIRTIO_MMIO_STATUS => {
                if v == 0 {
                    self.reset();
                } else {
                    self.status = v;
                }
            }
            // Writes the device ignores: read-only registers, queue set-up
            // after DRIVER_OK, unknown offsets.
            _ => {}
        }
    }

    /// The driver kicked queue `index`: serve it and interrupt when
    /// something was used.
    fn notify(&mut self, index: usize) {
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            return;
        }
        let Some(q) = self.queues.get_mut(index) else { return };
        if !q.is_valid(&self.mem) {
            return;
        }
        if self.device.process_queue(index, q, &self.mem) {
            self.interrupt_status |= VIRTIO_MMIO_INT_VRING;
            // An eventfd at its limit still has the interrupt pending.
            let _ = self.irq.write(1);
        }
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }
}

impl<D: VirtioDevice + Send> MmioDevice for MmioTransport<D> {
    fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> DeviceResult {
        let off = addr.wrapping_sub(self.base);
        if off >= VIRTIO_MMIO_CONFIG as u64 {
            self.device.read_config(off - VIRTIO_MMIO_CONFIG as u64, data);
        } else if data.len() == 4 {
            data.copy_from_slice(&self.read_reg(off as u32).to_le_bytes());
        } else {
            data.fill(0);
        }
        Ok(Flow::Continue)
    }

    fn mmio_write(&mut self, addr: u64, data: &[u8]) -> DeviceResult {
        let off = addr.wrapping_sub(self.base);
        // Registers are 32-bit; the block device's config space is read only.
        if off < VIRTIO_MMIO_CONFIG as u64 && data.len() == 4 {
            self.write_reg(off as u32, u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::super::block::Block;
    use super::*;
    use virtio_bindings::virtio_blk::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN};
    use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const BASE: u64 = 0xd000_0000;

    fn w(t: &mut MmioTransport<Block>, off: u32, v: u32) {
        t.mmio_write(BASE + off as u64, &v.to_le_bytes()).unwrap();
    }
    fn r(t: &mut MmioTransport<Block>, off: u32) -> u32 {
        let mut b = [0u8; 4];
        t.mmio_read(BASE + off as u64, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn a_driver_sets_up_the_queue_and_a_notify_serves_it() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), vec![7u8; 4096]).unwrap();
        let blk = Block::new(std::fs::File::options().read(true).write(true).open(f.path()).unwrap(), false).unwrap();
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut t = MmioTransport::new(BASE, blk, mem.clone(), irq.try_clone().unwrap()).unwrap();
        assert_eq!((r(&mut t, VIRTIO_MMIO_MAGIC_VALUE), r(&mut t, VIRTIO_MMIO_VERSION), r(&mut t, VIRTIO_MMIO_DEVICE_ID)), (MAGIC, 2, 2));
        let mut cap = [0u8; 8];
        t.mmio_read(BASE + VIRTIO_MMIO_CONFIG as u64, &mut cap).unwrap();
        assert_eq!(u64::from_le_bytes(cap), 8, "4096 bytes are 8 sectors");
        // The Linux driver's sequence: reset, ack, driver, features, queue, DRIVER_OK.
        w(&mut t, VIRTIO_MMIO_STATUS, 0);
        w(&mut t, VIRTIO_MMIO_STATUS, 1 | 2);
        w(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let hi = r(&mut t, VIRTIO_MMIO_DEVICE_FEATURES);
        assert_ne!(hi & 1, 0, "VIRTIO_F_VERSION_1 offered");
        w(&mut t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        w(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, hi | 0x8000_0000);
        assert_eq!(t.driver_features() >> 32, hi as u64, "an unoffered feature is not taken");
        w(&mut t, VIRTIO_MMIO_STATUS, 1 | 2 | VIRTIO_CONFIG_S_FEATURES_OK);
        let vq = MockSplitQueue::new(&mem, 16);
        w(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
        assert_eq!(r(&mut t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
        w(&mut t, VIRTIO_MMIO_QUEUE_NUM, 16);
        w(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, vq.desc_table_addr().0 as u32);
        w(&mut t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, vq.avail_addr().0 as u32);
        w(&mut t, VIRTIO_MMIO_QUEUE_USED_LOW, vq.used_addr().0 as u32);
        w(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        w(&mut t, VIRTIO_MMIO_STATUS, 1 | 2 | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
        // A read of sector 1 into guest memory.
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&VIRTIO_BLK_T_IN.to_le_bytes());
        h[8..].copy_from_slice(&1u64.to_le_bytes());
        mem.write_slice(&h, GuestAddress(0x10_0000)).unwrap();
        let d =
            |a: u64, l: u32, wr: bool| RawDescriptor::from(virtio_queue::desc::split::Descriptor::new(a, l, if wr { VRING_DESC_F_WRITE as u16 } else { 0 }, 0));
        vq.build_desc_chain(&[d(0x10_0000, 16, false), d(0x20_0000, 512, true), d(0x30_0000, 1, true)]).unwrap();
        w(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        assert_eq!(vq.used().idx().load(), 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x30_0000)).unwrap(), VIRTIO_BLK_S_OK as u8);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x20_0000)).unwrap(), 7);
        assert_eq!(r(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
        assert_eq!(irq.read().unwrap(), 1, "the irqfd fired");
        w(&mut t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
        assert_eq!(r(&mut t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        // A notify of a queue that does not exist, odd-sized accesses: ignored.
        w(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
        t.mmio_write(BASE + VIRTIO_MMIO_STATUS as u64, &[0]).unwrap();
        // Reset.
        w(&mut t, VIRTIO_MMIO_STATUS, 0);
        assert_eq!((r(&mut t, VIRTIO_MMIO_STATUS), r(&mut t, VIRTIO_MMIO_QUEUE_READY)), (0, 0));
    }
}
