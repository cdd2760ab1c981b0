//! From a platform name to a ready-to-launch [`Platform`], or the reason it
//! cannot run on this host.

use super::container::{ContainerOptions, ContainerPlatform};
use super::process::ProcessPlatform;
use super::vm::bare::VmBarePlatform;
use super::vm::linux::{LinuxOptions, LinuxPlatform};
use super::{Platform, ALL_PLATFORMS};

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
}

/// Why a platform is not launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRun {
    /// Not a platform name at all (a usage error).
    Unknown(String),
    /// Known, but cannot run here (or is not representative and not forced).
    Skipped(String),
}

/// Checks a list of names given by the user.
pub fn validate(names: &[String]) -> Result<(), String> {
    for n in names {
        if !ALL_PLATFORMS.contains(&n.as_str()) {
            return Err(format!("unknown platform `{n}`; expected one of {}", ALL_PLATFORMS.join(", ")));
        }
    }
    Ok(())
}

/// Creates the platform `name`, checking that it can run on this host.
pub fn create(name: &str, opts: &PlatformOptions) -> Result<Box<dyn Platform>, NotRun> {
    let p: Box<dyn Platform> = match name {
        "process" => Box::new(ProcessPlatform::new().map_err(|e| NotRun::Skipped(e.to_string()))?),
        "container" => Box::new(ContainerPlatform::new(ContainerOptions::default()).map_err(|e| NotRun::Skipped(e.to_string()))?),
        "oci" => {
            return Err(NotRun::Skipped(
                "the `oci` peer platform (runc/crun/youki) is not implemented in this version of versus".into(),
            ))
        }
        "qemu" => return Err(NotRun::Skipped("the `qemu` peer platform is not implemented in this version of versus".into())),
        "vm-bare" => Box::new(VmBarePlatform::new()),
        "vm-linux" => Box::new(LinuxPlatform::new(LinuxOptions {
            kernel: opts.kernel.clone(),
            force: opts.force,
            console: opts.console,
            ..LinuxOptions::default()
        })),
        other => return Err(NotRun::Unknown(other.to_string())),
    };
    p.available().map_err(NotRun::Skipped)?;
    // A platform whose numbers would not represent a typical host (vm-linux
    // where guest kernel code is emulated) runs only when forced.
    if !opts.force {
        if let (Err(why), "vm-linux") = (p.representative(), name) {
            return Err(NotRun::Skipped(format!("{why} (use `versus launch vm-linux --force` to run it anyway)")));
        }
    }
    Ok(p)
}
