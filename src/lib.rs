//! versus: containers or virtual machines, measured on your own host.
//!
//! The data flow mirrors the layout: a [`workload::WorkloadSpec`] is launched
//! on a [`platform::Platform`] (plain process, namespace container, KVM
//! guests), the [`runner`] repeats launches and collects [`measure`]ments,
//! [`stats`] summarises them and [`export`] writes the CSV/JSON of DESIGN.md.

pub mod channel;
pub mod bmf;
pub mod chart;
pub mod compare;
pub mod error;
pub mod export;
pub mod history;
pub mod host;
pub mod interrupt;
pub mod measure;
pub mod platform;
pub mod report;
pub mod runner;
pub mod stats;
pub mod workload;

pub use error::LaunchError;
