//! versus: containers or virtual machines, measured on your own host.
//!
//! The data flow mirrors the layout: a [`workload::WorkloadSpec`] is launched
//! on a [`platform::Platform`] (plain process, namespace container, KVM
//! guests; each described by a [`platform::PlatformInfo`] and listed in
//! [`platform::registry`]), built on the building blocks of [`measure`]
//! (clock, boot phases, smaps). The [`runner`] repeats launches and drives
//! the [`experiment`]s (memory, density, footprint, interference, probes);
//! they produce the rows of [`model`], [`stats`] summarises them, [`export`]
//! writes the CSV/JSON of docs/design.md, and [`chart`] and [`report`] draw
//! and write the five-way comparison.

pub mod bmf;
pub mod channel;
pub mod chart;
pub mod compare;
pub mod error;
pub mod experiment;
pub mod export;
pub mod history;
pub mod host;
pub mod image;
pub mod interrupt;
pub mod measure;
pub mod model;
pub mod plan;
pub mod platform;
pub mod report;
pub mod runner;
pub mod stats;
pub mod units;
pub mod workload;

pub use error::LaunchError;
