//! The device bus: port-I/O devices on port ranges and MMIO devices on
//! guest-physical address ranges. The run loop ([`super::vcpu::run`])
//! dispatches every I/O exit here, so new devices are added by registering
//! them, never by editing the run loop.
//!
//! Devices are shared as `Arc<Mutex<dyn ..>>` (the Firecracker pattern): the
//! owner keeps a typed clone to inspect the device after the run loop pauses.

use std::sync::{Arc, Mutex};

/// What the run loop does after a device handled an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Resume the guest.
    Continue,
    /// Return from the run loop with [`super::vcpu::Paused::ByDevice`]; the
    /// device's owner looks at the device to see why.
    Pause,
}

/// A device error: the run loop turns it into [`super::VmError::Device`]
/// with the port/address and guest RIP.
pub type DeviceResult = std::result::Result<Flow, String>;

/// A device on I/O ports. `port` is the absolute port number; `data` is 1, 2
/// or 4 bytes (little endian). For `pio_read`, fill `data`.
pub trait PioDevice: Send {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult;
    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult;
}

/// A device on guest-physical addresses (outside RAM).
pub trait MmioDevice: Send {
    fn mmio_read(&mut self, addr: u64, data: &mut [u8]) -> DeviceResult;
    fn mmio_write(&mut self, addr: u64, data: &[u8]) -> DeviceResult;
}

/// A registration clash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device range {start:#x}+{len:#x} overlaps a registered device")]
pub struct Overlap {
    pub start: u64,
    pub len: u64,
}

struct Entry<D: ?Sized> {
    start: u64,
    len: u64,
    dev: Arc<Mutex<D>>,
}

/// Port and MMIO devices by range. Lookup is a linear scan: a VM has a
/// handful of devices, and the most used one is registered first.
#[derive(Default)]
pub struct Bus {
    pio: Vec<Entry<dyn PioDevice>>,
    mmio: Vec<Entry<dyn MmioDevice>>,
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

impl Bus {
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Registers `dev` on ports `base .. base+len`.
    pub fn add_pio(&mut self, base: u16, len: u16, dev: Arc<Mutex<dyn PioDevice>>) -> Result<(), Overlap> {
        let (start, len) = (base as u64, len as u64);
        if len == 0 || self.pio.iter().any(|e| overlaps(e.start, e.len, start, len)) {
            return Err(Overlap { start, len });
        }
        self.pio.push(Entry { start, len, dev });
        Ok(())
    }

    /// Registers `dev` on guest-physical `base .. base+len`.
    pub fn add_mmio(&mut self, base: u64, len: u64, dev: Arc<Mutex<dyn MmioDevice>>) -> Result<(), Overlap> {
        if len == 0 || self.mmio.iter().any(|e| overlaps(e.start, e.len, base, len)) {
            return Err(Overlap { start: base, len });
        }
        self.mmio.push(Entry { start: base, len, dev });
        Ok(())
    }

    /// The port device serving `port`, if any.
    pub fn pio_device(&self, port: u16) -> Option<&Arc<Mutex<dyn PioDevice>>> {
        let p = port as u64;
        self.pio.iter().find(|e| p >= e.start && p < e.start + e.len).map(|e| &e.dev)
    }

    /// The MMIO device serving `addr .. addr+size`, if any (the whole access
    /// must fall inside the device's range).
    pub fn mmio_device(&self, addr: u64, size: usize) -> Option<&Arc<Mutex<dyn MmioDevice>>> {
        let end = addr.saturating_add(size as u64);
        self.mmio.iter().find(|e| addr >= e.start && end <= e.start + e.len).map(|e| &e.dev)
    }

    /// `None` when no device serves the port.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) -> Option<DeviceResult> {
        let dev = self.pio_device(port)?;
        Some(match dev.lock() {
            Ok(mut d) => d.pio_read(port, data),
            Err(_) => Err("device state poisoned by an earlier panic".into()),
        })
    }

    pub fn pio_write(&self, port: u16, data: &[u8]) -> Option<DeviceResult> {
        let dev = self.pio_device(port)?;
        Some(match dev.lock() {
            Ok(mut d) => d.pio_write(port, data),
            Err(_) => Err("device state poisoned by an earlier panic".into()),
        })
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> Option<DeviceResult> {
        let dev = self.mmio_device(addr, data.len())?;
        Some(match dev.lock() {
            Ok(mut d) => d.mmio_read(addr, data),
            Err(_) => Err("device state poisoned by an earlier panic".into()),
        })
    }

    pub fn mmio_write(&self, addr: u64, data: &[u8]) -> Option<DeviceResult> {
        let dev = self.mmio_device(addr, data.len())?;
        Some(match dev.lock() {
            Ok(mut d) => d.mmio_write(addr, data),
            Err(_) => Err("device state poisoned by an earlier panic".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl PioDevice for Echo {
        fn pio_read(&mut self, _port: u16, data: &mut [u8]) -> DeviceResult {
            data.fill(self.0);
            Ok(Flow::Continue)
        }
        fn pio_write(&mut self, _port: u16, data: &[u8]) -> DeviceResult {
            self.0 = data[0];
            Ok(if data[0] == 0xff { Flow::Pause } else { Flow::Continue })
        }
    }
    impl MmioDevice for Echo {
        fn mmio_read(&mut self, _a: u64, data: &mut [u8]) -> DeviceResult {
            data.fill(self.0);
            Ok(Flow::Continue)
        }
        fn mmio_write(&mut self, _a: u64, _data: &[u8]) -> DeviceResult {
            Err("read-only".into())
        }
    }

    #[test]
    fn dispatches_by_range_and_rejects_overlaps() {
        let mut bus = Bus::new();
        let e = Arc::new(Mutex::new(Echo(7)));
        bus.add_pio(0x10, 4, e.clone()).unwrap();
        assert_eq!(bus.add_pio(0x13, 1, Arc::new(Mutex::new(Echo(0)))), Err(Overlap { start: 0x13, len: 1 }));
        assert!(bus.add_pio(0x14, 1, Arc::new(Mutex::new(Echo(0)))).is_ok());
        let mut b = [0u8; 2];
        assert_eq!(bus.pio_read(0x12, &mut b), Some(Ok(Flow::Continue)));
        assert_eq!(b, [7, 7]);
        assert_eq!(bus.pio_write(0x10, &[0xff]), Some(Ok(Flow::Pause)));
        assert_eq!(e.lock().unwrap().0, 0xff);
        assert!(bus.pio_read(0x20, &mut b).is_none());
        assert!(bus.pio_read(0x0f, &mut b).is_none());

        bus.add_mmio(0x1000, 0x100, Arc::new(Mutex::new(Echo(3)))).unwrap();
        let mut d = [0u8; 4];
        assert_eq!(bus.mmio_read(0x10fc, &mut d), Some(Ok(Flow::Continue)));
        assert!(bus.mmio_read(0x10fe, &mut d).is_none(), "access straddling the end is not the device's");
        assert_eq!(bus.mmio_write(0x1000, &d), Some(Err("read-only".into())));
    }
}
