//! The history database: runs, their host fingerprints, samples and probe
//! verdicts in an embedded SQLite file (rusqlite's bundled SQLite: nothing
//! to install).
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward
//! on open, each step in one transaction ([`MIGRATIONS`]). A run is
//! recorded in one transaction too, in WAL mode: a versus killed while it
//! writes leaves the database as it was before the run (SQLite rolls the
//! unfinished transaction back on the next open). A database another
//! process holds is waited for (5 s), then reported as locked; a file that
//! is not a database is reported as corrupt. The run's own directory is only
//! ever read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::error::{HistoryError, Result};
use crate::compare::data::{HostFingerprint, MetricKey, Observation, ProbeObservation, RunData};
use crate::compare::input::{self, ENV_FILE};

/// How long a locked database is waited for.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Test hook: when set to N, an import stops after writing N sample rows,
/// inside its transaction, says so on stderr and waits to be killed. The
/// test that kills versus mid-write uses it; nothing else should.
pub const STALL_ENV: &str = "VERSUS_HISTORY_STALL_AFTER_ROWS";

/// Schema migrations: `MIGRATIONS[i]` takes `user_version` i to i + 1.
pub const MIGRATIONS: &[&str] = &[
    // 1: hosts, runs, samples, probes.
    "CREATE TABLE hosts (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL UNIQUE,
        kernel TEXT NOT NULL,
        cpu_model TEXT NOT NULL,
        kvm_mode TEXT NOT NULL,
        cgroup_mode TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        host_id INTEGER NOT NULL REFERENCES hosts(id),
        hostname TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        versus_version TEXT NOT NULL,
        git_revision TEXT,
        source_dir TEXT,
        env_json TEXT NOT NULL,
        imported_at INTEGER NOT NULL
    );
    CREATE INDEX runs_by_time ON runs(started_at);
    CREATE TABLE samples (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        platform TEXT NOT NULL,
        workload TEXT NOT NULL,
        metric TEXT NOT NULL,
        unit TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        value REAL
    );
    CREATE INDEX samples_by_metric ON samples(metric, run);
    CREATE INDEX samples_by_run ON samples(run);
    CREATE TABLE probes (
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        platform TEXT NOT NULL,
        probe TEXT NOT NULL,
        category TEXT NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX probes_by_run ON probes(run);",
];

/// The schema version this versus writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The default database: `$XDG_DATA_HOME/versus/history.db`, else
/// `~/.local/share/versus/history.db`.
pub fn default_db_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("versus").join("history.db")
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Recorded {
    /// Written: the run id and how many samples and probe verdicts.
    Added { run_id: String, samples: usize, probes: usize },
    /// The run was already in the database; nothing written.
    AlreadyThere { run_id: String },
}

/// A run as `history list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub started_at: u64,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub hostname: String,
    pub host_id: String,
    pub host: HostFingerprint,
    pub samples: usize,
    pub source_dir: Option<String>,
}

/// One run's values of one metric.
#[derive(Debug, Clone, Serialize)]
pub struct RunValues {
    pub run_id: String,
    pub started_at: u64,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub values: Vec<f64>,
}

/// An open history database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Maps a SQLite error to what the user can act on.
fn classify(path: &Path, e: rusqlite::Error) -> HistoryError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => return HistoryError::Locked { path: path.into(), seconds: BUSY_TIMEOUT.as_secs() },
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => return HistoryError::Corrupt { path: path.into(), detail },
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                return HistoryError::CannotOpen { path: path.into(), message: detail }
            }
            _ => {}
        }
    }
    HistoryError::Sql { path: path.into(), message: e.to_string() }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Store {
    /// Opens (creating it and its directory when missing) and migrates.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| HistoryError::CannotOpen { path: path.into(), message: format!("cannot create {}: {e}", parent.display()) })?;
        }
        Store::open_inner(path)
    }

    /// Opens an existing database (for reading): a missing file is an
    /// error, not a new empty database.
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(HistoryError::Missing { path: path.into() });
        }
        Store::open_inner(path)
    }

    fn open_inner(path: &Path) -> Result<Store> {
        let err = |e| classify(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let mut store = Store { conn, path: path.into() };
        // The first statement reads the file: a file that is not a database
        // fails here.
        let mode: String = store.conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::debug!("history database {} is in journal mode {mode}", path.display());
        }
        store.conn.pragma_update(None, "foreign_keys", true).map_err(err)?;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        classify(&self.path, e)
    }

    /// The schema version of the file.
    pub fn version(&self) -> Result<i64> {
        self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.version()?;
        let supported = schema_version();
        if found > supported {
            return Err(HistoryError::TooNew { path: self.path.clone(), found, supported });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
            let path = self.path.clone();
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| classify(&path, e))?;
            // Another process may have migrated while we waited for the lock.
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| classify(&path, e))?;
            if now > i as i64 {
                tx.commit().map_err(|e| classify(&path, e))?;
                continue;
            }
            tx.execute_batch(sql).map_err(|e| classify(&path, e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| classify(&path, e))?;
            tx.commit().map_err(|e| classify(&path, e))?;
        }
        Ok(())
    }

    /// `PRAGMA integrity_check`: `ok`, or what is wrong.
    pub fn integrity_check(&self) -> Result<String> {
        let mut st = self.conn.prepare("PRAGMA integrity_check").map_err(|e| self.err(e))?;
        let rows: Vec<String> = st.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?.collect::<std::result::Result<_, _>>().map_err(|e| self.err(e))?;
        Ok(rows.join("; "))
    }

    /// Records a run read from its directory (`source_dir`) in one
    /// transaction. `env_json` is the run's env.json text, kept whole.
    pub fn record(&mut self, run: &RunData, env_json: &str, source_dir: Option<&Path>) -> Result<Recorded> {
        let path = self.path.clone();
        let e = |x| classify(&path, x);
        let fp = run.host.id();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e)?;
        let existing: Option<String> = tx
            .query_row("SELECT h.fingerprint FROM runs r JOIN hosts h ON h.id = r.host_id WHERE r.run_id = ?1", [&run.run_id], |r| r.get(0))
            .optional()
            .map_err(e)?;
        if let Some(other) = existing {
            if other == fp {
                return Ok(Recorded::AlreadyThere { run_id: run.run_id.clone() });
            }
            return Err(HistoryError::RunIdClash { run_id: run.run_id.clone(), path: path.clone(), other });
        }
        tx.execute(
            "INSERT OR IGNORE INTO hosts (fingerprint, kernel, cpu_model, kvm_mode, cgroup_mode) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![fp, run.host.kernel, run.host.cpu_model, run.host.kvm_mode, run.host.cgroup_mode],
        )
        .map_err(e)?;
        let host_id: i64 = tx.query_row("SELECT id FROM hosts WHERE fingerprint = ?1", [&fp], |r| r.get(0)).map_err(e)?;
        tx.execute(
            "INSERT INTO runs (run_id, host_id, hostname, started_at, versus_version, git_revision, source_dir, env_json, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run.run_id,
                host_id,
                run.hostname,
                run.started_at_unix as i64,
                run.versus_version,
                run.git_revision,
                source_dir.map(|p| p.display().to_string()),
                env_json,
                now_unix() as i64
            ],
        )
        .map_err(e)?;
        let rid = tx.last_insert_rowid();
        let stall: Option<usize> = std::env::var(STALL_ENV).ok().and_then(|v| v.parse().ok());
        let mut written = 0usize;
        {
            let mut ins =
                tx.prepare("INSERT INTO samples (run, platform, workload, metric, unit, iteration, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)").map_err(e)?;
            for (k, obs) in &run.samples {
                for o in obs {
                    let v = o.value.is_finite().then_some(o.value);
                    ins.execute(params![rid, k.platform, k.workload, k.metric, k.unit, o.iteration as i64, v]).map_err(e)?;
                    written += 1;
                    if stall == Some(written) {
                        eprintln!("versus: {STALL_ENV}: stalling the import after {written} sample rows, inside its transaction");
                        loop {
                            std::thread::sleep(Duration::from_secs(3600));
                        }
                    }
                }
            }
            let mut ins = tx.prepare("INSERT INTO probes (run, platform, probe, category, result) VALUES (?1, ?2, ?3, ?4, ?5)").map_err(e)?;
            for p in &run.probes {
                ins.execute(params![rid, p.platform, p.probe, p.category, p.result]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)?;
        Ok(Recorded::Added { run_id: run.run_id.clone(), samples: written, probes: run.probes.len() })
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT r.run_id, r.started_at, r.versus_version, r.git_revision, r.hostname, h.kernel, h.cpu_model, h.kvm_mode, h.cgroup_mode,
                        (SELECT COUNT(*) FROM samples s WHERE s.run = r.id), r.source_dir
                 FROM runs r JOIN hosts h ON h.id = r.host_id ORDER BY r.started_at, r.run_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let host = HostFingerprint { kernel: r.get(5)?, cpu_model: r.get(6)?, kvm_mode: r.get(7)?, cgroup_mode: r.get(8)? };
                Ok(RunSummary {
                    run_id: r.get(0)?,
                    started_at: r.get::<_, i64>(1)?.max(0) as u64,
                    versus_version: r.get(2)?,
                    git_revision: r.get(3)?,
                    hostname: r.get(4)?,
                    host_id: host.id(),
                    host,
                    samples: r.get::<_, i64>(9)?.max(0) as usize,
                    source_dir: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// A recorded run, whole, as `versus compare` reads a run directory.
    pub fn load_run(&self, run_id: &str) -> Result<RunData> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row("SELECT id, env_json FROM runs WHERE run_id = ?1", [run_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        let (rid, env) = row.ok_or_else(|| HistoryError::RunNotFound { run_id: run_id.into(), path: self.path.clone() })?;
        let mut run =
            input::run_from_env_json(&env).map_err(|m| HistoryError::Corrupt { path: self.path.clone(), detail: format!("run {run_id}: env.json: {m}") })?;
        let mut st = self
            .conn
            .prepare("SELECT platform, workload, metric, unit, iteration, value FROM samples WHERE run = ?1 ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([rid], |r| {
                Ok((
                    MetricKey { platform: r.get(0)?, workload: r.get(1)?, metric: r.get(2)?, unit: r.get(3)? },
                    r.get::<_, i64>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (k, it, v) = row.map_err(|e| self.err(e))?;
            run.samples.entry(k).or_default().push(Observation { iteration: it.max(0) as u32, value: v.unwrap_or(f64::NAN), block: 0 });
        }
        let mut st = self.conn.prepare("SELECT platform, probe, category, result FROM probes WHERE run = ?1 ORDER BY rowid").map_err(|e| self.err(e))?;
        let rows = st
            .query_map([rid], |r| Ok(ProbeObservation { platform: r.get(0)?, probe: r.get(1)?, category: r.get(2)?, result: r.get(3)?, block: 0 }))
            .map_err(|e| self.err(e))?;
        for row in rows {
            run.probes.push(row.map_err(|e| self.err(e))?);
        }
        Ok(run)
    }

    /// A metric's values per host fingerprint and key, each run's values
    /// together, runs oldest first.
    pub fn metric_history(&self, metric: &str) -> Result<BTreeMap<(HostFingerprint, MetricKey), Vec<RunValues>>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT h.kernel, h.cpu_model, h.kvm_mode, h.cgroup_mode, s.platform, s.workload, s.unit,
                        r.run_id, r.started_at, r.versus_version, r.git_revision, s.value
                 FROM samples s JOIN runs r ON r.id = s.run JOIN hosts h ON h.id = r.host_id
                 WHERE s.metric = ?1
                 ORDER BY r.started_at, r.run_id, s.rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([metric], |r| {
                let host = HostFingerprint { kernel: r.get(0)?, cpu_model: r.get(1)?, kvm_mode: r.get(2)?, cgroup_mode: r.get(3)? };
                let key = MetricKey { platform: r.get(4)?, workload: r.get(5)?, metric: metric.to_string(), unit: r.get(6)? };
                let run = RunValues {
                    run_id: r.get(7)?,
                    started_at: r.get::<_, i64>(8)?.max(0) as u64,
                    versus_version: r.get(9)?,
                    git_revision: r.get(10)?,
                    values: r.get::<_, Option<f64>>(11)?.into_iter().collect(),
                };
                Ok((host, key, run))
            })
            .map_err(|e| self.err(e))?;
        let mut out: BTreeMap<(HostFingerprint, MetricKey), Vec<RunValues>> = BTreeMap::new();
        for row in rows {
            let (host, key, run) = row.map_err(|e| self.err(e))?;
            let series = out.entry((host, key)).or_default();
            match series.last_mut() {
                Some(last) if last.run_id == run.run_id => last.values.extend(run.values),
                _ => series.push(run),
            }
        }
        Ok(out)
    }
}

/// Records the run in `dir` in the database at `db` (created when
/// missing): the hook behind `versus run --history` and `versus history
/// import`. The run directory is only read; on any error it is left as it
/// was, and the caller should say so and keep it.
pub fn record_run(dir: &Path, db: &Path) -> Result<Recorded> {
    let run = input::read_run_dir(dir)?;
    let env_path = dir.join(ENV_FILE);
    let env_json = std::fs::read_to_string(&env_path).map_err(|e| crate::compare::CompareError::Read { path: env_path.clone(), message: e.to_string() })?;
    let mut store = Store::open(db)?;
    let source = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    store.record(&run, &env_json, Some(&source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example")
    }

    #[test]
    fn records_a_run_once_and_loads_it_back_whole() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("sub/history.db");
        let first = record_run(&example(), &db).unwrap();
        let Recorded::Added { samples, probes, .. } = first else { panic!("{first:?}") };
        assert!(samples > 1000 && probes > 100, "{samples} {probes}");
        // The example is regenerated from time to time: its own id.
        let id = crate::export::json::read_env(&example().join("env.json")).unwrap().run_id;
        assert_eq!(record_run(&example(), &db).unwrap(), Recorded::AlreadyThere { run_id: id.clone() });
        let s = Store::open_existing(&db).unwrap();
        assert_eq!(s.version().unwrap(), schema_version());
        assert_eq!(s.integrity_check().unwrap(), "ok");
        let runs = s.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].samples, samples);
        let back = s.load_run(&id).unwrap();
        let orig = input::read_run_dir(&example()).unwrap();
        assert_eq!(back.samples, orig.samples);
        assert_eq!(back.probes, orig.probes);
        assert_eq!(back.host, orig.host);
        let hist = s.metric_history("boot").unwrap();
        let k = (orig.host.clone(), MetricKey::new("process", "ready", "boot", "ms"));
        assert_eq!(hist[&k].len(), 1);
        assert_eq!(hist[&k][0].values.len(), orig.values(&k.1).len());
        assert!(!hist[&k][0].values.is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_as_corrupt_and_the_run_is_untouched() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("history.db");
        std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
        let before = std::fs::read(example().join("samples.csv")).unwrap();
        let e = record_run(&example(), &db).unwrap_err();
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("move it aside") && msg.contains("versus history import"), "{msg}");
        assert_eq!(std::fs::read(example().join("samples.csv")).unwrap(), before);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("h.db");
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        let e = Store::open(&db).err().unwrap();
        assert!(matches!(e, HistoryError::TooNew { found: 99, .. }), "{e:?}");
    }

    #[test]
    fn a_locked_database_is_reported_as_locked() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("h.db");
        drop(Store::open(&db).unwrap());
        let holder = Connection::open(&db).unwrap();
        holder
            .execute_batch("BEGIN EXCLUSIVE; INSERT INTO hosts (fingerprint, kernel, cpu_model, kvm_mode, cgroup_mode) VALUES ('x','k','c','m','g');")
            .unwrap();
        let mut store = Store { conn: Connection::open(&db).unwrap(), path: db.clone() };
        store.conn.busy_timeout(Duration::from_millis(50)).unwrap();
        let run = input::read_run_dir(&example()).unwrap();
        let e = store.record(&run, "{}", None).unwrap_err();
        assert!(matches!(e, HistoryError::Locked { .. }), "{e:?}");
        assert!(e.to_string().contains("locked by another process"));
    }

    #[test]
    fn a_missing_database_is_not_created_for_reading() {
        let d = tempfile::tempdir().unwrap();
        let e = Store::open_existing(&d.path().join("none.db")).err().unwrap();
        assert!(e.to_string().contains("versus history import"), "{e}");
        assert!(!d.path().join("none.db").exists());
    }
}
