//! The i8042 keyboard controller, reduced to what a microVM needs: its CPU
//! reset command (0xfe to port 0x64), which Linux issues on reboot with
//! `reboot=k`, ends the VM. Built on vm-superio's `I8042Device`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use super::{Events, GuestEvent};
use crate::bus::{DeviceResult, Flow, PioDevice};

/// The data port; the command/status port is `I8042_PORT + 4` (0x64).
pub const I8042_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;
pub const CMD_RESET_CPU: u8 = 0xfe;

/// Set when the guest asked for a reset.
#[derive(Debug, Clone, Default)]
pub struct ResetFlag(pub Arc<AtomicBool>);

impl ResetFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// Registered on ports 0x60..0x65 (0x61, the PC speaker gate, is KVM's PIT's
/// when the in-kernel PIT exists; register 0x60 and 0x64 separately then).
pub struct I8042 {
    dev: I8042Device<ResetFlag>,
    events: Events,
}

impl I8042 {
    pub fn new(events: Events) -> I8042 {
        I8042 { dev: I8042Device::new(ResetFlag::default()), events }
    }
    /// Whether the guest asked for a CPU reset.
    pub fn reset_requested(&self) -> bool {
        self.dev.reset_evt().is_set()
    }
}

impl PioDevice for I8042 {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult {
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = self.dev.read(port.wrapping_sub(I8042_PORT) as u8);
        }
        Ok(Flow::Continue)
    }
    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult {
        let Some(&b) = data.first() else {
            return Ok(Flow::Continue);
        };
        let was = self.reset_requested();
        let Ok(()) = self.dev.write(port.wrapping_sub(I8042_PORT) as u8, b);
        if !was && self.reset_requested() {
            self.events.send(GuestEvent::Reset);
            // Leave the run loop: the VM is over.
            return Ok(Flow::Pause);
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn reset_command_pauses_and_reports() {
        let (tx, rx) = channel();
        let mut k = I8042::new(Events(Some(tx)));
        let mut b = [0xaa];
        assert_eq!(k.pio_read(I8042_COMMAND_PORT, &mut b), Ok(Flow::Continue));
        assert_eq!(b[0], 0, "status: nothing to read, ready for input");
        // Other commands and data writes do nothing.
        assert_eq!(k.pio_write(I8042_COMMAND_PORT, &[0x20]), Ok(Flow::Continue));
        assert_eq!(k.pio_write(I8042_PORT, &[CMD_RESET_CPU]), Ok(Flow::Continue), "0xfe on the data port is not a reset");
        assert!(!k.reset_requested());
        assert!(rx.try_recv().is_err());
        assert_eq!(k.pio_write(I8042_COMMAND_PORT, &[CMD_RESET_CPU]), Ok(Flow::Pause));
        assert!(k.reset_requested());
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Reset);
    }
}
