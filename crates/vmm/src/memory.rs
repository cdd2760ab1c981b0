//! Guest RAM: anonymous, lazily backed vm-memory regions registered as KVM
//! memory slots.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

pub use vm_memory::GuestMemoryMmap;

use crate::VmError;

/// Maps anonymous memory for `ranges` (guest address, bytes; sorted, not
/// overlapping). Pages are backed on first touch, so untouched RAM costs
/// the host nothing.
pub fn allocate(ranges: &[(GuestAddress, usize)]) -> Result<GuestMemoryMmap, VmError> {
    GuestMemoryMmap::from_ranges(ranges).map_err(|e| VmError::Memory { bytes: ranges.iter().map(|r| r.1 as u64).sum(), reason: e.to_string() })
}

/// Registers every region of `mem` as a KVM memory slot (slot i = region i).
/// `mem` must outlive `vm` (drop the VM first).
pub fn register(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), VmError> {
    for (slot, region) in mem.iter().enumerate() {
        let host = region.get_host_address(MemoryRegionAddress(0)).map_err(|e| VmError::Memory { bytes: region.len(), reason: e.to_string() })?;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region is a live mapping of exactly `memory_size` bytes
        // owned by `mem`, which the callers keep alive longer than the VM (the
        // VM fd is dropped before the memory, see `bare::BareVm`).
        unsafe { vm.set_user_memory_region(r) }.map_err(|e| VmError::kvm("KVM_SET_USER_MEMORY_REGION", e))?;
    }
    Ok(())
}

/// The host virtual address ranges (start, len) of the guest RAM mappings,
/// to exclude them when measuring the VMM's own memory.
pub fn host_ranges(mem: &GuestMemoryMmap) -> Vec<(u64, u64)> {
    mem.iter().filter_map(|r| r.get_host_address(MemoryRegionAddress(0)).ok().map(|p| (p as u64, r.len()))).collect()
}

/// Whether `[addr, addr+len)` lies in guest RAM.
pub fn in_ram(mem: &GuestMemoryMmap, addr: u64, len: u64) -> bool {
    mem.iter().any(|r| addr >= r.start_addr().0 && addr.saturating_add(len) <= r.start_addr().0 + r.len())
}
