//! The KVM-mode fingerprint: the same short loop run in a guest at
//! supervisor mode (CPL0) and at user mode (CPL3). On hardware-assisted KVM
//! both run natively (ratio ~1); where guest supervisor code is emulated
//! (kvm_pvm) the ratio is ~1000, and a guest kernel's numbers are not those
//! of a hardware-virtualized host.

use std::time::{Duration, Instant};

use crate::abi::PORT_EXIT;
use crate::layout::Cpl;
use crate::tiny::TinyVm;
use crate::VmError;

/// Loop rates at CPL0 and CPL3, and their ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeedRatio {
    /// Loop iterations per second at guest CPL0 (one `dec` + one `jnz` each).
    pub cpl0_iters_per_s: f64,
    /// The same at guest CPL3.
    pub cpl3_iters_per_s: f64,
    /// `cpl3 / cpl0`: ~1 on hardware-assisted KVM, ~1000 on kvm_pvm.
    pub ratio: f64,
    pub cpl0_iterations: u64,
    pub cpl0_ms: f64,
    pub cpl3_iterations: u64,
    pub cpl3_ms: f64,
}

impl SpeedRatio {
    /// Whether guest supervisor code runs far slower than user code (ratio
    /// above 10): guest-kernel numbers are then not representative.
    pub fn supervisor_emulated(&self) -> bool {
        self.ratio > 10.0
    }
}

/// `mov rcx, <imm64>` is replaced by rcx set from the host; the loop:
/// `dec rcx; jnz .-3; mov dx, PORT_EXIT; xor eax, eax; out dx, eax; jmp $`.
fn loop_code() -> Vec<u8> {
    let p = PORT_EXIT.to_le_bytes();
    vec![0x48, 0xff, 0xc9, 0x75, 0xfb, 0x66, 0xba, p[0], p[1], 0x31, 0xc0, 0xef, 0xeb, 0xfe]
}

/// Runs the loop at `cpl`, doubling the iteration count from `start` until
/// one run takes at least `min`; returns (iterations, elapsed).
fn rate(cpl: Cpl, start: u64, min: Duration, cap: Duration) -> Result<(u64, Duration), VmError> {
    let mut vm = TinyVm::new(&loop_code(), cpl, 8 << 20)?;
    let began = Instant::now();
    let mut n = start;
    loop {
        let t = Instant::now();
        vm.run_from_entry(n, cap.max(Duration::from_secs(5)))?;
        let el = t.elapsed();
        if el >= min || began.elapsed() >= cap {
            return Ok((n, el));
        }
        // Aim straight for `min` when the run was long enough to extrapolate.
        let f = if el > Duration::from_micros(500) { (min.as_secs_f64() / el.as_secs_f64() * 1.2).ceil() as u64 } else { 4 };
        n = n.saturating_mul(f.clamp(2, 64));
    }
}

/// Measures both rates: about 20 ms of loop at each level (plus VM set-up).
pub fn measure() -> Result<SpeedRatio, VmError> {
    let min = Duration::from_millis(20);
    let (n3, t3) = rate(Cpl::Three, 1 << 16, min, Duration::from_secs(2))?;
    let (n0, t0) = rate(Cpl::Zero, 256, min, Duration::from_secs(3))?;
    let r3 = n3 as f64 / t3.as_secs_f64();
    let r0 = n0 as f64 / t0.as_secs_f64();
    Ok(SpeedRatio {
        cpl0_iters_per_s: r0,
        cpl3_iters_per_s: r3,
        ratio: r3 / r0,
        cpl0_iterations: n0,
        cpl0_ms: t0.as_secs_f64() * 1e3,
        cpl3_iterations: n3,
        cpl3_ms: t3.as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_code_jumps_back_to_dec() {
        let c = loop_code();
        // jnz rel8 at offset 3..5 lands on offset 0 (dec rcx).
        assert_eq!(c[3], 0x75);
        assert_eq!(5i32 + c[4] as i8 as i32, 0);
    }

    #[test]
    fn measures_both_levels_on_kvm() {
        if let Err(why) = crate::vm::available() {
            eprintln!("SKIPPED: no usable KVM: {why}");
            return;
        }
        let s = measure().unwrap();
        eprintln!("{s:?}");
        assert!(s.cpl0_iters_per_s > 0.0 && s.cpl3_iters_per_s > 0.0);
        assert!(s.cpl3_ms >= 1.0 && s.cpl0_ms >= 1.0);
        assert!((s.ratio - s.cpl3_iters_per_s / s.cpl0_iters_per_s).abs() < 1e-9);
    }

    #[test]
    fn raw_floor_reaches_the_exit_port() {
        if crate::vm::available().is_err() {
            eprintln!("SKIPPED: no usable KVM");
            return;
        }
        let ns = crate::tiny::raw_floor_ns().unwrap();
        assert!(ns > 0);
    }
}
