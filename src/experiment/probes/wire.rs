//! Decoding what the workload program reports: the `k=v` observations of a
//! PROBE line, its percent-encoding, errno values, and the FNV hash it
//! applies to environment values (never reported in clear).

use std::collections::BTreeMap;

/// FNV-1a, 64 bits; the guest hashes environment values the same way.
pub fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in s {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Decodes the guest's percent-encoding (`%XX`; anything else is literal).
pub fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `k=v` pairs of an observation, decoded.
pub fn fields(evidence: &str) -> BTreeMap<String, String> {
    evidence.split(' ').filter_map(|t| t.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An observed `errnoN` as the errno's name; anything else decoded.
pub fn errno_name(s: &str) -> String {
    match s.strip_prefix("errno").and_then(|n| n.parse::<i32>().ok()) {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => dec(s),
    }
}

/// A numeric field of an observation.
pub fn num(f: &BTreeMap<String, String>, k: &str) -> Option<u64> {
    f.get(k).and_then(|v| v.parse().ok())
}
