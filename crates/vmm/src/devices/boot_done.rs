//! The boot-done signal, in the spirit of Firecracker's boot timer: the
//! guest's /init writes [`BOOT_DONE_MAGIC`] (32 bits) to port
//! [`BOOT_DONE_PORT`] the moment it starts; the VMM timestamps the write.
//! It splits the boot into "kernel" (entry to /init) and "init to ready".

use super::{Events, GuestEvent};
use crate::bus::{DeviceResult, Flow, PioDevice};
use crate::clock::now_ns;

/// A port no PC device uses (the guest program uses the same constant).
pub const BOOT_DONE_PORT: u16 = 0x0440;
/// "VRSS" little-endian; any other value is ignored.
pub const BOOT_DONE_MAGIC: u32 = 0x5353_5256;

#[derive(Debug)]
pub struct BootDone {
    events: Events,
    /// Host monotonic ns of the first magic write.
    pub t_ns: Option<u64>,
    /// Writes that were not the magic (diagnostics).
    pub ignored: u64,
}

impl BootDone {
    pub fn new(events: Events) -> BootDone {
        BootDone { events, t_ns: None, ignored: 0 }
    }
}

impl PioDevice for BootDone {
    fn pio_read(&mut self, _port: u16, data: &mut [u8]) -> DeviceResult {
        data.fill(0);
        Ok(Flow::Continue)
    }
    fn pio_write(&mut self, _port: u16, data: &[u8]) -> DeviceResult {
        let t = now_ns();
        let v = match *data {
            [a, b, c, d] => u32::from_le_bytes([a, b, c, d]),
            _ => {
                self.ignored += 1;
                return Ok(Flow::Continue);
            }
        };
        if v == BOOT_DONE_MAGIC && self.t_ns.is_none() {
            self.t_ns = Some(t);
            self.events.send(GuestEvent::BootDone { t_ns: t });
        } else {
            self.ignored += 1;
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn magic_is_timestamped_once() {
        let (tx, rx) = channel();
        let mut d = BootDone::new(Events(Some(tx)));
        d.pio_write(BOOT_DONE_PORT, &[1]).unwrap();
        d.pio_write(BOOT_DONE_PORT, &7u32.to_le_bytes()).unwrap();
        assert!(d.t_ns.is_none());
        let before = now_ns();
        d.pio_write(BOOT_DONE_PORT, &BOOT_DONE_MAGIC.to_le_bytes()).unwrap();
        let t = d.t_ns.unwrap();
        assert!(t >= before);
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::BootDone { t_ns: t });
        d.pio_write(BOOT_DONE_PORT, &BOOT_DONE_MAGIC.to_le_bytes()).unwrap();
        assert!(rx.try_recv().is_err(), "a second signal is ignored");
        assert_eq!((d.t_ns, d.ignored), (Some(t), 3));
    }
}
