//! Measurements: the clock every platform timestamps with, boot phases, and
//! (in submodules) memory and the other metrics of DESIGN.md.

pub mod clock;
pub mod density;
pub mod footprint;
pub mod interference;
pub mod memory;
pub mod phases;
pub mod probes;

pub use phases::Boot;
