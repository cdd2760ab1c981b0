//! Guest RAM: anonymous, lazily backed vm-memory regions registered as KVM
//! memory slots.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

pub use vm_memory::GuestMemoryMmap;

use crate::VmError;

/// How guest RAM is mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RamOptions {
    /// Mark the guest RAM `MADV_MERGEABLE`, so that the kernel's samepage
    /// merging (KSM, when it runs) may merge identical pages of this guest
    /// and of others, as VMMs that offer memory deduplication do.
    pub mergeable: bool,
}

/// Maps anonymous memory for `ranges` (guest address, bytes; sorted, not
/// overlapping). Pages are backed on first touch, so untouched RAM costs
/// the host nothing.
pub fn allocate(ranges: &[(GuestAddress, usize)]) -> Result<GuestMemoryMmap, VmError> {
    allocate_with(ranges, RamOptions::default())
}

/// [`allocate`] with `opts` applied to every region.
pub fn allocate_with(ranges: &[(GuestAddress, usize)], opts: RamOptions) -> Result<GuestMemoryMmap, VmError> {
    let bytes = ranges.iter().map(|r| r.1 as u64).sum();
    let mem = GuestMemoryMmap::from_ranges(ranges).map_err(|e| VmError::Memory { bytes, reason: e.to_string() })?;
    if opts.mergeable {
        for region in mem.iter() {
            let host = region.get_host_address(MemoryRegionAddress(0)).map_err(|e| VmError::Memory { bytes: region.len(), reason: e.to_string() })?;
            // SAFETY: advises on exactly the live anonymous mapping of this
            // region (owned by `mem`); MADV_MERGEABLE changes no content and
            // no mapping, only lets KSM merge the pages copy-on-write.
            if unsafe { libc::madvise(host.cast(), region.len() as usize, libc::MADV_MERGEABLE) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(VmError::Memory { bytes, reason: format!("madvise(MADV_MERGEABLE) on guest RAM: {e} (a kernel without CONFIG_KSM)") });
            }
        }
    }
    Ok(mem)
}

/// Whether the host range `[addr, addr+len)` of this process is marked
/// mergeable (its smaps `VmFlags` has `mg`): for tests and checks.
pub fn is_mergeable(addr: u64, len: u64) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else { return false };
    let mut inside = false;
    for l in text.lines() {
        if let Some((range, _)) = l.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                    inside = a <= addr && addr.saturating_add(len) <= b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = l.strip_prefix("VmFlags:") {
                return flags.split_whitespace().any(|f| f == "mg");
            }
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_ram_is_mergeable_only_when_asked() {
        let plain = allocate(&[(GuestAddress(0), 2 << 20)]).unwrap();
        let merged = allocate_with(&[(GuestAddress(0), 2 << 20)], RamOptions { mergeable: true }).unwrap();
        let (p, m) = (host_ranges(&plain)[0], host_ranges(&merged)[0]);
        assert!(!is_mergeable(p.0, p.1));
        assert!(is_mergeable(m.0, m.1));
    }
}
