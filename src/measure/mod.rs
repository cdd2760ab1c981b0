//! Measurements: the clock every platform timestamps with, boot phases, and
//! (in submodules) memory and the other metrics of DESIGN.md.

pub mod clock;
pub mod phases;

pub use phases::Boot;
