//! One file per verb of the command line.

pub mod env;
pub mod launch;
pub mod probe;
pub mod report;
pub mod run;
pub mod table;
