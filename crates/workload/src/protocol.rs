//! The readiness and result protocol, defined once for every platform.
//!
//! A workload talks to versus with newline-terminated ASCII lines over
//! whatever channel its platform provides (an inherited pipe for processes
//! and containers, a serial line or port for VM guests):
//!
//! ```text
//! READY t=<ns> started=<ns>       ready; t: the workload's monotonic clock now, started: at entry
//!                                 (both only when the workload has a clock)
//! RESULT k=v k=v ...              one result; keys below
//! LOG <text>                      a diagnostic line
//! ABORT <text>                    the workload failed; the host ends the instance
//! PROBE id=<id> result=<r> evidence=<text to end of line>
//! ```
//!
//! Result keys: `workload`, `param`, `elapsed_ns` (the workload's own timing of
//! its measured loop), `checksum` (16 hex digits, `cpu`), `per_call_ns`
//! (`call`), `started` (monotonic ns when the program entered `main`).

use core::fmt::{self, Write};

/// The key/value pairs of a `RESULT` line, borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a>(pub &'a str);

impl<'a> Fields<'a> {
    /// Iterates over `key=value` pairs; tokens without `=` are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.0.split(' ').filter_map(|tok| tok.split_once('='))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of `key` parsed as an unsigned integer (decimal).
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
}

/// One parsed protocol line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Ready { t_ns: Option<u64>, started_ns: Option<u64> },
    Result(Fields<'a>),
    Log(&'a str),
    Abort(&'a str),
    Probe { id: &'a str, result: &'a str, evidence: &'a str },
}

/// Why a line is not a protocol message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    UnknownVerb,
    MissingField(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownVerb => f.write_str("unknown verb (expected READY, RESULT, LOG, ABORT or PROBE)"),
            ParseError::MissingField(k) => write!(f, "missing field `{k}`"),
        }
    }
}

impl<'a> Message<'a> {
    /// Parses one line (without its newline; a trailing `\r` is ignored).
    pub fn parse(line: &'a str) -> Result<Message<'a>, ParseError> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "READY" => Ok(Message::Ready { t_ns: Fields(rest).get_u64("t"), started_ns: Fields(rest).get_u64("started") }),
            "RESULT" => Ok(Message::Result(Fields(rest))),
            "LOG" => Ok(Message::Log(rest)),
            "ABORT" => Ok(Message::Abort(rest)),
            "PROBE" => {
                let (head, evidence) = match rest.split_once(" evidence=") {
                    Some((h, e)) => (h, e),
                    None => (rest, ""),
                };
                let f = Fields(head);
                Ok(Message::Probe {
                    id: f.get("id").ok_or(ParseError::MissingField("id"))?,
                    result: f.get("result").ok_or(ParseError::MissingField("result"))?,
                    evidence,
                })
            }
            _ => Err(ParseError::UnknownVerb),
        }
    }
}

/// Writes `READY` (with the workload's own clock readings when it has one:
/// now, and at program entry).
pub fn write_ready(w: &mut impl Write, clock: Option<(u64, u64)>) -> fmt::Result {
    match clock {
        Some((t, started)) => writeln!(w, "READY t={t} started={started}"),
        None => writeln!(w, "READY"),
    }
}

/// A result as the workload reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    pub workload: &'static str,
    pub param: u32,
    pub elapsed_ns: u64,
    /// Short checksum (see [`crate::checksum64`]) for `cpu`; an accumulator
    /// for the other workloads.
    pub checksum: u64,
    /// Monotonic ns at program entry, when the workload has a clock.
    pub started_ns: Option<u64>,
}

/// Writes one `RESULT` line.
pub fn write_result(w: &mut impl Write, r: &Report) -> fmt::Result {
    write!(w, "RESULT workload={} param={} elapsed_ns={} checksum={:016x}", r.workload, r.param, r.elapsed_ns, r.checksum)?;
    if r.workload == "call" && r.param > 0 {
        write!(w, " per_call_ns={}", r.elapsed_ns / r.param as u64)?;
    }
    if let Some(s) = r.started_ns {
        write!(w, " started={s}")?;
    }
    w.write_char('\n')
}

/// Writes one `PROBE` line; `evidence` must not contain a newline (newlines
/// are replaced by spaces).
pub fn write_probe(w: &mut impl Write, id: &str, result: &str, evidence: &str) -> fmt::Result {
    write!(w, "PROBE id={id} result={result} evidence=")?;
    for c in evidence.chars() {
        w.write_char(if c == '\n' || c == '\r' { ' ' } else { c })?;
    }
    w.write_char('\n')
}

/// A fixed-capacity line buffer implementing [`Write`], for writers with no
/// allocator (the kernel-less guest).
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    pub const fn new() -> Self {
        LineBuf { buf: [0; N], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        if self.len + b.len() > N {
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips() {
        let mut b = LineBuf::<256>::new();
        let r = Report { workload: "call", param: 10, elapsed_ns: 1000, checksum: 0xabc, started_ns: Some(5) };
        write_result(&mut b, &r).unwrap();
        let line = core::str::from_utf8(b.as_bytes()).unwrap();
        assert_eq!(line, "RESULT workload=call param=10 elapsed_ns=1000 checksum=0000000000000abc per_call_ns=100 started=5\n");
        match Message::parse(line).unwrap() {
            Message::Result(f) => {
                assert_eq!(f.get("workload"), Some("call"));
                assert_eq!(f.get_u64("elapsed_ns"), Some(1000));
                assert_eq!(f.get("checksum"), Some("0000000000000abc"));
                assert_eq!(f.get_u64("started"), Some(5));
            }
            m => panic!("parsed as {m:?}"),
        }
    }

    #[test]
    fn ready_probe_and_errors() {
        assert_eq!(Message::parse("READY t=42 started=40"), Ok(Message::Ready { t_ns: Some(42), started_ns: Some(40) }));
        assert_eq!(Message::parse("READY"), Ok(Message::Ready { t_ns: None, started_ns: None }));
        let mut b = LineBuf::<64>::new();
        write_ready(&mut b, Some((9, 8))).unwrap();
        assert_eq!(b.as_bytes(), b"READY t=9 started=8\n");
        assert_eq!(Message::parse("ABORT out of memory"), Ok(Message::Abort("out of memory")));
        let mut b = LineBuf::<128>::new();
        write_probe(&mut b, "host_pids", "exposed", "saw pid 1 = systemd\nand more").unwrap();
        let line = core::str::from_utf8(b.as_bytes()).unwrap();
        assert_eq!(Message::parse(line), Ok(Message::Probe { id: "host_pids", result: "exposed", evidence: "saw pid 1 = systemd and more" }));
        assert_eq!(Message::parse("HELLO"), Err(ParseError::UnknownVerb));
        assert_eq!(Message::parse("PROBE result=x"), Err(ParseError::MissingField("id")));
    }

    #[test]
    fn linebuf_refuses_overflow() {
        let mut b = LineBuf::<4>::new();
        assert!(b.write_str("12345").is_err());
        assert!(b.write_str("1234").is_ok());
    }
}
