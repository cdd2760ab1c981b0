//! A CMOS real-time clock (MC146818) on ports 0x70 (index) and 0x71 (data),
//! reduced to what Linux reads: the date and time (the host's UTC clock, BCD
//! or binary as register B says, 24-hour), status registers that never
//! report an update in progress, and the rest of the 128 bytes as plain
//! CMOS RAM. No interrupts, no alarms firing.
//!
//! Without it the port sink answers 0xff, whose UIP bit (register A, bit 7)
//! says an update never ends: Debian's kernels (rtc_cmos built in) spent
//! seconds in rtc_cmos' probe before giving up with "rtc_cmos: broken or not
//! accessible", on every boot.

use crate::bus::{DeviceResult, Flow, PioDevice};

/// The index port; the data port is `RTC_PORT + 1`.
pub const RTC_PORT: u16 = 0x70;
/// Ports the RTC occupies.
pub const RTC_PORTS: u16 = 2;

const REG_A: usize = 0x0a;
const REG_B: usize = 0x0b;
const REG_C: usize = 0x0c;
const REG_D: usize = 0x0d;
/// Register A: 32.768 kHz time base, 1024 Hz rate, UIP clear.
const REG_A_INIT: u8 = 0x26;
/// Register B: 24-hour mode (bit 1); bit 2 (DM) selects binary over BCD.
const REG_B_24H: u8 = 0x02;
const REG_B_BINARY: u8 = 0x04;
/// Register D: VRT, the RAM and time are valid.
const REG_D_VRT: u8 = 0x80;
/// Where PCs keep the century (the kernel reads it without ACPI's FADT).
const CENTURY: usize = 0x32;

#[derive(Debug)]
pub struct Rtc {
    index: usize,
    ram: [u8; 128],
}

impl Default for Rtc {
    fn default() -> Self {
        let mut ram = [0u8; 128];
        ram[REG_A] = REG_A_INIT;
        ram[REG_B] = REG_B_24H;
        ram[REG_D] = REG_D_VRT;
        Rtc { index: 0, ram }
    }
}

/// UTC calendar fields of the host's clock now:
/// (second, minute, hour, weekday 1-7 from Sunday, day, month, year).
fn utc_now() -> [u32; 7] {
    let t: libc::time_t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as libc::time_t).unwrap_or(0);
    // SAFETY: an all-zero `tm` is a valid value for gmtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; gmtime_r is reentrant
    // and writes only `tm`.
    if unsafe { libc::gmtime_r(&t, &mut tm) }.is_null() {
        return [0, 0, 0, 5, 1, 1, 1970];
    }
    [tm.tm_sec as u32, tm.tm_min as u32, tm.tm_hour as u32, tm.tm_wday as u32 + 1, tm.tm_mday as u32, tm.tm_mon as u32 + 1, (tm.tm_year + 1900) as u32]
}

impl Rtc {
    pub fn new() -> Rtc {
        Rtc::default()
    }

    fn read_register(&mut self, reg: usize) -> u8 {
        let binary = self.ram[REG_B] & REG_B_BINARY != 0;
        let enc = |v: u32| -> u8 {
            let v = (v % 100) as u8;
            if binary {
                v
            } else {
                ((v / 10) << 4) | (v % 10)
            }
        };
        let clock = |i: usize| enc(utc_now()[i]);
        match reg {
            0x00 => clock(0),
            0x02 => clock(1),
            0x04 => clock(2),
            0x06 => clock(3),
            0x07 => clock(4),
            0x08 => clock(5),
            0x09 => clock(6),
            CENTURY => enc(utc_now()[6] / 100),
            // Never an update in progress.
            REG_A => self.ram[REG_A] & 0x7f,
            // Reading C acknowledges the (never raised) interrupt flags.
            REG_C => std::mem::take(&mut self.ram[REG_C]),
            REG_D => REG_D_VRT,
            r => self.ram[r],
        }
    }
}

impl PioDevice for Rtc {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) -> DeviceResult {
        data.fill(0);
        let v = if port == RTC_PORT { self.index as u8 } else { self.read_register(self.index) };
        if let Some(b) = data.first_mut() {
            *b = v;
        }
        Ok(Flow::Continue)
    }

    fn pio_write(&mut self, port: u16, data: &[u8]) -> DeviceResult {
        let Some(&b) = data.first() else {
            return Ok(Flow::Continue);
        };
        if port == RTC_PORT {
            // Bit 7 is the NMI mask on PCs, not part of the index.
            self.index = (b & 0x7f) as usize;
        } else {
            match self.index {
                // The clock follows the host: setting it is ignored, and so
                // are the read-only registers.
                0x00 | 0x02 | 0x04 | 0x06..=0x09 | CENTURY | REG_C | REG_D => {}
                // 24-hour mode is the only one there is.
                REG_B => self.ram[REG_B] = b | REG_B_24H,
                r => self.ram[r] = b,
            }
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(r: &mut Rtc, reg: u8) -> u8 {
        r.pio_write(RTC_PORT, &[reg | 0x80]).unwrap();
        let mut b = [0xffu8];
        r.pio_read(RTC_PORT + 1, &mut b).unwrap();
        b[0]
    }

    fn bcd(v: u8) -> u32 {
        (v >> 4) as u32 * 10 + (v & 0xf) as u32
    }

    #[test]
    fn never_updating_and_valid() {
        let mut r = Rtc::new();
        assert_eq!(read(&mut r, 0x0a) & 0x80, 0, "UIP clear");
        assert_eq!(read(&mut r, 0x0d), 0x80, "VRT set");
        assert_eq!(read(&mut r, 0x0b) & REG_B_24H, REG_B_24H);
        // Writing A with UIP set still reads it clear.
        r.pio_write(RTC_PORT, &[0x0a]).unwrap();
        r.pio_write(RTC_PORT + 1, &[0xa6]).unwrap();
        assert_eq!(read(&mut r, 0x0a), 0x26);
    }

    #[test]
    fn time_is_the_hosts_utc_in_bcd_or_binary() {
        let mut r = Rtc::new();
        let before = utc_now();
        let year = bcd(read(&mut r, 0x32)) * 100 + bcd(read(&mut r, 0x09));
        let month = bcd(read(&mut r, 0x08));
        let hour = bcd(read(&mut r, 0x04));
        let after = utc_now();
        assert!(year == before[6] || year == after[6], "{year} vs {before:?}");
        assert!(month == before[5] || month == after[5]);
        assert!(hour == before[2] || hour == after[2]);
        assert!((1..=12).contains(&month) && hour < 24);
        // Binary mode (register B, DM bit).
        r.pio_write(RTC_PORT, &[0x0b]).unwrap();
        r.pio_write(RTC_PORT + 1, &[REG_B_BINARY]).unwrap();
        assert_eq!(read(&mut r, 0x0b), REG_B_BINARY | REG_B_24H);
        let m = read(&mut r, 0x08) as u32;
        assert!(m == before[5] || m == after[5], "{m}");
    }

    #[test]
    fn cmos_ram_keeps_what_is_written_and_clock_ignores_writes() {
        let mut r = Rtc::new();
        r.pio_write(RTC_PORT, &[0x40]).unwrap();
        r.pio_write(RTC_PORT + 1, &[0x5a]).unwrap();
        assert_eq!(read(&mut r, 0x40), 0x5a);
        r.pio_write(RTC_PORT, &[0x09]).unwrap();
        r.pio_write(RTC_PORT + 1, &[0x99]).unwrap();
        let y = bcd(read(&mut r, 0x09));
        assert_eq!(y, utc_now()[6] % 100);
    }
}
