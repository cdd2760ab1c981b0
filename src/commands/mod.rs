//! One file per verb of the command line.

pub mod ab;
pub mod calibrate;
pub mod compare;
pub mod env;
pub mod export;
pub mod history;
pub mod image;
pub mod launch;
pub mod plan;
pub mod probe;
pub mod report;
pub mod run;
pub mod table;
