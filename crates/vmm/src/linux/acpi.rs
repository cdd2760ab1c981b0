//! Minimal ACPI tables announcing virtio-mmio devices to a Linux guest (the
//! Firecracker recipe): RSDP, XSDT, a hardware-reduced FADT, a MADT with
//! one local APIC and the IOAPIC, and a DSDT holding one `LNRO0005` device
//! (the virtio-mmio ACPI id) per device with its register window and
//! interrupt.
//!
//! Why ACPI and not `virtio_mmio.device=` on the command line: Debian's
//! kernels (linux-image-amd64 and linux-image-cloud-amd64, 6.1) are built
//! without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so the command-line form is
//! ignored; their virtio_mmio module does match `LNRO0005` ACPI devices.
//!
//! Only written when the guest has a virtio device: a guest without one
//! gets no tables (its boot is unchanged: no RSDP, no ACPI). With the
//! tables the kernel runs in ACPI hardware-reduced mode: no legacy PIC, the
//! ISA interrupts (serial ports on 3 and 4) and the devices' go through the
//! in-kernel IOAPIC, whose default KVM routing the irqfds already use.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error::{LinuxError, Result};

/// Where the tables go: the BIOS read-only area below 1 MiB, which is not
/// RAM in the e820 map (the kernel never allocates it) and which the kernel
/// also scans for the RSDP.
pub const TABLES_START: u64 = 0x000e_0000;
/// The end of that area.
pub const TABLES_END: u64 = 0x0010_0000;
/// The local APIC and IOAPIC addresses (KVM's in-kernel irqchip).
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// The ACPI hardware id the virtio_mmio driver matches.
pub const VIRTIO_MMIO_HID: &str = "LNRO0005";

const OEM_ID: &[u8; 6] = b"VERSUS";
const OEM_TABLE_ID: &[u8; 8] = b"VERSUSVM";

/// A virtio-mmio device for the DSDT: register window base and length, and
/// its interrupt (a GSI on the IOAPIC, edge-triggered, active high).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDev {
    pub base: u64,
    pub len: u64,
    pub irq: u32,
}

fn checksum(b: &[u8]) -> u8 {
    0u8.wrapping_sub(b.iter().fold(0u8, |a, x| a.wrapping_add(*x)))
}

/// A table: the 36-byte system description header and `body`, checksummed.
fn table(sig: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(sig);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum, below
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"VRSS"); // creator id
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum(&t);
    t
}

/// An AML PkgLength for a package whose contents after the length are
/// `body` bytes long (the encoding counts its own bytes).
fn pkg_length(body: usize) -> Vec<u8> {
    if body + 1 < 0x40 {
        vec![(body + 1) as u8]
    } else if body + 2 < 0x1000 {
        let n = body + 2;
        vec![0x40 | (n & 0xf) as u8, (n >> 4) as u8]
    } else {
        let n = body + 3;
        vec![0x80 | (n & 0xf) as u8, (n >> 4) as u8, (n >> 12) as u8]
    }
}

/// `Name(<name>, <data>)`.
fn aml_name(name: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08];
    v.extend_from_slice(name);
    v.extend_from_slice(data);
    v
}

/// A `_CRS` buffer: `resources` (the device's own descriptors), then one
/// extended interrupt (consumer, edge, active high, exclusive) and the end
/// tag, as `Buffer(ByteConst size) { bytes }`.
fn aml_crs(resources: &[u8], irq: u32) -> Vec<u8> {
    let mut crs = resources.to_vec();
    crs.extend_from_slice(&[0x89, 0x06, 0x00, 0x03, 0x01]);
    crs.extend_from_slice(&irq.to_le_bytes());
    crs.extend_from_slice(&[0x79, 0x00]);
    let mut buf_body = vec![0x0a, crs.len() as u8];
    buf_body.extend_from_slice(&crs);
    let mut buffer = vec![0x11];
    buffer.extend(pkg_length(buf_body.len()));
    buffer.extend(buf_body);
    buffer
}

/// A `Device(name)` with `_HID` (already encoded), `_UID` (a byte) and `_CRS`.
fn aml_device(name: &[u8], hid: &[u8], uid: u8, crs: &[u8]) -> Vec<u8> {
    let mut body = name.to_vec();
    body.extend(aml_name(b"_HID", hid));
    body.extend(aml_name(b"_UID", &[0x0a, uid]));
    body.extend(aml_name(b"_CRS", crs));
    let mut dev = vec![0x5b, 0x82];
    dev.extend(pkg_length(body.len()));
    dev.extend(body);
    dev
}

/// The AML of one `Device` with `_HID "LNRO0005"`, `_UID` and `_CRS`
/// (Memory32Fixed + one extended interrupt).
fn aml_virtio_device(index: usize, d: &MmioDev) -> Vec<u8> {
    let mut mem = vec![0x86, 0x09, 0x00, 0x01];
    mem.extend_from_slice(&(d.base as u32).to_le_bytes());
    mem.extend_from_slice(&(d.len as u32).to_le_bytes());
    let mut hid = vec![0x0d];
    hid.extend_from_slice(VIRTIO_MMIO_HID.as_bytes());
    hid.push(0);
    let name = format!("VR{:02X}", index.min(0xff));
    aml_device(name.as_bytes(), &hid, index as u8, &aml_crs(&mem, d.irq))
}

/// The legacy UARTs the guest's serial driver must keep using: in
/// hardware-reduced mode there is no legacy PIC, so the ISA interrupts are
/// not identity-mapped and the kernel maps a UART's interrupt only when
/// ACPI describes the UART (`PNP0501`, as a PC's firmware does): COM1 (the
/// console) and COM2 (the workload channel).
pub const UARTS: [(u16, u32); 2] = [(0x3f8, 4), (0x2f8, 3)];

/// The AML of a 16550 UART (`PNP0501`) at `port` with interrupt `irq`.
fn aml_uart(index: usize, port: u16, irq: u32) -> Vec<u8> {
    // IO(Decode16, port, port, 1, 8)
    let mut io = vec![0x47, 0x01];
    io.extend_from_slice(&port.to_le_bytes());
    io.extend_from_slice(&port.to_le_bytes());
    io.extend_from_slice(&[0x01, 0x08]);
    // _HID as an EISA id: PNP0501 compressed to a DWord.
    let mut hid = vec![0x0c];
    hid.extend_from_slice(&eisa_id("PNP0501").to_le_bytes());
    aml_device(format!("COM{}", index + 1).as_bytes(), &hid, index as u8 + 1, &aml_crs(&io, irq))
}

/// A compressed EISA id (`PNP0501` -> 0x0105d041), as the ACPI spec's
/// EISAID() macro makes it.
pub fn eisa_id(id: &str) -> u32 {
    let b = id.as_bytes();
    let c = |x: u8| ((x - b'@') & 0x1f) as u32;
    let hex = |x: u8| (x as char).to_digit(16).unwrap_or(0);
    let v = (c(b[0]) << 26) | (c(b[1]) << 21) | (c(b[2]) << 16) | (hex(b[3]) << 12) | (hex(b[4]) << 8) | (hex(b[5]) << 4) | hex(b[6]);
    v.swap_bytes()
}

/// The DSDT: `Scope(\_SB) { Device(COM1) ... Device(VR00) {...} ... }`.
pub fn dsdt(devs: &[MmioDev]) -> Vec<u8> {
    let mut body = b"\\_SB_".to_vec();
    for (i, (port, irq)) in UARTS.iter().enumerate() {
        body.extend(aml_uart(i, *port, *irq));
    }
    for (i, d) in devs.iter().enumerate() {
        body.extend(aml_virtio_device(i, d));
    }
    let mut aml = vec![0x10];
    aml.extend(pkg_length(body.len()));
    aml.extend(body);
    table(b"DSDT", 2, &aml)
}

/// FADT revision 6, hardware reduced, pointing at the DSDT.
fn fadt(dsdt_addr: u64) -> Vec<u8> {
    // 276 bytes in all: the body is what follows the 36-byte header.
    let mut b = vec![0u8; 276 - 36];
    let at = |off: usize| off - 36;
    b[at(40)..at(44)].copy_from_slice(&(dsdt_addr as u32).to_le_bytes());
    // IAPC_BOOT_ARCH: legacy devices and an 8042 (the i8042 that resets the
    // guest), as without ACPI.
    b[at(109)..at(111)].copy_from_slice(&0x0003u16.to_le_bytes());
    // Flags: HW_REDUCED_ACPI (bit 20): no PM blocks, no SCI, no legacy PIC.
    b[at(112)..at(116)].copy_from_slice(&(1u32 << 20).to_le_bytes());
    b[at(131)] = 5; // minor version (6.5)
    b[at(140)..at(148)].copy_from_slice(&dsdt_addr.to_le_bytes());
    // Hypervisor vendor identity.
    b[at(268)..at(276)].copy_from_slice(b"VERSUSVM");
    table(b"FACP", 6, &b)
}

/// MADT: the boot CPU's local APIC and the IOAPIC (GSI base 0).
fn madt() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // flags: no dual 8259 (reduced hardware)
    b.extend_from_slice(&[0, 8, 0, 0]); // processor local APIC: uid 0, APIC id 0
    b.extend_from_slice(&1u32.to_le_bytes()); // enabled
    b.extend_from_slice(&[1, 12, 0, 0]); // IOAPIC id 0
    b.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // GSI base
    table(b"APIC", 5, &b)
}

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let b: Vec<u8> = entries.iter().flat_map(|e| e.to_le_bytes()).collect();
    table(b"XSDT", 1, &b)
}

/// RSDP revision 2 pointing at the XSDT.
fn rsdp(xsdt_addr: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(36);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0); // checksum of the first 20 bytes
    r.extend_from_slice(OEM_ID);
    r.push(2);
    r.extend_from_slice(&0u32.to_le_bytes()); // no RSDT
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt_addr.to_le_bytes());
    r.push(0); // extended checksum
    r.extend_from_slice(&[0, 0, 0]);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// The tables laid out from [`TABLES_START`]: `(address, bytes)` each, the
/// RSDP first (at [`TABLES_START`], 16-byte aligned, where the kernel's
/// scan finds it too).
pub fn layout(devs: &[MmioDev]) -> Result<Vec<(u64, Vec<u8>)>> {
    let align = |a: u64| (a + 15) & !15;
    let rsdp_at = TABLES_START;
    let xsdt_at = align(rsdp_at + 36);
    let fadt_at = align(xsdt_at + 36 + 16);
    let madt_at = align(fadt_at + 276);
    let m = madt();
    let dsdt_at = align(madt_at + m.len() as u64);
    let d = dsdt(devs);
    if dsdt_at + d.len() as u64 > TABLES_END {
        return Err(LinuxError::Load(format!("ACPI tables for {} devices do not fit below 1 MiB", devs.len())));
    }
    Ok(vec![(rsdp_at, rsdp(xsdt_at)), (xsdt_at, xsdt(&[fadt_at, madt_at])), (fadt_at, fadt(dsdt_at)), (madt_at, m), (dsdt_at, d)])
}

/// Writes the tables into guest memory; returns the RSDP's address (for
/// `boot_params.acpi_rsdp_addr`).
pub fn write(mem: &GuestMemoryMmap, devs: &[MmioDev]) -> Result<u64> {
    let tables = layout(devs)?;
    for (addr, bytes) in &tables {
        mem.write_slice(bytes, GuestAddress(*addr)).map_err(|e| LinuxError::GuestWrite { what: "ACPI tables", addr: *addr, detail: e.to_string() })?;
    }
    Ok(tables[0].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn tables_checksum_and_point_at_each_other() {
        let devs = [MmioDev { base: 0xd000_0000, len: 0x1000, irq: 5 }];
        let t = layout(&devs).unwrap();
        let (rsdp_at, r) = &t[0];
        assert_eq!(*rsdp_at, TABLES_START);
        assert_eq!((&r[..8], sum(&r[..20]), sum(r)), (&b"RSD PTR "[..], 0, 0));
        let xsdt_at = u64::from_le_bytes(r[24..32].try_into().unwrap());
        let find = |a: u64| t.iter().find(|(at, _)| *at == a).map(|(_, b)| b.clone()).unwrap();
        let x = find(xsdt_at);
        assert_eq!(&x[..4], b"XSDT");
        for (_, b) in &t[1..] {
            assert_eq!(sum(b), 0, "{}", String::from_utf8_lossy(&b[..4]));
            assert_eq!(u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize, b.len());
        }
        let fadt_at = u64::from_le_bytes(x[36..44].try_into().unwrap());
        let f = find(fadt_at);
        assert_eq!((&f[..4], f.len(), f[8]), (&b"FACP"[..], 276, 6));
        assert_ne!(u32::from_le_bytes(f[112..116].try_into().unwrap()) & (1 << 20), 0, "hardware reduced");
        let dsdt_at = u64::from_le_bytes(f[140..148].try_into().unwrap());
        let d = find(dsdt_at);
        assert_eq!(&d[..4], b"DSDT");
        assert!(d.windows(8).any(|w| w == VIRTIO_MMIO_HID.as_bytes()));
        // The _CRS: Memory32Fixed at the base, then the interrupt.
        let base = 0xd000_0000u32.to_le_bytes();
        let at = d.windows(4).position(|w| w == base).unwrap();
        assert_eq!(&d[at - 4..at], &[0x86, 0x09, 0x00, 0x01]);
        assert_eq!(&d[at + 8..at + 17], &[0x89, 0x06, 0x00, 0x03, 0x01, 5, 0, 0, 0]);
        assert!(t.last().map(|(a, b)| a + b.len() as u64).unwrap() <= TABLES_END);
    }

    #[test]
    fn eisa_ids_compress_as_the_spec_says() {
        // ACPI spec: EISAID("PNP0501") is 0x0105D041.
        assert_eq!(eisa_id("PNP0501"), 0x0105_d041);
        assert_eq!(eisa_id("PNP0303"), 0x0303_d041);
    }

    #[test]
    fn package_lengths_count_their_own_bytes() {
        assert_eq!(pkg_length(10), vec![11]);
        assert_eq!(pkg_length(62), vec![63]);
        // 63 + 2 = 65 = 0x41: low nibble 1 in the lead byte, 4 in the next.
        assert_eq!(pkg_length(63), vec![0x41, 0x04]);
        let scope = dsdt(&[MmioDev { base: 0xd000_0000, len: 0x1000, irq: 5 }]);
        let aml = &scope[36..];
        assert_eq!(aml[0], 0x10);
        let (lead, next) = (aml[1] as usize, aml[2] as usize);
        assert_eq!(lead >> 6, 1);
        assert_eq!(((next << 4) | (lead & 0xf)) + 1, aml.len(), "the scope's length covers the rest of the table");
    }
}
