//! The host side of the bare guest's port-I/O host calls (see
//! [`crate::abi`]): a [`PioDevice`] on `PORT_LINE .. PORT_LINE+3` that reads
//! protocol lines from the guest's mailbox page, answers the `call`
//! workload's trivial host call, and records the guest's exit request.
//! Lines are checked against the workload protocol and kept as text (the
//! caller parses them into its own types).

use vm_memory::{Bytes, GuestAddress};

use versus_workload::protocol::Message;

use crate::abi::{EXIT_DONE, EXIT_IDLE, MAILBOX_ADDR, MAILBOX_SIZE, PORT_CALL, PORT_EXIT, PORT_LINE};
use crate::bus::{DeviceResult, Flow, PioDevice};
use crate::clock::now_ns;
use crate::memory::GuestMemoryMmap;
use crate::VmError;

/// The VM-exit kinds the bare guest's run loop serves (resumes the guest
/// after); every other exit ends the guest with an error.
pub const SERVED_EXITS: &[&str] =
    &["KVM_EXIT_IO (port I/O to the host-call ports only; I/O to any other port, MMIO, HLT, shutdown and every other exit end the guest)"];

/// The host calls the VMM serves (one per port, in the allowed direction).
pub const HOST_CALLS: &[&str] = &[
    "out PORT_LINE 0x7e0 (one protocol line from the mailbox: READY, RESULT, LOG, ABORT, PROBE)",
    "in PORT_CALL 0x7e1 (the trivial call: the instance id)",
    "out PORT_EXIT 0x7e2 (done, or park until stopped)",
];

/// Why the guest paused the run loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `READY` received at this monotonic ns.
    Ready(u64),
    /// The guest finished (`EXIT_DONE`).
    Done,
    /// The guest parked itself until stopped (`EXIT_IDLE`).
    Idle,
}

/// The host-call device of one bare guest.
pub struct HostCall {
    mem: GuestMemoryMmap,
    instance_id: u64,
    /// Protocol lines other than READY (RESULT, LOG, PROBE), in order.
    pub received: Vec<String>,
    /// Set when the guest paused the loop.
    pub event: Option<Event>,
    /// Set when the guest sent ABORT or a malformed line.
    pub error: Option<VmError>,
    /// Host calls answered on `PORT_CALL`.
    pub calls: u64,
}

impl HostCall {
    pub fn new(mem: GuestMemoryMmap, instance_id: u64) -> HostCall {
        HostCall { mem, instance_id, received: Vec::new(), event: None, error: None, calls: 0 }
    }

    /// Takes what paused the loop: the event, or the guest's error.
    pub fn take(&mut self) -> Result<Option<Event>, VmError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok(self.event.take())
    }

    fn line(&mut self, len: u32) -> DeviceResult {
        let t = now_ns();
        if len as u64 > MAILBOX_SIZE {
            return Err(format!("line length {len} exceeds the {MAILBOX_SIZE}-byte mailbox"));
        }
        let mut buf = vec![0u8; len as usize];
        self.mem.read_slice(&mut buf, GuestAddress(MAILBOX_ADDR)).map_err(|e| format!("reading the mailbox: {e}"))?;
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        match Message::parse(line) {
            Ok(Message::Ready { .. }) => {
                self.event = Some(Event::Ready(t));
                Ok(Flow::Pause)
            }
            Ok(Message::Abort(why)) => {
                self.error = Some(VmError::Aborted(why.to_string()));
                Ok(Flow::Pause)
            }
            Ok(_) => {
                self.received.push(line.to_string());
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.error = Some(VmError::Protocol { line: line.to_string(), reason: e.to_string() });
                Ok(Flow::Pause)
            }
        }
    }

    /// The guest's `LOG` lines so far (their text).
    pub fn log_lines(&self) -> Vec<String> {
        self.received
            .iter()
            .filter_map(|l| match Message::parse(l) {
                Ok(Message::Log(s)) => Some(s.to_string()),
                _ => None,
            })
            .collect()
    }
}

fn u32_of(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = data.len().min(4);
    b[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(b)
}

impl PioDevice for HostCall {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult {
        match port {
            PORT_CALL => {
                self.calls += 1;
                let v = self.instance_id.to_le_bytes();
                let n = data.len().min(8);
                data[..n].copy_from_slice(&v[..n]);
                Ok(Flow::Continue)
            }
            _ => Err(format!("port {port:#x} is write-only")),
        }
    }

    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult {
        match port {
            PORT_LINE => self.line(u32_of(data)),
            PORT_EXIT => match u32_of(data) {
                EXIT_DONE => {
                    self.event = Some(Event::Done);
                    Ok(Flow::Pause)
                }
                EXIT_IDLE => {
                    self.event = Some(Event::Idle);
                    Ok(Flow::Pause)
                }
                v => Err(format!("unknown exit code {v}")),
            },
            _ => Err(format!("port {port:#x} is read-only")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{PORT_COUNT, PORT_FIRST};
    use crate::memory;

    #[test]
    fn serves_exactly_the_listed_host_calls() {
        assert_eq!(HOST_CALLS.len(), PORT_COUNT as usize);
        let mem = memory::allocate(&[(GuestAddress(0), 2 << 20)]).unwrap();
        let mut h = HostCall::new(mem, 7);
        let mut d = [0u8; 4];
        assert_eq!(h.pio_read(PORT_CALL, &mut d), Ok(Flow::Continue));
        assert_eq!(u32::from_le_bytes(d), 7);
        assert_eq!(h.pio_write(PORT_EXIT, &EXIT_DONE.to_le_bytes()), Ok(Flow::Pause));
        assert!(h.pio_write(PORT_LINE, &0u32.to_le_bytes()).is_ok());
        // The other direction of each port is refused.
        assert!(h.pio_read(PORT_LINE, &mut d).is_err());
        assert!(h.pio_read(PORT_EXIT, &mut d).is_err());
        assert!(h.pio_write(PORT_CALL, &d).is_err());
        for (i, c) in HOST_CALLS.iter().enumerate() {
            assert!(c.contains(&format!("{:#x}", PORT_FIRST + i as u16)), "{c}");
        }
    }
}
