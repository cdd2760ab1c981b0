//! Errors of the `vm-linux` guest. Each message says what went wrong and what
//! the user can do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    #[error("no guest kernel found: pass --kernel PATH (a vmlinux or bzImage), make /boot/vmlinuz-{release} readable, or run harness/fetch-kernel to download Debian's cloud kernel")]
    NoKernel { release: String },

    #[error("cannot read the kernel image {path}: {source}")]
    ReadKernel { path: PathBuf, source: std::io::Error },

    #[error("{0}: it is neither an ELF vmlinux nor a bzImage (no ELF magic, no `HdrS` at 0x202); pass a Linux kernel with --kernel")]
    NotAKernel(String),

    #[error("the bzImage is not usable: {0}")]
    BadBzImage(String),

    #[error("the kernel payload is compressed with {0}, which versus cannot decompress; pass an uncompressed vmlinux with --kernel (e.g. from the distribution's debug package or scripts/extract-vmlinux)")]
    UnsupportedCompression(&'static str),

    #[error("decompressing the {format} kernel payload failed: {detail}; the bzImage may be truncated or corrupt (re-run harness/fetch-kernel or pass a vmlinux with --kernel)")]
    Decompress { format: &'static str, detail: String },

    #[error("the vmlinux ELF is not usable: {0}")]
    BadElf(String),

    #[error("loading the kernel into guest memory failed: {0}; give the guest more memory or use a smaller kernel")]
    Load(String),

    #[error("guest memory of {mem_bytes} bytes is too small: the kernel and initramfs need at least {need_bytes} bytes (raise the VM's memory)")]
    MemoryTooSmall { mem_bytes: u64, need_bytes: u64 },

    #[error("the kernel command line is {len} bytes; the kernel accepts at most {max} (shorten it)")]
    CmdlineTooLong { len: usize, max: usize },

    #[error("writing {what} into guest memory at {addr:#x} failed: {detail}")]
    GuestWrite { what: &'static str, addr: u64, detail: String },

    #[error("initramfs: {0}")]
    Initramfs(String),

    #[error("{0}")]
    Vm(Box<crate::VmError>),

    #[error("vm-linux does not run representatively on this host: {0}; pass --force (versus launch vm-linux --force) to boot it anyway")]
    NotRepresentative(String),

    #[error("KVM call `{call}` failed: {source}")]
    Kvm { call: &'static str, source: kvm_ioctls::Error },
}

pub type Result<T, E = LinuxError> = std::result::Result<T, E>;

impl LinuxError {
    pub(crate) fn kvm(call: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> LinuxError {
        move |source| LinuxError::Kvm { call, source }
    }
}
