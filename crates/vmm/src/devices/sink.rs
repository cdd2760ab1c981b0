//! Ports Linux probes on a PC but versus does not emulate (other UARTs,
//! VGA, floppy, PCI configuration, POST port 0x80, ...): reads
//! return all ones (no device: a floating ISA bus), writes are dropped, as on
//! hardware with nothing plugged in. Accesses are counted for diagnostics.

use crate::bus::{DeviceResult, Flow, PioDevice};

#[derive(Debug, Default)]
pub struct Sink {
    pub reads: u64,
    pub writes: u64,
    /// The last port touched (diagnostics).
    pub last_port: u16,
}

impl PioDevice for Sink {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult {
        self.reads += 1;
        self.last_port = port;
        data.fill(0xff);
        Ok(Flow::Continue)
    }
    fn pio_write(&mut self, port: u16, _data: &[u8]) -> DeviceResult {
        self.writes += 1;
        self.last_port = port;
        Ok(Flow::Continue)
    }
}

/// The gaps of the 16-bit port space not covered by `used` (base, len),
/// to register a [`Sink`] on.
pub fn gaps(used: &[(u16, u16)]) -> Vec<(u16, u16)> {
    let mut u: Vec<(u32, u32)> = used.iter().map(|&(b, l)| (b as u32, b as u32 + l as u32)).collect();
    u.sort();
    let mut out = Vec::new();
    let mut at = 0u32;
    for (s, e) in u {
        if s > at {
            push_range(&mut out, at, s);
        }
        at = at.max(e);
    }
    if at < 0x1_0000 {
        push_range(&mut out, at, 0x1_0000);
    }
    out
}

// A bus range length is a u16, so the top of the space is split in two.
fn push_range(out: &mut Vec<(u16, u16)>, s: u32, e: u32) {
    let mut s = s;
    while s < e {
        let len = (e - s).min(0x8000);
        out.push((s as u16, len as u16));
        s += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_cover_everything_else() {
        let g = gaps(&[(0x3f8, 8), (0x60, 1), (0x64, 1)]);
        assert_eq!(g[0], (0, 0x60));
        assert_eq!(g[1], (0x61, 3));
        assert_eq!(g[2], (0x65, 0x3f8 - 0x65));
        let covered: u32 = g.iter().map(|r| r.1 as u32).sum::<u32>() + 10;
        assert_eq!(covered, 0x1_0000);
        let mut s = Sink::default();
        let mut b = [0u8; 2];
        s.pio_read(0x71, &mut b).unwrap();
        assert_eq!(b, [0xff, 0xff]);
    }
}
