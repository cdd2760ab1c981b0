//! Every platform versus knows, in report order: one line each in
//! [`REGISTRY`]. From a name to its [`PlatformInfo`], and to a
//! ready-to-launch [`Platform`] or the reason it cannot run on this host.

use super::info::{Group, Guest, Isolation, MemoryAccounting, PlatformInfo, Unavailable};
use super::{container, process, vm, Platform};

/// Options that platforms take from the command line.
#[derive(Debug, Clone, Default)]
pub struct PlatformOptions {
    /// Run a platform even where its numbers are not representative (e.g.
    /// `vm-linux` on a host whose KVM emulates guest kernel code).
    pub force: bool,
    /// Kernel image for `vm-linux` (vmlinux or bzImage).
    pub kernel: Option<std::path::PathBuf>,
    /// Stream a VM guest's serial console to stderr.
    pub console: bool,
    /// The `container` platform's security profile.
    pub container_profile: container::Profile,
}

/// A platform of the registry: what it is, and how to create it.
pub struct Entry {
    pub info: &'static PlatformInfo,
    pub create: fn(&PlatformOptions) -> Result<Box<dyn Platform>, Unavailable>,
}

/// Every platform, in report order.
pub static REGISTRY: &[Entry] = &[
    Entry { info: &process::INFO, create: process::create },
    Entry { info: &container::INFO, create: container::create },
    Entry { info: &OCI, create: not_implemented_oci },
    Entry { info: &vm::bare::INFO, create: vm::bare::create },
    Entry { info: &vm::bare::INPROC_INFO, create: vm::bare::create_inproc },
    Entry { info: &vm::linux::INFO, create: vm::linux::create },
    Entry { info: &QEMU, create: not_implemented_qemu },
];

/// The OCI runtime peers (runc, crun, youki): declared, not built yet.
const OCI: PlatformInfo = PlatformInfo {
    name: "oci",
    article: "an OCI-runtime container",
    summary: "an installed OCI runtime (runc, crun, youki) running a bundle of the same rootfs: not implemented yet",
    colour: (0x56, 0xB4, 0xE9),
    group: Group::ContainerRuntime,
    isolation: Isolation::Namespaces,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: false,
};

/// QEMU booting the same kernel and initramfs: declared, not built yet.
const QEMU: PlatformInfo = PlatformInfo {
    name: "qemu",
    article: "a QEMU VM",
    summary: "QEMU booting the same kernel and initramfs as vm-linux: not implemented yet",
    colour: (0xCC, 0x79, 0xA7),
    group: Group::Vmm,
    isolation: Isolation::Vm,
    guest: Guest::OwnKernel,
    memory: MemoryAccounting::VmmProcess,
    baseline: false,
};

fn not_implemented_oci(_: &PlatformOptions) -> Result<Box<dyn Platform>, Unavailable> {
    Err(Unavailable::NotImplemented("oci"))
}

fn not_implemented_qemu(_: &PlatformOptions) -> Result<Box<dyn Platform>, Unavailable> {
    Err(Unavailable::NotImplemented("qemu"))
}

/// The names of every platform, in report order.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.info.name).collect()
}

/// The descriptor of `name`, if versus knows it.
pub fn info(name: &str) -> Option<&'static PlatformInfo> {
    REGISTRY.iter().find(|e| e.info.name == name).map(|e| e.info)
}

/// The baseline platform's name (`process`).
pub fn baseline() -> &'static str {
    REGISTRY.iter().find(|e| e.info.baseline).map(|e| e.info.name).unwrap_or("process")
}

/// Report order of a platform name: registry order, unknown names last.
pub fn order(name: &str) -> usize {
    REGISTRY.iter().position(|e| e.info.name == name).unwrap_or(REGISTRY.len())
}

/// The chart colour of a platform; names versus does not know get one of a
/// few spare colours, stable per name.
pub fn colour(name: &str) -> (u8, u8, u8) {
    match info(name) {
        Some(i) => i.colour,
        None => {
            const SPARE: [(u8, u8, u8); 3] = [(0x00, 0x9E, 0x73), (0xB8, 0xA4, 0x00), (0x7F, 0x3C, 0x8D)];
            let h = name.bytes().fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
            SPARE[h % SPARE.len()]
        }
    }
}

/// How a sentence refers to one instance of `name`.
pub fn article(name: &str) -> String {
    info(name).map(|i| i.article.to_string()).unwrap_or_else(|| format!("`{name}`"))
}

/// Why a platform is not launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRun {
    /// Not a platform name at all (a usage error).
    Unknown(String),
    /// Known, but cannot run here (or is not representative and not forced).
    Skipped(Unavailable),
}

impl std::error::Error for NotRun {}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRun::Unknown(n) => write!(f, "unknown platform `{n}`; expected one of {}", names().join(", ")),
            NotRun::Skipped(u) => u.fmt(f),
        }
    }
}

/// Checks a list of names given by the user.
pub fn validate(names: &[String]) -> Result<(), NotRun> {
    match names.iter().find(|n| info(n).is_none()) {
        Some(n) => Err(NotRun::Unknown(n.clone())),
        None => Ok(()),
    }
}

/// Creates the platform `name`, checking that it can run on this host and,
/// unless forced, that its numbers would represent a typical host.
pub fn create(name: &str, opts: &PlatformOptions) -> Result<Box<dyn Platform>, NotRun> {
    let entry = REGISTRY.iter().find(|e| e.info.name == name).ok_or_else(|| NotRun::Unknown(name.to_string()))?;
    let p = (entry.create)(opts).map_err(NotRun::Skipped)?;
    p.available().map_err(NotRun::Skipped)?;
    if !opts.force {
        if let Err(why) = p.representative() {
            return Err(NotRun::Skipped(Unavailable::NotRepresentative(why)));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_one_baseline() {
        let mut n = names();
        n.sort();
        n.dedup();
        assert_eq!(n.len(), REGISTRY.len());
        assert_eq!(REGISTRY.iter().filter(|e| e.info.baseline).count(), 1);
        assert_eq!(baseline(), "process");
        let colours: Vec<_> = REGISTRY.iter().map(|e| e.info.colour).collect();
        for (i, c) in colours.iter().enumerate() {
            assert!(!colours[i + 1..].contains(c), "{:?} twice", c);
        }
        assert_eq!(colour("zz"), colour("zz"));
    }

    #[test]
    fn unknown_names_are_usage_errors() {
        assert!(matches!(validate(&["process".into(), "nope".into()]), Err(NotRun::Unknown(n)) if n == "nope"));
        assert!(matches!(create("nope", &PlatformOptions::default()), Err(NotRun::Unknown(_))));
        let e = create("qemu", &PlatformOptions::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("not implemented"), "{e}");
    }
}
