//! One file per verb of the command line.

pub mod env;
pub mod launch;
pub mod run;
pub mod table;
