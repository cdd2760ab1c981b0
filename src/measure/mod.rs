//! The building blocks of measurement that platforms and experiments use:
//! the one clock, boot phases, and reading a process's memory (smaps), its
//! cgroup's charge, the host's meminfo, its seccomp filter, and KSM. The experiments that drive
//! platforms are above, in [`crate::experiment`].

pub mod charge;
pub mod clock;
pub mod ksm;
pub mod load;
pub mod meminfo;
pub mod phases;
pub mod seccomp;
pub mod smaps;

pub use phases::Boot;
