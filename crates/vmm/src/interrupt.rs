//! The interrupt flag the vCPU run loop polls: set by a Ctrl-C/SIGTERM
//! handler (versus installs one, see `versus::interrupt`), it ends a
//! running guest with [`crate::VmError::Interrupted`] through the normal
//! drop path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The flag itself, for a signal handler to set.
pub fn flag() -> &'static Arc<AtomicBool> {
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Whether an interrupt was requested.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
