//! How a VM launch or a guest can fail. Every guest-caused exit that the VMM
//! does not expect ends the guest with one of these, naming the exit, the
//! port or address, and the guest RIP.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot open /dev/kvm: {0}; load kvm_intel/kvm_amd (or kvm_pvm) and run as a user who can open /dev/kvm (root or the kvm group)")]
    OpenKvm(#[source] kvm_ioctls::Error),

    #[error("KVM refused {what}: {source}")]
    Kvm { what: &'static str, source: kvm_ioctls::Error },

    #[error("cannot allocate {bytes} bytes of guest memory: {reason}; lower the workload's memory or free host memory")]
    Memory { bytes: u64, reason: String },

    #[error("the guest image is not loadable: {0}")]
    Image(String),

    #[error("the guest accessed I/O port {port:#x} ({dir}, {size} bytes) that no device serves, at guest RIP {rip:#x}")]
    UnknownPort { port: u16, dir: &'static str, size: usize, rip: u64 },

    #[error("the guest {dir} address {addr:#x} ({size} bytes) outside its RAM and every device, at guest RIP {rip:#x}")]
    Mmio { addr: u64, dir: &'static str, size: usize, rip: u64 },

    #[error("the guest faulted and shut down (triple fault: KVM_EXIT_SHUTDOWN) at guest RIP {rip:#x}")]
    Shutdown { rip: u64 },

    #[error("unexpected VM exit `{exit}` at guest RIP {rip:#x}{}", detail_suffix(.detail))]
    UnexpectedExit { exit: String, rip: u64, detail: String },

    #[error("the guest device at port {port:#x} rejected the access: {reason} (guest RIP {rip:#x})")]
    Device { port: u64, reason: String, rip: u64 },

    #[error("the guest did not {what} within {after:?}; the VM was stopped (raise --timeout if it is just slow)")]
    Timeout { what: &'static str, after: Duration },

    #[error("the guest aborted: {0}")]
    Aborted(String),

    #[error("the guest sent a line that is not part of the protocol: {line:?} ({reason})")]
    Protocol { line: String, reason: String },

    #[error("interrupted")]
    Interrupted,

    #[error("the VMM process failed: {0}")]
    VmmProcess(String),
}

fn detail_suffix(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

impl VmError {
    pub fn kvm(what: &'static str, source: kvm_ioctls::Error) -> VmError {
        VmError::Kvm { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_exit_and_rip() {
        let e = VmError::UnknownPort {
            port: 0x1234,
            dir: "out",
            size: 1,
            rip: 0x10_0040,
        };
        let s = e.to_string();
        assert!(s.contains("0x1234") && s.contains("0x100040") && s.contains("out"), "{s}");
        assert!(VmError::Shutdown { rip: 0x42 }.to_string().contains("triple fault"));
        let t = VmError::Timeout {
            what: "signal ready",
            after: Duration::from_millis(5),
        }
        .to_string();
        assert!(t.contains("signal ready") && t.contains("5ms"), "{t}");
    }
}
