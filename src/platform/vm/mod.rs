//! The KVM platforms: glue between versus' [`crate::platform::Platform`]
//! and its VMM, the `versus-vmm` crate (crates/vmm, where every line that
//! talks to KVM lives and where the VMM is documented).
//!
//! | file | platform |
//! |---|---|
//! | [`bare`] | `vm-bare`: the kernel-less guest, VMM inside the versus process; and the VMM-answered `vm.*` probes |
//! | [`vmm_process`] | the kernel-less guest with its VMM in the static `versus-vmm` process (harness/vmm) |
//! | [`linux`] | `vm-linux`: a Linux guest (kernel discovery, the guest initramfs, the platform) |

pub mod bare;
pub mod linux;
pub mod vmm_process;
