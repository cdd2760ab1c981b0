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

    /// How a VMM process reports the way its guest ended, on one line, so
    /// that the harness can judge it as if the VMM ran inside it
    /// ([`VmError::from_wire`] reads it back): `kind=<kind> k=v ...`, free
    /// text (a reason, a detail) last after `text=`.
    pub fn to_wire(&self) -> String {
        let one = |s: &str| s.replace(['\n', '\r'], " ");
        match self {
            VmError::UnknownPort { port, dir, size, rip } => format!("kind=unknown_port port={port:#x} dir={dir} size={size} rip={rip:#x}"),
            VmError::Mmio { addr, dir, size, rip } => format!("kind=mmio addr={addr:#x} dir={dir} size={size} rip={rip:#x}"),
            VmError::Shutdown { rip } => format!("kind=shutdown rip={rip:#x}"),
            VmError::UnexpectedExit { exit, rip, detail } => format!("kind=unexpected_exit rip={rip:#x} exit={} text={}", exit.replace(' ', "_"), one(detail)),
            VmError::Device { port, reason, rip } => format!("kind=device port={port:#x} rip={rip:#x} text={}", one(reason)),
            VmError::Timeout { what, after } => format!("kind=timeout after_ms={} text={}", after.as_millis(), one(what)),
            VmError::Aborted(m) => format!("kind=aborted text={}", one(m)),
            VmError::Interrupted => "kind=interrupted".into(),
            other => format!("kind=other text={}", one(&other.to_string())),
        }
    }

    /// Reads a [`VmError::to_wire`] line back. Text that names a direction or
    /// a wait versus does not know becomes `?`; an unknown kind is `None`.
    pub fn from_wire(line: &str) -> Option<VmError> {
        let (head, text) = match line.split_once(" text=") {
            Some((h, t)) => (h, Some(t.to_string())),
            None => (line, None),
        };
        let get = |k: &str| head.split(' ').find_map(|t| t.strip_prefix(k)?.strip_prefix('='));
        let hex = |k: &str| get(k).and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        let dir = |k: &str| -> &'static str {
            match get(k) {
                Some("in") => "in",
                Some("out") => "out",
                Some("read") => "read",
                Some("write") => "write",
                _ => "?",
            }
        };
        let size = get("size").and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(match get("kind")? {
            "unknown_port" => VmError::UnknownPort { port: hex("port")? as u16, dir: dir("dir"), size, rip: hex("rip")? },
            "mmio" => VmError::Mmio { addr: hex("addr")?, dir: dir("dir"), size, rip: hex("rip")? },
            "shutdown" => VmError::Shutdown { rip: hex("rip")? },
            "unexpected_exit" => VmError::UnexpectedExit { exit: get("exit")?.replace('_', " "), rip: hex("rip")?, detail: text.unwrap_or_default() },
            "device" => VmError::Device { port: hex("port")?, reason: text.unwrap_or_default(), rip: hex("rip")? },
            "timeout" => VmError::Timeout {
                what: match text.as_deref() {
                    Some("signal ready") => "signal ready",
                    Some("finish") => "finish",
                    _ => "?",
                },
                after: Duration::from_millis(get("after_ms")?.parse().ok()?),
            },
            "aborted" => VmError::Aborted(text.unwrap_or_default()),
            "interrupted" => VmError::Interrupted,
            "other" => VmError::VmmProcess(text.unwrap_or_default()),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_exit_and_rip() {
        let e = VmError::UnknownPort { port: 0x1234, dir: "out", size: 1, rip: 0x10_0040 };
        let s = e.to_string();
        assert!(s.contains("0x1234") && s.contains("0x100040") && s.contains("out"), "{s}");
        assert!(VmError::Shutdown { rip: 0x42 }.to_string().contains("triple fault"));
        let t = VmError::Timeout { what: "signal ready", after: Duration::from_millis(5) }.to_string();
        assert!(t.contains("signal ready") && t.contains("5ms"), "{t}");
    }

    #[test]
    fn errors_cross_a_process_boundary() {
        let cases = [
            VmError::UnknownPort { port: 0x3f8, dir: "out", size: 4, rip: 0x10_1234 },
            VmError::Mmio { addr: 0x4000_0000, dir: "read", size: 4, rip: 0x10_0040 },
            VmError::Shutdown { rip: 0 },
            VmError::UnexpectedExit { exit: "Hlt".into(), rip: 0x10, detail: "a b\nc".into() },
            VmError::Device { port: 0x7e1, reason: "written, not read".into(), rip: 0x99 },
            VmError::Timeout { what: "signal ready", after: Duration::from_millis(1500) },
            VmError::Aborted("guest panic: x=1".into()),
            VmError::Interrupted,
        ];
        for e in cases {
            let back = VmError::from_wire(&e.to_wire()).unwrap_or_else(|| panic!("{} does not read back", e.to_wire()));
            let expect = e.to_string().replace('\n', " ");
            assert_eq!(back.to_string(), expect, "{}", e.to_wire());
        }
        assert!(VmError::from_wire("kind=nonsense").is_none());
        assert!(VmError::from_wire("no kind at all").is_none());
    }
}
