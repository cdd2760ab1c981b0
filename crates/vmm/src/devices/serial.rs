//! A 16550A UART (vm-superio) on the port bus. COM1 (0x3f8, IRQ 4) is the
//! guest's console (ttyS0); COM2 (0x2f8, IRQ 3) carries the workload
//! protocol (ttyS1), so kernel messages never interleave with protocol lines.
//!
//! Output is split into lines and sent as [`GuestEvent`]s; the last lines are
//! kept for error reports; `echo` streams the raw bytes to stderr
//! (`--console`). The interrupt is an eventfd the VMM registers as an irqfd
//! on the UART's GSI.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::{Events, GuestEvent};
use crate::bus::{DeviceResult, Flow, PioDevice};

pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;
pub const COM2_PORT: u16 = 0x2f8;
pub const COM2_IRQ: u32 = 3;
/// Ports a UART occupies.
pub const UART_PORTS: u16 = 8;
/// Longest line kept; longer output is split (a guest printing without
/// newlines cannot grow host memory).
pub const MAX_LINE: usize = 4096;
/// Console lines kept for error reports.
pub const TAIL_LINES: usize = 40;

/// Which UART: decides the event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Console,
    Channel,
}

/// The UART's interrupt line: an eventfd (registered as a KVM irqfd).
#[derive(Debug)]
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// The last lines printed, shared with the VM's owner.
pub type Tail = Arc<Mutex<VecDeque<String>>>;

/// Receives the UART's transmitted bytes.
pub struct LineSink {
    role: Role,
    line: Vec<u8>,
    events: Events,
    tail: Tail,
    echo: bool,
    /// Bytes the guest transmitted.
    pub bytes: u64,
}

impl LineSink {
    fn flush_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_string();
        self.line.clear();
        if let Ok(mut t) = self.tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(text.clone());
        }
        self.events.send(match self.role {
            Role::Console => GuestEvent::Console(text),
            Role::Channel => GuestEvent::Channel(text),
        });
    }
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        if self.echo {
            let _ = std::io::stderr().write_all(buf);
        }
        for &b in buf {
            if b == b'\n' || self.line.len() >= MAX_LINE {
                self.flush_line();
                if b == b'\n' {
                    continue;
                }
            }
            self.line.push(b);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A UART on the bus.
pub struct SerialDevice {
    base: u16,
    uart: Serial<IrqLine, NoEvents, LineSink>,
    tail: Tail,
}

impl SerialDevice {
    /// A UART at `base` raising `irq` (the eventfd to register as irqfd).
    pub fn new(base: u16, role: Role, irq: EventFd, events: Events, echo: bool) -> SerialDevice {
        let tail: Tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let sink = LineSink { role, line: Vec::new(), events, tail: tail.clone(), echo, bytes: 0 };
        SerialDevice { base, uart: Serial::new(IrqLine(irq), sink), tail }
    }

    /// The last complete lines, oldest first, plus the unfinished one.
    pub fn tail(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
        let partial = &self.uart.writer().line;
        if !partial.is_empty() {
            v.push(String::from_utf8_lossy(partial).into_owned());
        }
        v
    }

    /// A handle on the tail that stays valid after the device is gone.
    pub fn tail_handle(&self) -> Tail {
        self.tail.clone()
    }

    pub fn bytes_transmitted(&self) -> u64 {
        self.uart.writer().bytes
    }

    /// Feeds bytes to the guest's receive FIFO (and raises the interrupt).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> Result<usize, String> {
        self.uart.enqueue_raw_bytes(bytes).map_err(|e| format!("{e:?}"))
    }
}

impl PioDevice for SerialDevice {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult {
        let off = port.wrapping_sub(self.base) as u8;
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = self.uart.read(off);
        }
        Ok(Flow::Continue)
    }
    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult {
        let off = port.wrapping_sub(self.base) as u8;
        if let Some(&b) = data.first() {
            // A failed interrupt write (eventfd overflow) loses nothing the
            // guest can notice: the line is already pending.
            let _ = self.uart.write(off, b);
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    const THR: u16 = 0;
    const IER: u16 = 1;
    const LSR: u16 = 5;
    const LCR: u16 = 3;

    fn dev(role: Role) -> (SerialDevice, EventFd, std::sync::mpsc::Receiver<GuestEvent>) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let (tx, rx) = channel();
        (SerialDevice::new(COM1_PORT, role, irq.try_clone().unwrap(), Events(Some(tx)), false), irq, rx)
    }

    fn out(d: &mut SerialDevice, s: &[u8]) {
        for &b in s {
            d.pio_write(COM1_PORT + THR, &[b]).unwrap();
        }
    }

    #[test]
    fn lines_become_events_and_tail() {
        let (mut d, _irq, rx) = dev(Role::Console);
        out(&mut d, b"Linux version 6.1\r\nCommand line: x\npart");
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Console("Linux version 6.1".into()));
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Console("Command line: x".into()));
        assert!(rx.try_recv().is_err(), "an unfinished line is not an event");
        assert_eq!(d.tail(), vec!["Linux version 6.1", "Command line: x", "part"]);
        assert_eq!(d.bytes_transmitted(), 39);
    }

    #[test]
    fn channel_role_and_long_lines_split() {
        let (mut d, _irq, rx) = dev(Role::Channel);
        out(&mut d, &vec![b'a'; MAX_LINE + 3]);
        out(&mut d, b"\nREADY\n");
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Channel("a".repeat(MAX_LINE)));
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Channel("aaa".into()));
        assert_eq!(rx.try_recv().unwrap(), GuestEvent::Channel("READY".into()));
    }

    #[test]
    fn transmitter_is_always_ready_and_raises_thre_interrupt() {
        let (mut d, irq, _rx) = dev(Role::Console);
        let mut b = [0u8];
        d.pio_read(COM1_PORT + LSR, &mut b).unwrap();
        assert_eq!(b[0] & 0x60, 0x60, "THR empty and transmitter idle, so polling drivers never wait");
        // Divisor latch access does not transmit.
        d.pio_write(COM1_PORT + LCR, &[0x80]).unwrap();
        d.pio_write(COM1_PORT + THR, &[0x01]).unwrap();
        d.pio_write(COM1_PORT + LCR, &[0x03]).unwrap();
        assert_eq!(d.bytes_transmitted(), 0);
        // Enable the THR-empty interrupt: writing a byte raises the IRQ.
        d.pio_write(COM1_PORT + IER, &[0x02]).unwrap();
        out(&mut d, b"x");
        assert!(irq.read().unwrap() >= 1);
    }

    #[test]
    fn input_reaches_the_receive_fifo() {
        let (mut d, _irq, _rx) = dev(Role::Console);
        assert_eq!(d.enqueue_input(b"hi").unwrap(), 2);
        let mut b = [0u8];
        d.pio_read(COM1_PORT + LSR, &mut b).unwrap();
        assert_eq!(b[0] & 1, 1, "data ready");
        d.pio_read(COM1_PORT + THR, &mut b).unwrap();
        assert_eq!(b[0], b'h');
    }
}
