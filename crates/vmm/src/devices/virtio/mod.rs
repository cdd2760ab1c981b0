//! virtio devices for the Linux guest: the virtio-mmio transport
//! ([`mmio`]) and a block device over a raw disk image ([`block`]), on the
//! rust-vmm `virtio-queue` crate's split virtqueue.

pub mod block;
pub mod mmio;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

/// A device behind a virtio transport.
pub trait VirtioDevice {
    /// The virtio device id (2: block).
    fn device_type(&self) -> u32;
    /// The feature bits it offers.
    fn features(&self) -> u64;
    /// The largest size of each of its queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads its config space at `offset` (bytes past its end read as 0).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serves the available chains of queue `index`; `true` when it used
    /// any (the transport then interrupts the guest).
    fn process_queue(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool;
}
