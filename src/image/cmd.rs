//! Running the host tools an image needs (debootstrap, dpkg, mkfs.ext4,
//! qemu-img, mount): bounded, stopped at an interrupt (the whole process
//! group, so debootstrap's dpkg goes too), and with the bytes each one wrote
//! as the kernel accounted them (`wait4`'s rusage, `ru_oublock` in 512-byte
//! blocks: the kernel's write accounting of the command and its children).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::ImageError;

/// What a finished command left.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    /// Bytes the command (and the children it waited for) wrote to storage.
    pub bytes_written: u64,
    /// The command line, as a person would type it.
    pub line: String,
}

/// The command line of `cmd`, shell-like.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|<>*?".contains(c)) {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Runs `cmd` to its end (at most `timeout`); a non-zero exit is an error
/// naming the command and its last stderr lines. An interrupt (Ctrl-C)
/// stops its whole process group and returns [`ImageError::Interrupted`].
pub fn run(mut cmd: Command, timeout: Duration) -> Result<Ran, ImageError> {
    let line = display(&cmd);
    let mut out = tempfile::tempfile().map_err(|e| ImageError::io("creating a temp file for a command's output", e))?;
    let mut err = tempfile::tempfile().map_err(|e| ImageError::io("creating a temp file for a command's output", e))?;
    let o = out.try_clone().map_err(|e| ImageError::io("duplicating a file descriptor", e))?;
    let e = err.try_clone().map_err(|e| ImageError::io("duplicating a file descriptor", e))?;
    cmd.stdin(std::process::Stdio::null()).stdout(o).stderr(e).process_group(0);
    let child = {
        let _g = crate::workload::fork_guard();
        cmd.spawn()
    }
    .map_err(|e| ImageError::Command { line: line.clone(), why: format!("cannot start it: {e}") })?;
    let pid = child.id() as i32;
    let deadline = Instant::now() + timeout;
    let mut status = 0i32;
    // SAFETY: rusage is plain data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut stopping: Option<Instant> = None;
    loop {
        // SAFETY: waits for our own child; both out pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ImageError::Command { line, why: format!("waiting for it: {e}") });
        }
        let late = Instant::now() >= deadline;
        if (crate::interrupt::requested() || late) && stopping.is_none() {
            // SAFETY: signals our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
            stopping = Some(Instant::now());
        }
        if let Some(t) = stopping {
            if t.elapsed() > Duration::from_secs(5) {
                // SAFETY: as above.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The std handle must not wait again: the child is reaped.
    std::mem::forget(child);
    let read_all = |f: &mut std::fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.read_to_string(&mut s);
        s
    };
    let ran = Ran { stdout: read_all(&mut out), stderr: read_all(&mut err), bytes_written: usage.ru_oublock.max(0) as u64 * 512, line };
    if stopping.is_some() {
        if crate::interrupt::requested() {
            return Err(ImageError::Interrupted);
        }
        return Err(ImageError::Command { line: ran.line, why: format!("did not finish within {timeout:?} and was stopped") });
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let why =
            if libc::WIFEXITED(status) { format!("exit status {}", libc::WEXITSTATUS(status)) } else { format!("killed by signal {}", libc::WTERMSIG(status)) };
        let tail: Vec<&str> = ran.stderr.lines().chain(ran.stdout.lines()).filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(6)..].join(" | ");
        return Err(ImageError::Command { line: ran.line, why: format!("{why}: {tail}") });
    }
    Ok(ran)
}

/// The path of `tool`, or an error naming the Debian package to install.
pub fn need(tool: &str, package: &str) -> Result<std::path::PathBuf, ImageError> {
    crate::host::which(tool).ok_or_else(|| ImageError::Missing { tool: tool.into(), package: package.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_status_and_bytes_written() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("x");
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!("echo hi; dd if=/dev/urandom of={} bs=64k count=16 conv=fsync 2>/dev/null", f.display()));
        let r = run(c, Duration::from_secs(30)).unwrap();
        assert_eq!(r.stdout.trim(), "hi");
        assert!(r.bytes_written >= 1 << 20, "the kernel accounted the 1 MiB written: {}", r.bytes_written);
        let mut bad = Command::new("sh");
        bad.arg("-c").arg("echo nope >&2; exit 3");
        let e = run(bad, Duration::from_secs(30)).unwrap_err().to_string();
        assert!(e.contains("exit status 3") && e.contains("nope") && e.contains("sh -c"), "{e}");
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let t0 = Instant::now();
        let e = run(slow, Duration::from_millis(200)).unwrap_err().to_string();
        assert!(e.contains("did not finish") && t0.elapsed() < Duration::from_secs(10), "{e}");
    }
}
