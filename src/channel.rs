//! The host side of the workload protocol (`versus_workload::protocol`):
//! reads lines from a pipe with a deadline, polling the interrupt flag, and
//! turns them into owned messages.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use versus_workload::protocol::Message;

use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::workload::WorkloadResult;

/// A message, owned, with the host's receive time.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Ready { t_ns: Option<u64>, started_ns: Option<u64> },
    Result(WorkloadResult),
    Log(String),
    Probe { id: String, result: String, evidence: String },
}

/// Reads protocol lines from the read end of a pipe.
pub struct Channel {
    file: File,
    buf: Vec<u8>,
    eof: bool,
}

/// How often waits wake up to look at the interrupt flag.
const POLL_SLICE: Duration = Duration::from_millis(50);

impl Channel {
    pub fn new(fd: OwnedFd) -> Channel {
        Channel { file: File::from(fd), buf: Vec::with_capacity(256), eof: false }
    }

    /// Next message, with the monotonic ns at which it was read; `Ok(None)`
    /// at end of file (the workload exited or closed the channel). `what`
    /// names what is awaited, for the timeout error.
    pub fn recv(&mut self, deadline: Instant, what: &'static str, timeout: Duration) -> Result<Option<(Received, u64)>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let t = now_ns();
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line).into_owned();
                return Ok(Some((parse(&line)?, t)));
            }
            if self.eof {
                return Ok(None);
            }
            if crate::interrupt::requested() {
                return Err(LaunchError::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LaunchError::Timeout { what, after: timeout });
            }
            let slice = (deadline - now).min(POLL_SLICE);
            let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
            // ppoll: the wait ends at the deadline to the nanosecond (poll's
            // milliseconds would round a short timeout up to 1 ms).
            match ppoll(&mut fds, Some(TimeSpec::from_duration(slice)), None) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(LaunchError::sys("waiting for the workload channel", e)),
            }
            let mut chunk = [0u8; 4096];
            match self.file.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LaunchError::io("reading the workload channel", e)),
            }
        }
    }
}

/// Parses one line into an owned message; `ABORT` becomes an error.
pub fn parse(line: &str) -> Result<Received> {
    let line = line.trim_end_matches(['\n', '\r']);
    match Message::parse(line) {
        Ok(Message::Ready { t_ns, started_ns }) => Ok(Received::Ready { t_ns, started_ns }),
        Ok(Message::Result(f)) => Ok(Received::Result(WorkloadResult::from_fields(f))),
        Ok(Message::Log(s)) => Ok(Received::Log(s.to_string())),
        Ok(Message::Abort(s)) => Err(LaunchError::Aborted(s.to_string())),
        Ok(Message::Probe { id, result, evidence }) => Ok(Received::Probe { id: id.into(), result: result.into(), evidence: evidence.into() }),
        Err(e) => Err(LaunchError::Protocol { line: line.to_string(), reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_lines_split_across_writes_and_eof() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut w = File::from(w);
        let mut ch = Channel::new(r);
        w.write_all(b"READY t=5 star").unwrap();
        w.write_all(b"ted=4\nRESULT workload=cpu checksum=ab\n").unwrap();
        drop(w);
        let dl = Instant::now() + Duration::from_secs(5);
        let d = Duration::from_secs(5);
        assert_eq!(ch.recv(dl, "x", d).unwrap().unwrap().0, Received::Ready { t_ns: Some(5), started_ns: Some(4) });
        match ch.recv(dl, "x", d).unwrap().unwrap().0 {
            Received::Result(r) => assert_eq!(r.checksum(), Some("ab")),
            m => panic!("{m:?}"),
        }
        assert!(ch.recv(dl, "x", d).unwrap().is_none());
    }

    #[test]
    fn times_out_and_rejects_garbage() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut ch = Channel::new(r);
        let d = Duration::from_millis(120);
        let t = Instant::now();
        match ch.recv(Instant::now() + d, "signal ready", d) {
            Err(LaunchError::Timeout { what: "signal ready", .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() >= d);
        let mut w = File::from(w);
        w.write_all(b"HELLO there\n").unwrap();
        assert!(matches!(ch.recv(Instant::now() + d, "x", d), Err(LaunchError::Protocol { .. })));
        assert!(matches!(parse("ABORT boom"), Err(LaunchError::Aborted(s)) if s == "boom"));
    }
}
