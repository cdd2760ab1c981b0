//! The KVM platforms: glue between versus' [`crate::platform::Platform`]
//! and its VMM, the `versus-vmm` crate (crates/vmm, where every line that
//! talks to KVM lives and where the VMM is documented).
//!
//! | module | platform |
//! |---|---|
//! | [`bare`] | `vm-bare` (one VMM process per instance) and `vm-bare-inproc` (the VMM inside versus): the kernel-less guest, and its VMM-answered `vm.*` probes |
//! | [`linux`] | `vm-linux`: a Linux guest (kernel discovery, the guest initramfs, the platform) |
//! | [`qemu`] | `qemu`: QEMU booting the same kernel and initramfs (a peer VMM, driven as a process) |
//! | [`vmm_process`] | the `versus-vmm` process `vm-bare` and `vm-linux` run their guests in: the program, its spawn, its boot marks, its memory |

pub mod bare;
pub mod linux;
pub mod qemu;
pub mod vmm_process;
