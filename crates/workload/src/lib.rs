//! The workloads every versus platform runs, written once without `std` so
//! that the static workload program (`harness/guest`) and the kernel-less VM
//! guest (`harness/bare`) execute the very same code and therefore produce
//! the very same checksums.
//!
//! Nothing here reads a clock or talks to a host: the caller measures time and
//! transports results with [`protocol`].
#![no_std]

pub mod protocol;
pub mod sha256;

/// Bytes per page touched by [`touch_pages`].
pub const PAGE_SIZE: usize = 4096;

/// The workloads, with the parameters that make two runs comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Signal ready, then exit.
    Ready,
    /// SHA-256 chained `rounds` times from a fixed seed; reports the digest.
    Cpu { rounds: u32 },
    /// Touch `mib` MiB page by page.
    Mem { mib: u32 },
    /// `n` trivial round trips to the kernel (or to the host for a guest
    /// without a kernel).
    Call { n: u32 },
    /// Allocate and touch `mib` MiB, signal ready, then wait to be stopped.
    Idle { mib: u32 },
}

/// Default parameters, shared by the CLI and every platform.
pub const DEFAULT_CPU_ROUNDS: u32 = 200_000;
pub const DEFAULT_MEM_MIB: u32 = 64;
/// 10 000 round trips: 2 ms of getpid() for a process, but about 0.5 s of
/// port-I/O exits for a kernel-less guest where each exit is emulated.
pub const DEFAULT_CALL_N: u32 = 10_000;
pub const DEFAULT_IDLE_MIB: u32 = 16;

impl Workload {
    /// The workload's name as it appears on command lines and in CSV rows.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Ready => "ready",
            Workload::Cpu { .. } => "cpu",
            Workload::Mem { .. } => "mem",
            Workload::Call { .. } => "call",
            Workload::Idle { .. } => "idle",
        }
    }

    /// The single numeric parameter of the workload (0 for `ready`).
    pub fn param(&self) -> u32 {
        match *self {
            Workload::Ready => 0,
            Workload::Cpu { rounds } => rounds,
            Workload::Mem { mib } | Workload::Idle { mib } => mib,
            Workload::Call { n } => n,
        }
    }

    /// Builds a workload from its name and parameter; `None` for an unknown
    /// name. A parameter of `None` takes the default.
    pub fn from_name(name: &str, param: Option<u32>) -> Option<Workload> {
        Some(match name {
            "ready" => Workload::Ready,
            "cpu" => Workload::Cpu { rounds: param.unwrap_or(DEFAULT_CPU_ROUNDS) },
            "mem" => Workload::Mem { mib: param.unwrap_or(DEFAULT_MEM_MIB) },
            "call" => Workload::Call { n: param.unwrap_or(DEFAULT_CALL_N) },
            "idle" => Workload::Idle { mib: param.unwrap_or(DEFAULT_IDLE_MIB) },
            _ => return None,
        })
    }

    /// Every workload name, in the order the CLI lists them.
    pub const NAMES: [&'static str; 5] = ["ready", "cpu", "mem", "call", "idle"];
}

/// The fixed seed the `cpu` chain starts from.
pub const CPU_SEED: &[u8] = b"versus cpu workload v1";

/// The `cpu` workload: `h0 = SHA-256(seed)`, `h(i+1) = SHA-256(h(i))`,
/// returning `h(rounds)`. Deterministic on every platform and CPU.
pub fn cpu(rounds: u32) -> [u8; 32] {
    let mut h = sha256::digest(CPU_SEED);
    let mut i = 0;
    while i < rounds {
        h = sha256::digest(&h);
        i += 1;
    }
    h
}

/// The first 8 bytes of a digest as a big-endian integer: the short form of
/// the checksum carried in results.
pub fn checksum64(digest: &[u8; 32]) -> u64 {
    let mut v = 0u64;
    for b in &digest[..8] {
        v = (v << 8) | *b as u64;
    }
    v
}

/// The `mem` and `idle` workloads: writes one byte in every page of `buf`
/// (so that every page is faulted in and backed), and returns a value that
/// depends on every write so the compiler cannot drop them.
pub fn touch_pages(buf: &mut [u8]) -> u64 {
    let mut acc = 0u64;
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: `off < buf.len()`, so the pointer is in bounds; the volatile
        // write keeps the store even though nothing reads it back here.
        unsafe { core::ptr::write_volatile(buf.as_mut_ptr().add(off), (off / PAGE_SIZE) as u8 | 1) };
        acc = acc.wrapping_add(buf[off] as u64);
        off += PAGE_SIZE;
    }
    acc
}

/// The `call` workload: `n` round trips through `call`, which performs one
/// trivial kernel or host service; returns a value depending on every answer.
pub fn call_loop(n: u32, mut call: impl FnMut() -> u64) -> u64 {
    let mut acc = 0u64;
    let mut i = 0;
    while i < n {
        acc = acc.wrapping_add(call());
        i += 1;
    }
    acc
}

/// The CPUID brand string (leaves 0x80000002..4) written into `buf`,
/// without its NUL padding and surrounding whitespace; empty when the CPU does
/// not report one. Shared by the probes of every guest and of the host, so
/// that they read and trim it the same way.
#[cfg(target_arch = "x86_64")]
pub fn cpu_brand(buf: &mut [u8; 48]) -> &[u8] {
    use core::arch::x86_64::__cpuid;
    *buf = [0; 48];
    if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
        let mut i = 0;
        let mut leaf = 0x8000_0002u32;
        while leaf <= 0x8000_0004 {
            let r = __cpuid(leaf);
            for v in [r.eax, r.ebx, r.ecx, r.edx] {
                buf[i..i + 4].copy_from_slice(&v.to_le_bytes());
                i += 4;
            }
            leaf += 1;
        }
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    buf[..end].trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_chain_is_deterministic_and_chained() {
        assert_eq!(cpu(0), sha256::digest(CPU_SEED));
        assert_eq!(cpu(1), sha256::digest(&sha256::digest(CPU_SEED)));
        assert_eq!(cpu(1000), cpu(1000));
        assert_ne!(cpu(1000), cpu(1001));
    }

    #[test]
    fn touch_touches_every_page() {
        let mut buf = [0u8; PAGE_SIZE * 4 + 10];
        let acc = touch_pages(&mut buf);
        for p in 0..5 {
            assert_ne!(buf[p * PAGE_SIZE], 0, "page {p} not touched");
        }
        assert_eq!(acc, 1 + 1 + 3 + 3 + 5);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn cpu_brand_is_trimmed_text() {
        let mut buf = [0u8; 48];
        let b = cpu_brand(&mut buf);
        assert!(b.len() <= 48);
        assert!(!b.contains(&0) && b == b.trim_ascii());
    }

    #[test]
    fn names_round_trip() {
        for n in Workload::NAMES {
            let w = Workload::from_name(n, None).unwrap();
            assert_eq!(w.name(), n);
        }
        assert_eq!(Workload::from_name("nope", None), None);
        assert_eq!(Workload::from_name("cpu", Some(7)), Some(Workload::Cpu { rounds: 7 }));
    }
}
