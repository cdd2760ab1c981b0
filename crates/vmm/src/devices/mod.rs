//! Legacy PC devices for the `vm-linux` guest, on the VMM's port bus
//! ([`super::bus`]): a 16550 UART ([`serial`]), an i8042 whose reset command
//! ends the VM ([`i8042`]), a CMOS clock ([`rtc`]), the boot-done port ([`boot_done`]) and a sink for
//! legacy ports Linux probes but versus does not emulate ([`sink`]), and
//! a virtio-blk disk on the virtio-mmio transport ([`virtio`]).
//!
//! Devices report what the guest does as [`GuestEvent`]s on a channel, so the
//! vCPU thread never waits on the host side.

pub mod boot_done;
pub mod i8042;
pub mod rtc;
pub mod serial;
pub mod sink;
pub mod virtio;

use std::sync::mpsc::Sender;

/// Something a device saw the guest do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEvent {
    /// A complete line on the console UART (COM1, ttyS0), without its newline.
    Console(String),
    /// A complete line on the workload channel UART (COM2, ttyS1).
    Channel(String),
    /// The guest's /init wrote the boot-done magic; monotonic ns on the host.
    BootDone { t_ns: u64 },
    /// The guest asked the i8042 to reset the CPU (reboot): the VM ends.
    Reset,
}

/// Where devices send their events. A closed receiver is not an error for
/// the guest: the host stopped listening and will stop the VM.
#[derive(Debug, Clone)]
pub struct Events(pub Option<Sender<GuestEvent>>);

impl Events {
    pub fn none() -> Events {
        Events(None)
    }
    pub fn send(&self, e: GuestEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e);
        }
    }
}
