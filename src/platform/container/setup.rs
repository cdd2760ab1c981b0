//! The container's part of its child's set-up ([`ChildSetup`]), around
//! joining its cgroup and before the generic end of every launch (signals,
//! stdio, execve; see [`crate::platform::spawn`]): its mounts with the
//! profile's masked and read-only /proc paths before the cgroup; after it
//! pivot_root, its cgroup namespace, then the profile's no_new_privs,
//! seccomp filters and capabilities.

use nix::sched::CloneFlags;

use super::hardening::{Hardening, LOCK_STEPS};
use super::rootfs::{self, RootfsPlan};
use crate::error::LaunchError;
use crate::platform::spawn::{ChildSetup, Failure, SETUP_MARKS};
use crate::platform::syscall::Syscall;

/// What the container's child does around joining its cgroup.
pub struct ContainerSetup<'a> {
    pub rootfs: RootfsPlan,
    pub hardening: &'a Hardening,
}

/// Every step name of [`ContainerSetup::before_cgroup`] and
/// [`ContainerSetup::run`]: the rootfs's, the cgroup namespace, the
/// hardening's.
const STEPS: [&str; rootfs::STEPS.len() + 1 + LOCK_STEPS.len()] = {
    let mut out = [""; rootfs::STEPS.len() + 1 + LOCK_STEPS.len()];
    let mut i = 0;
    while i < rootfs::STEPS.len() {
        out[i] = rootfs::STEPS[i];
        i += 1;
    }
    out[i] = UNSHARE_CGROUP;
    let mut j = 0;
    while j < LOCK_STEPS.len() {
        out[i + 1 + j] = LOCK_STEPS[j];
        j += 1;
    }
    out
};

const UNSHARE_CGROUP: &str = "unshare the cgroup namespace";

/// Indexes of the container's marks: its mounts are made (before the
/// cgroup), it is in its rootfs (pivot_root), the hardening is applied.
pub const MARK_MOUNTS: usize = 0;
pub const MARK_ROOTFS: usize = 1;
pub const MARK_HARDENED: usize = 2;

impl ChildSetup for ContainerSetup<'_> {
    fn steps(&self) -> &'static [&'static str] {
        &STEPS
    }

    /// The mounts, /proc's masked and read-only paths among them, while a
    /// thread of the launcher makes the cgroup.
    fn before_cgroup(&self, sys: &dyn Syscall, marks: &mut [u64; SETUP_MARKS]) -> Result<(), Failure> {
        self.rootfs.mount(sys, self.hardening.proc_paths())?;
        marks[MARK_MOUNTS] = crate::measure::clock::now_ns();
        Ok(())
    }

    fn run(&self, sys: &dyn Syscall, marks: &mut [u64; SETUP_MARKS]) -> Result<(), Failure> {
        self.rootfs.enter(sys)?;
        marks[MARK_ROOTFS] = crate::measure::clock::now_ns();
        // In the cgroup from here on; the cgroup namespace is rooted there.
        // Before the filter, which denies creating namespaces.
        sys.unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|errno| Failure { step: UNSHARE_CGROUP, errno, detail: 0 })?;
        self.hardening.lock(sys)?;
        marks[MARK_HARDENED] = crate::measure::clock::now_ns();
        Ok(())
    }

    fn error(&self, f: Failure) -> LaunchError {
        let path = match f.step {
            "mask a /proc path" | "make a /proc path read-only" => self.hardening.proc_paths().get(f.detail as usize).map(|p| p.path),
            _ => None,
        };
        match path {
            Some(p) => LaunchError::sys(
                format!("container set-up failed in the child: cannot {} ({p}); use --container-profile privileged to skip it", f.step),
                f.errno,
            ),
            None => LaunchError::ChildSetup { step: f.step, errno: f.errno },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::hardening::Profile;
    use super::*;
    use crate::platform::syscall::recording::RecordingSyscall;

    fn plan() -> RootfsPlan {
        RootfsPlan {
            rootfs: c"/img/rootfs".into(),
            proc_target: c"/img/rootfs/proc".into(),
            hostname: c"versus-1".into(),
            locked_flags: nix::mount::MsFlags::empty(),
            overlay: None,
            read_only: true,
        }
    }

    /// The order the profile depends on: mounts (masks included) before the
    /// filter that forbids them, the cgroup namespace before the filter
    /// that forbids namespaces, capabilities last.
    #[test]
    fn mounts_then_cgroup_namespace_then_filter_then_capabilities() {
        let h = Hardening::new(Profile::Default, std::path::Path::new("/img/rootfs")).unwrap();
        let setup = ContainerSetup { rootfs: plan(), hardening: &h };
        let sys = RecordingSyscall::default();
        let mut marks = [0; SETUP_MARKS];
        setup.before_cgroup(&sys, &mut marks).unwrap();
        let mounts = sys.calls().len();
        assert!(!sys.calls().iter().any(|c| c.starts_with("pivot_root")), "pivot_root waits for the cgroup: the join goes by the host path");
        setup.run(&sys, &mut marks).unwrap();
        let calls = sys.calls();
        let first = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {calls:?}"));
        let last = |p: &str| calls.iter().rposition(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {calls:?}"));
        assert!(last("mount") < first("unshare"));
        assert!(calls[first("unshare")].contains("CLONE_NEWCGROUP"));
        assert!(first("unshare") < first("no_new_privs"));
        assert!(first("no_new_privs") < first("seccomp"));
        assert!(last("seccomp") < first("capbset_drop"));
        assert_eq!(calls.last().map(String::as_str), Some("capset eff=a80425fb prm=a80425fb inh=0"));
        assert!(calls[mounts].starts_with("chdir") && calls[mounts + 1].starts_with("pivot_root"), "{calls:?}");
        assert!(marks[MARK_MOUNTS] > 0 && marks[MARK_ROOTFS] >= marks[MARK_MOUNTS] && marks[MARK_HARDENED] >= marks[MARK_ROOTFS]);
        // Every step it may fail at is one of its named steps.
        for s in rootfs::STEPS.iter().chain(LOCK_STEPS.iter()) {
            assert!(setup.steps().contains(s), "{s}");
        }
    }

    #[test]
    fn privileged_only_mounts_and_unshares() {
        let h = Hardening::new(Profile::Privileged, std::path::Path::new("/img/rootfs")).unwrap();
        let setup = ContainerSetup { rootfs: plan(), hardening: &h };
        let sys = RecordingSyscall::default();
        setup.before_cgroup(&sys, &mut [0; SETUP_MARKS]).unwrap();
        setup.run(&sys, &mut [0; SETUP_MARKS]).unwrap();
        let calls = sys.calls();
        assert!(calls.last().unwrap().starts_with("unshare"), "{calls:?}");
        assert!(!calls.iter().any(|c| c.contains("/dev/null") || c.starts_with("seccomp") || c.starts_with("cap")), "{calls:?}");
    }

    #[test]
    fn a_failed_mask_names_its_path() {
        let h = Hardening::new(Profile::Default, std::path::Path::new("/img/rootfs")).unwrap();
        let setup = ContainerSetup { rootfs: plan(), hardening: &h };
        let p = &h.proc_paths()[0];
        let e = setup.error(Failure { step: "mask a /proc path", errno: nix::errno::Errno::EPERM, detail: 0 }).to_string();
        assert!(e.contains(p.path) && e.contains("privileged"), "{e}");
    }
}
