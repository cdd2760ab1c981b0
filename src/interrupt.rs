//! Ctrl-C and SIGTERM handling. The first signal sets a flag that every wait
//! in versus polls, so the launch in progress is torn down through the normal
//! `Drop` path (processes killed and reaped, cgroups and temp dirs removed)
//! and the program exits with 130. A second signal exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The VMM's flag (its vCPU run loop polls it), shared by every wait here.
fn flag() -> &'static Arc<AtomicBool> {
    versus_vmm::interrupt::flag()
}

/// Installs the handlers (idempotent). Returns an error if the handlers
/// cannot be registered.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let f = flag().clone();
    for sig in [SIGINT, SIGTERM] {
        // Second signal: terminate with the conventional status.
        signal_hook::flag::register_conditional_shutdown(sig, 130, f.clone())?;
        signal_hook::flag::register(sig, f.clone())?;
    }
    Ok(())
}

/// Whether an interrupt was requested.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}

/// Requests an interrupt as a signal would (used by tests).
pub fn request() {
    flag().store(true, Ordering::Relaxed)
}

/// Clears the flag (used by tests).
pub fn clear() {
    flag().store(false, Ordering::Relaxed)
}
