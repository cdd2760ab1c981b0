//! The run history: runs, host fingerprints, samples and probe verdicts in
//! an embedded SQLite database ([`store`]), and a metric's trend over time
//! per host fingerprint with a drift flag ([`trend`]).
//!
//! [`record_run`] is the hook `versus run --history` calls after a run has
//! written its files; `versus history import DIR` calls it too. It only
//! reads the run directory: whatever happens to the database, the run's
//! CSV files stay.

pub mod error;
pub mod store;
pub mod trend;

pub use error::HistoryError;
pub use store::{default_db_path, record_run, Recorded, Store};
