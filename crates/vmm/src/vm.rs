//! The process-wide `/dev/kvm` handle and VM creation.

use std::sync::OnceLock;

use kvm_ioctls::{Kvm, VmFd};

use crate::VmError;

static KVM: OnceLock<Kvm> = OnceLock::new();

/// The process-wide `/dev/kvm` handle, opened on first use and kept open
/// (one fd for the life of the process, as every VMM does).
pub fn kvm() -> Result<&'static Kvm, VmError> {
    if let Some(k) = KVM.get() {
        return Ok(k);
    }
    let k = Kvm::new().map_err(VmError::OpenKvm)?;
    // A racing thread may have set it first; then ours is dropped (closed).
    let _ = KVM.set(k);
    KVM.get().ok_or_else(|| VmError::VmmProcess("the /dev/kvm handle vanished".into()))
}

/// KVM_CREATE_VM. The returned fd owns the VM: dropping it destroys the VM
/// (after every vCPU fd of it is dropped).
pub fn create_vm() -> Result<VmFd, VmError> {
    kvm()?.create_vm().map_err(|e| VmError::kvm("KVM_CREATE_VM", e))
}

/// `Err(reason)` when this host cannot run KVM guests.
pub fn available() -> Result<(), String> {
    if !std::path::Path::new("/dev/kvm").exists() {
        return Err("/dev/kvm does not exist: load kvm_intel, kvm_amd or kvm_pvm".into());
    }
    kvm().map(|_| ()).map_err(|e| e.to_string())
}
