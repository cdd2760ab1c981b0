//! Quantities as people type them on a command line: sizes (`2GiB`,
//! `512 GiB`, `1.5T`), rates (`150/s`) and percentages (`10`, `10%`).

/// Why a quantity could not be read; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("invalid size `{0}`: give a number and a unit: B, KiB, MiB, GiB, TiB (or K, M, G, T: the same), or KB, MB, GB, TB (powers of 1000), e.g. 512GiB")]
    Size(String),
    #[error("invalid rate `{0}`: give instances per second, e.g. 150 or 150/s")]
    Rate(String),
    #[error("invalid percentage `{0}`: give a number from 0 to 100 (below 100), e.g. 10 or 10%")]
    Percent(String),
}

/// Splits `12.5GiB` into (12.5, "GiB").
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let v: f64 = num.parse().ok()?;
    v.is_finite().then_some((v, unit.trim()))
}

/// A size in bytes. Without a unit, bytes.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Size(s.to_string());
    let (v, unit) = number_and_unit(s).ok_or_else(bad)?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1048576.0,
        "g" | "gib" => 1073741824.0,
        "t" | "tib" => 1099511627776.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = v * mult;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// A rate in instances per second (`150`, `150/s`); positive.
pub fn parse_rate(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    match t.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(UnitError::Rate(s.to_string())),
    }
}

/// A percentage in [0, 100) (`10`, `10%`), as a fraction.
pub fn parse_percent(s: &str) -> Result<f64, UnitError> {
    let t = s.trim();
    let t = t.strip_suffix('%').unwrap_or(t);
    match t.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..100.0).contains(&v) => Ok(v / 100.0),
        _ => Err(UnitError::Percent(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512GiB"), Ok(512 << 30));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        for bad in ["12XB", "", "GiB", "-1GiB", "1..2G", "1e3M", "99999999999TiB"] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid size") && !e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn rates_and_percentages() {
        assert_eq!(parse_rate("150/s"), Ok(150.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").is_err() && parse_rate("fast").is_err());
        assert_eq!(parse_percent("10%"), Ok(0.1));
        assert_eq!(parse_percent("0"), Ok(0.0));
        assert!(parse_percent("100").is_err() && parse_percent("-3").is_err() && parse_percent("x").is_err());
    }
}
