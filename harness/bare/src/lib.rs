//! The parts of the kernel-less guest that can run (and be tested) off the
//! guest: the C memory functions the compiler calls, the TSC clock and the
//! evidence encoding. `main.rs` is the image's entry.
//!
//! Built `no_std` for the image; its tests build with std, where the memory
//! functions keep their Rust names (exporting `memcpy` from a test binary
//! would replace libc's for the whole test).
#![cfg_attr(not(test), no_std)]

use core::fmt::{self, Write};

pub mod mem;

/// Converts TSC ticks to nanoseconds with the TSC frequency the VMM passes
/// in the boot block (KVM_GET_TSC_KHZ).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub khz: u64,
}

impl Clock {
    /// `ticks` in ns; 0 when the frequency is unknown (never a division by 0).
    pub fn ns(&self, ticks: u64) -> u64 {
        if self.khz == 0 {
            return 0;
        }
        (ticks as u128 * 1_000_000 / self.khz as u128) as u64
    }
}

/// Percent-encodes what the evidence grammar reserves (as the workload
/// program's `enc`).
pub struct Enc<'a>(pub &'a [u8]);

impl fmt::Display for Enc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() && !matches!(b, b'%' | b'=' | b',' | b';') {
                f.write_char(b as char)?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_converts_ticks_without_overflow() {
        let c = Clock { khz: 2_000_000 };
        assert_eq!(c.ns(2_000), 1_000, "2000 ticks at 2 GHz are 1 us");
        assert_eq!(c.ns(u64::MAX), (u64::MAX as u128 * 1_000_000 / 2_000_000) as u64);
        assert_eq!(Clock { khz: 0 }.ns(123), 0);
    }

    #[test]
    fn evidence_encoding_escapes_the_grammar() {
        assert_eq!(Enc(b"AMD EPYC=1,2;3%").to_string(), "AMD%20EPYC%3D1%2C2%3B3%25");
        assert_eq!(Enc(b"plain").to_string(), "plain");
        assert_eq!(Enc(&[0xff, b'\n']).to_string(), "%FF%0A");
    }
}
