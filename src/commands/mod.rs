//! One file per verb of the command line.

pub mod env;
pub mod launch;
pub mod plan;
pub mod probe;
pub mod report;
pub mod run;
pub mod table;
