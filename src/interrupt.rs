//! Ctrl-C and SIGTERM handling. The first signal sets a flag that every wait
//! in versus polls, so the launch in progress is torn down through the normal
//! `Drop` path (processes killed and reaped, cgroups, mounts and temp dirs
//! removed) and the program exits with 130, whichever step it was in.
//!
//! A second signal does not cut the cleanup short: it only says that versus
//! is cleaning up. The cleanup is bounded: a watchdog ends the process (130)
//! if it has not finished [`CLEANUP_BOUND`] after the first signal (every
//! wait of a teardown is itself bounded well within it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the cleanup after an interrupt may take before the watchdog
/// ends the process.
pub const CLEANUP_BOUND: Duration = Duration::from_secs(30);

/// The VMM's flag (its vCPU run loop polls it), shared by every wait here.
fn flag() -> &'static Arc<AtomicBool> {
    versus_vmm::interrupt::flag()
}

/// Signals received so far.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// What must be undone even when the watchdog ends the process (host
/// settings versus changed, such as KSM's): run before its exit, in order.
static AT_FORCED_EXIT: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Registers `f` to run if the watchdog ends the process (a cleanup that
/// overran [`CLEANUP_BOUND`]); the normal path undoes its changes by
/// `Drop`, and `f` must then find nothing left to do. Registering the same
/// function twice runs it once.
pub fn at_forced_exit(f: fn()) {
    let mut v = AT_FORCED_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|g| std::ptr::fn_addr_eq(*g, f)) {
        v.push(f);
    }
}

fn run_forced_exit_hooks() {
    let hooks: Vec<fn()> = AT_FORCED_EXIT.lock().map(|v| v.clone()).unwrap_or_default();
    for h in hooks {
        h();
    }
}

const CLEANING: &[u8] = b"\nversus: cleaning up what was launched; it ends by itself (at most 30 s)\n";

/// Installs the handlers (idempotent). Returns an error if the handlers
/// cannot be registered.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        let f = flag().clone();
        // SAFETY: the handler only touches atomics and calls write(2), both
        // async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                f.store(true, Ordering::SeqCst);
                if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
                    let _ = libc::write(2, CLEANING.as_ptr().cast(), CLEANING.len());
                }
            })?;
        }
    }
    // The watchdog: wakes on the first signal, gives the cleanup its bound.
    let _ = std::thread::Builder::new().name("versus-interrupt-watchdog".into()).spawn(|| {
        while !requested() {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(CLEANUP_BOUND);
        eprintln!(
            "versus: the cleanup did not finish within {CLEANUP_BOUND:?}; exiting (some instances may remain: see `pgrep -af versus` and /sys/fs/cgroup)"
        );
        run_forced_exit_hooks();
        std::process::exit(130);
    });
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

/// Unit tests that raise or poll the process-wide flag run one at a time
/// under this lock (it clears the flag when taken).
#[cfg(test)]
pub(crate) fn test_serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    clear();
    g
}
