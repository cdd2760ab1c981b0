//! The i8042 keyboard controller, reduced to what a microVM needs: its CPU
//! reset command (0xfe to port 0x64), which Linux issues on reboot with
//! `reboot=k`, ends the VM (vm-superio's `I8042Device`); and the controller
//! commands Linux's i8042 driver sends at boot (read and write the command
//! byte, self-tests), answered at once with no keyboard behind them. Without
//! the answers every command waited for its timeout ("i8042: Can't read CTR
//! while initializing i8042"), over a second of each boot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use super::{Events, GuestEvent};
use crate::bus::{DeviceResult, Flow, PioDevice};

/// The data port; the command/status port is `I8042_PORT + 4` (0x64).
pub const I8042_PORT: u16 = 0x60;
pub const I8042_COMMAND_PORT: u16 = 0x64;
pub const CMD_RESET_CPU: u8 = 0xfe;
/// Controller commands answered (Linux's drivers/input/serio/i8042.h).
pub const CMD_READ_CTR: u8 = 0x20;
pub const CMD_WRITE_CTR: u8 = 0x60;
pub const CMD_AUX_DISABLE: u8 = 0xa7;
pub const CMD_AUX_ENABLE: u8 = 0xa8;
pub const CMD_AUX_TEST: u8 = 0xa9;
pub const CMD_SELF_TEST: u8 = 0xaa;
pub const CMD_KBD_TEST: u8 = 0xab;
pub const CMD_KBD_DISABLE: u8 = 0xad;
pub const CMD_KBD_ENABLE: u8 = 0xae;
/// Status register: output buffer full; system flag (POST passed);
/// keyboard not inhibited (no keylock).
pub const STATUS_OBF: u8 = 0x01;
pub const STATUS_SYS: u8 = 0x04;
pub const STATUS_UNLOCKED: u8 = 0x10;
/// Command byte: keyboard interrupt, system flag, keyboard and aux disabled.
const CTR_KBD_INT: u8 = 0x01;
const CTR_SYS: u8 = 0x04;
const CTR_KBD_DISABLED: u8 = 0x10;
const CTR_AUX_DISABLED: u8 = 0x20;

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
    /// The command byte (CTR).
    ctr: u8,
    /// A reply waiting in the output buffer.
    out: Option<u8>,
    /// A command waiting for its data byte on port 0x60.
    pending: Option<u8>,
}

impl I8042 {
    pub fn new(events: Events) -> I8042 {
        I8042 { dev: I8042Device::new(ResetFlag::default()), events, ctr: CTR_KBD_INT | CTR_SYS, out: None, pending: None }
    }

    fn command(&mut self, cmd: u8) {
        match cmd {
            CMD_READ_CTR => self.out = Some(self.ctr),
            CMD_WRITE_CTR => self.pending = Some(cmd),
            CMD_SELF_TEST => self.out = Some(0x55),
            // 0: the interface test passed.
            CMD_KBD_TEST | CMD_AUX_TEST => self.out = Some(0x00),
            CMD_KBD_DISABLE => self.ctr |= CTR_KBD_DISABLED,
            CMD_KBD_ENABLE => self.ctr &= !CTR_KBD_DISABLED,
            CMD_AUX_DISABLE => self.ctr |= CTR_AUX_DISABLED,
            CMD_AUX_ENABLE => self.ctr &= !CTR_AUX_DISABLED,
            _ => {}
        }
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
            *b = match port {
                I8042_COMMAND_PORT => STATUS_SYS | STATUS_UNLOCKED | if self.out.is_some() { STATUS_OBF } else { 0 },
                _ => self.out.take().unwrap_or(0),
            };
        }
        Ok(Flow::Continue)
    }
    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult {
        let Some(&b) = data.first() else {
            return Ok(Flow::Continue);
        };
        match (port, self.pending.take()) {
            (I8042_COMMAND_PORT, _) => self.command(b),
            (_, Some(CMD_WRITE_CTR)) => self.ctr = b,
            // A byte for the keyboard: there is none.
            _ => {}
        }
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
        assert_eq!(b[0] & 0x03, 0, "status: nothing to read, ready for input");
        // Other commands and data writes do not reset.
        assert_eq!(k.pio_write(I8042_COMMAND_PORT, &[0x20]), Ok(Flow::Continue));
        assert_eq!(k.pio_write(I8042_PORT, &[CMD_RESET_CPU]), Ok(Flow::Continue), "0xfe on the data port is not a reset");
        assert!(!k.reset_requested());
        assert!(rx.try_recv().is_err());
        assert_eq!(k.pio_write(I8042_COMMAND_PORT, &[CMD_RESET_CPU]), Ok(Flow::Pause));
        assert!(k.reset_requested());
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Reset);
    }

    fn status(k: &mut I8042) -> u8 {
        let mut b = [0u8];
        k.pio_read(I8042_COMMAND_PORT, &mut b).unwrap();
        b[0]
    }

    fn data(k: &mut I8042) -> u8 {
        let mut b = [0u8];
        k.pio_read(I8042_PORT, &mut b).unwrap();
        b[0]
    }

    #[test]
    fn controller_commands_are_answered_at_once() {
        let mut k = I8042::new(Events::none());
        // Linux's i8042_controller_init: read the command byte, write it back changed.
        k.pio_write(I8042_COMMAND_PORT, &[CMD_READ_CTR]).unwrap();
        assert_eq!(status(&mut k) & STATUS_OBF, STATUS_OBF, "a reply waits");
        let ctr = data(&mut k);
        assert_eq!(ctr, CTR_KBD_INT | CTR_SYS);
        assert_eq!(status(&mut k) & STATUS_OBF, 0, "reading it empties the buffer");
        k.pio_write(I8042_COMMAND_PORT, &[CMD_WRITE_CTR]).unwrap();
        k.pio_write(I8042_PORT, &[0x74]).unwrap();
        k.pio_write(I8042_COMMAND_PORT, &[CMD_READ_CTR]).unwrap();
        assert_eq!(data(&mut k), 0x74);
        // A data byte with no command pending goes to the (absent) keyboard.
        k.pio_write(I8042_PORT, &[0x12]).unwrap();
        k.pio_write(I8042_COMMAND_PORT, &[CMD_KBD_ENABLE]).unwrap();
        k.pio_write(I8042_COMMAND_PORT, &[CMD_READ_CTR]).unwrap();
        assert_eq!(data(&mut k), 0x74 & !CTR_KBD_DISABLED);
        k.pio_write(I8042_COMMAND_PORT, &[CMD_SELF_TEST]).unwrap();
        assert_eq!(data(&mut k), 0x55);
        k.pio_write(I8042_COMMAND_PORT, &[CMD_KBD_TEST]).unwrap();
        assert_eq!(data(&mut k), 0x00);
        assert!(!k.reset_requested());
        assert_eq!(status(&mut k) & 0x03, 0);
    }
}
