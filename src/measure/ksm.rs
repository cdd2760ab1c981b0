//! Kernel samepage merging (KSM, /sys/kernel/mm/ksm): its counters, and a
//! [`KsmSession`] that turns it on for a measurement and restores every
//! setting it changed (`run`, `pages_to_scan`, `sleep_millisecs`) whatever
//! happens: on drop (errors, panics, Ctrl-C, which ends the measurement
//! through the normal `Drop` path), and from the interrupt watchdog when a
//! cleanup overruns ([`crate::interrupt::at_forced_exit`]).
//!
//! KSM only merges memory marked mergeable (`MADV_MERGEABLE`, or a whole
//! process with `PR_SET_MEMORY_MERGE`), so turning it on does not touch the
//! rest of the host's memory. One versus process at a time may drive KSM:
//! a session holds a lock for its whole life (an abstract Unix socket
//! named after the KSM directory: nothing on disk, released by the kernel
//! when the process ends, however it ends), so that two runs never save
//! each other's settings as the host's.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the kernel exposes KSM.
pub const KSM_DIR: &str = "/sys/kernel/mm/ksm";

/// The settings a session changes, in the order they are restored (`run`
/// last, so ksmd stops only once the scan settings are back).
const SETTINGS: [&str; 3] = ["pages_to_scan", "sleep_millisecs", "run"];

/// Why KSM could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KsmError {
    #[error("KSM is not available: {0} is missing (a kernel built without CONFIG_KSM); run without --ksm")]
    Missing(PathBuf),
    #[error("cannot {what} {path}: {source} (KSM settings need root)")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("another versus process is measuring with KSM (it holds the lock `@{0}`); wait for it to finish, then run again")]
    Busy(String),
}

/// KSM's counters (pages of 4 KiB on x86-64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KsmCounters {
    /// Shared pages in use (each the one copy of merged pages).
    pub pages_shared: u64,
    /// Pages that point at a shared one: how many pages merging saved.
    pub pages_sharing: u64,
    /// Pages scanned, not merged (unique, or changing too often).
    pub pages_unshared: u64,
    /// Complete scans of the mergeable memory since KSM started.
    pub full_scans: u64,
}

/// Whether this kernel has KSM.
pub fn available() -> bool {
    Path::new(KSM_DIR).join("run").exists()
}

/// Reads the counters of the KSM directory `dir`.
pub fn counters_in(dir: &Path) -> Result<KsmCounters, KsmError> {
    let r = |f: &str| read_u64(&dir.join(f));
    Ok(KsmCounters { pages_shared: r("pages_shared")?, pages_sharing: r("pages_sharing")?, pages_unshared: r("pages_unshared")?, full_scans: r("full_scans")? })
}

/// Reads the host's KSM counters.
pub fn counters() -> Result<KsmCounters, KsmError> {
    counters_in(Path::new(KSM_DIR))
}

fn read_u64(p: &Path) -> Result<u64, KsmError> {
    let t = std::fs::read_to_string(p).map_err(|source| KsmError::Io { what: "read", path: p.to_path_buf(), source })?;
    t.trim().parse().map_err(|_| KsmError::Io {
        what: "parse",
        path: p.to_path_buf(),
        source: std::io::Error::other(format!("`{}` is not a number", t.trim())),
    })
}

fn write(p: &Path, v: &str) -> Result<(), KsmError> {
    std::fs::write(p, v).map_err(|source| KsmError::Io { what: "write", path: p.to_path_buf(), source })
}

/// The settings as found, to be written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    dir: PathBuf,
    values: Vec<(&'static str, String)>,
}

impl Saved {
    fn read(dir: &Path) -> Result<Saved, KsmError> {
        let mut values = Vec::new();
        for f in SETTINGS {
            let p = dir.join(f);
            let v = std::fs::read_to_string(&p).map_err(|source| KsmError::Io { what: "read", path: p.clone(), source })?;
            values.push((f, v.trim().to_string()));
        }
        Ok(Saved { dir: dir.to_path_buf(), values })
    }

    /// Writes every saved value back; tries them all, returns the first error.
    fn restore(&self) -> Result<(), KsmError> {
        let mut first = None;
        for (f, v) in &self.values {
            if let Err(e) = write(&self.dir.join(f), v) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The settings a live session must restore, for the watchdog's forced exit.
static PENDING: Mutex<Option<Saved>> = Mutex::new(None);

/// Restores what a live session saved (the interrupt watchdog calls this
/// before it ends the process); nothing when no session is live.
pub fn restore_pending() {
    let saved = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(s) = saved {
        if let Err(e) = s.restore() {
            eprintln!("versus: could not restore KSM's settings: {e}");
        }
    }
}

/// How KSM is driven during a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KsmTuning {
    /// Pages ksmd scans per wake-up.
    pub pages_to_scan: u32,
    /// Its sleep between wake-ups, ms.
    pub sleep_millisecs: u32,
}

impl Default for KsmTuning {
    /// Fast enough that a few hundred MiB of mergeable memory settle within
    /// seconds, while ksmd stays one thread.
    fn default() -> Self {
        KsmTuning { pages_to_scan: 5000, sleep_millisecs: 10 }
    }
}

/// KSM turned on for a measurement: restores the host's settings on drop.
pub struct KsmSession {
    saved: Saved,
    /// Held for the session's life (released when closed).
    _lock: UnixListener,
    /// Restored already (by [`KsmSession::restore`]).
    restored: bool,
    /// Counters when the session started (the baseline of other users).
    pub at_start: KsmCounters,
}

impl KsmSession {
    /// Takes the lock, saves the host's settings and turns KSM on with `tuning`.
    pub fn start(tuning: KsmTuning) -> Result<KsmSession, KsmError> {
        KsmSession::start_in(Path::new(KSM_DIR), tuning)
    }

    /// [`KsmSession::start`] on another directory laid out as the kernel's
    /// (tests); the lock is per directory.
    pub fn start_in(dir: &Path, tuning: KsmTuning) -> Result<KsmSession, KsmError> {
        if !dir.join("run").exists() {
            return Err(KsmError::Missing(dir.join("run")));
        }
        let lock = take_lock(&format!("versus-ksm:{}", dir.display()))?;
        let saved = Saved::read(dir)?;
        *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved.clone());
        crate::interrupt::at_forced_exit(restore_pending);
        // From here on, drop restores.
        let at_start = counters_in(dir).unwrap_or_default();
        let session = KsmSession { saved, _lock: lock, restored: false, at_start };
        write(&dir.join("pages_to_scan"), &tuning.pages_to_scan.to_string())?;
        write(&dir.join("sleep_millisecs"), &tuning.sleep_millisecs.to_string())?;
        write(&dir.join("run"), "1")?;
        Ok(session)
    }

    /// The KSM directory of this session.
    pub fn dir(&self) -> &Path {
        &self.saved.dir
    }

    /// The counters now.
    pub fn counters(&self) -> Result<KsmCounters, KsmError> {
        counters_in(&self.saved.dir)
    }

    /// Waits until KSM has settled: two complete scans after the call, and
    /// then `pages_sharing` moving by under 1% over a further scan; at most
    /// `limit`, and no longer than `stop` says (an interrupt). Returns the
    /// counters and whether they settled.
    pub fn settle(&self, limit: Duration, stop: &dyn Fn() -> bool) -> Result<Settled, KsmError> {
        let t0 = Instant::now();
        let first = self.counters()?;
        let mut last_scan = first.full_scans;
        let mut last_sharing: Option<u64> = None;
        loop {
            let c = self.counters()?;
            if c.full_scans != last_scan {
                last_scan = c.full_scans;
                if c.full_scans >= first.full_scans + 2 {
                    if let Some(prev) = last_sharing {
                        if c.pages_sharing.abs_diff(prev) * 100 <= prev.max(1) {
                            return Ok(Settled { counters: c, settled: true, waited: t0.elapsed() });
                        }
                    }
                    last_sharing = Some(c.pages_sharing);
                }
            }
            if t0.elapsed() >= limit || stop() {
                return Ok(Settled { counters: c, settled: false, waited: t0.elapsed() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restores the settings now, and says whether that worked (drop
    /// restores too, but can only log a failure).
    pub fn restore(mut self) -> Result<(), KsmError> {
        self.restored = true;
        let r = self.saved.restore();
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
        r
    }
}

impl Drop for KsmSession {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        if let Err(e) = self.saved.restore() {
            tracing::error!("could not restore KSM's settings: {e}");
        }
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The result of [`KsmSession::settle`].
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    pub counters: KsmCounters,
    /// Whether the merging had settled before the limit.
    pub settled: bool,
    pub waited: Duration,
}

/// Takes the lock `name` (an abstract Unix socket), waiting up to 30 s
/// for another holder.
fn take_lock(name: &str) -> Result<UnixListener, KsmError> {
    let io = |source| KsmError::Io { what: "take the lock", path: PathBuf::from(format!("@{name}")), source };
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match UnixListener::bind_addr(&addr) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(io(e)),
        }
        if Instant::now() >= deadline || crate::interrupt::requested() {
            return Err(KsmError::Busy(name.to_string()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in [
            ("run", "0\n"),
            ("pages_to_scan", "100\n"),
            ("sleep_millisecs", "20\n"),
            ("pages_shared", "0"),
            ("pages_sharing", "0"),
            ("pages_unshared", "0"),
            ("full_scans", "7"),
        ] {
            std::fs::write(d.path().join(f), v).unwrap();
        }
        d
    }

    fn read(d: &Path, f: &str) -> String {
        std::fs::read_to_string(d.join(f)).unwrap().trim().to_string()
    }

    #[test]
    fn a_session_sets_and_restores_on_drop_and_on_panic() {
        let _g = crate::interrupt::test_serial();
        let d = fake_dir();
        let tuning = KsmTuning { pages_to_scan: 999, sleep_millisecs: 3 };
        {
            let s = KsmSession::start_in(d.path(), tuning).unwrap();
            assert_eq!((read(d.path(), "run").as_str(), read(d.path(), "pages_to_scan").as_str()), ("1", "999"));
            assert_eq!(s.at_start.full_scans, 7);
        }
        assert_eq!([read(d.path(), "run"), read(d.path(), "pages_to_scan"), read(d.path(), "sleep_millisecs")], ["0", "100", "20"]);
        let r = std::panic::catch_unwind(|| {
            let _s = KsmSession::start_in(d.path(), tuning).unwrap();
            panic!("mid-measurement");
        });
        assert!(r.is_err());
        assert_eq!([read(d.path(), "run"), read(d.path(), "pages_to_scan"), read(d.path(), "sleep_millisecs")], ["0", "100", "20"]);
        // The watchdog's path: restore_pending writes back what a live session saved.
        let s = KsmSession::start_in(d.path(), tuning).unwrap();
        restore_pending();
        assert_eq!(read(d.path(), "run"), "0");
        s.restore().unwrap();
        // One session at a time per directory.
        let held = KsmSession::start_in(d.path(), tuning).unwrap();
        crate::interrupt::request();
        let busy = KsmSession::start_in(d.path(), tuning);
        crate::interrupt::clear();
        assert!(matches!(busy, Err(KsmError::Busy(_))), "a second session waits, and gives up when asked");
        drop(held);
        assert!(KsmSession::start_in(&d.path().join("nope"), tuning).is_err_and(|e| e.to_string().contains("run without --ksm")));
    }

    #[test]
    fn settling_is_bounded() {
        let _g = crate::interrupt::test_serial();
        let d = fake_dir();
        let s = KsmSession::start_in(d.path(), KsmTuning::default()).unwrap();
        // No scan ever completes in a fake directory: the wait ends at its limit.
        let r = s.settle(Duration::from_millis(60), &|| false).unwrap();
        assert!(!r.settled);
        let r = s.settle(Duration::from_secs(60), &|| true).unwrap();
        assert!(!r.settled, "a stop request ends the wait");
    }
}
