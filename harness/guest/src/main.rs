//! The versus workload program. Usage:
//!
//! ```text
//! versus-guest [--fd N] [--ksm] <ready|cpu|mem|call|idle> [PARAM]
//! versus-guest [--fd N] probe PORT
//! versus-guest [--fd N] <stress-cpu|stress-mem|stress-fork> MS [MAX_PROCS]
//! versus-guest [--fd N] image-check [KIB]
//! ```
//!
//! `image-check KIB` is for an instance on an OS image (`versus run
//! --image`): it writes KIB KiB to /var/tmp/versus-instance-data (synced:
//! the instance's own data, 0 for none), signals ready, reports a RESULT
//! whose checksum is [`image_digest`] of the root it sees (so versus can
//! tell which version of the image an instance runs on), then waits like
//! `idle` until its standard input reaches end of file.
//!
//! `--ksm`: the program's first action is `prctl(PR_SET_MEMORY_MERGE)` on
//! itself, so that the kernel's samepage merging may merge every page it
//! has or maps later (versus' density measurement with KSM on; the VMMs
//! mark their guest RAM mergeable the same way). A kernel that refuses it
//! (before Linux 6.4, or without KSM) ends the program before READY with
//! the reason.
//!
//! `probe` and `stress-*` are modes of this program only (see `probe.rs`).
//!
//! It writes the protocol of `versus_workload::protocol` to file descriptor N
//! (default 3 when open, else standard output). `idle` signals ready and then
//! waits until its standard input reaches end of file, which is how the host
//! asks it to stop. It is linked statically so that it runs in an empty
//! container rootfs and as /init of a Linux guest.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;

use versus_workload::protocol::{self, Report};
use versus_workload::{self as wl, Workload};

mod init;
mod probe;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn prctl(option: i32, ...) -> i32;
}

/// `PR_SET_MEMORY_MERGE` (linux/prctl.h, Linux 6.4).
const PR_SET_MEMORY_MERGE: i32 = 67;

/// Makes all of this process's memory, present and future, mergeable by KSM.
fn set_memory_merge() -> Result<(), std::io::Error> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    if unsafe { prctl(PR_SET_MEMORY_MERGE, 1u64, 0u64, 0u64, 0u64) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

const CLOCK_MONOTONIC: i32 = 1;
const F_GETFD: i32 = 1;

/// Monotonic clock in nanoseconds: the same clock the host reads, so host and
/// workload timestamps can be subtracted.
fn now_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor flags; no memory is passed.
    unsafe { fcntl(fd, F_GETFD) >= 0 }
}

/// The channel to the host, one protocol line per write.
struct Channel(File);

impl Channel {
    fn send(&mut self, line: &str) {
        // A host that closed the channel cannot be told anything more; the
        // workload ends as it would have anyway.
        let _ = self.0.write_all(line.as_bytes());
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: versus-guest [--fd N] [--ksm] <{}> [PARAM]", Workload::NAMES.join("|"));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // pid 1 of a vm-linux guest: set up, run the workload, reboot.
    if let Some(code) = init::dispatch() {
        return code;
    }
    let started = now_ns();
    let mut args = std::env::args().skip(1).peekable();
    let mut fd: Option<i32> = None;
    loop {
        match args.peek().map(String::as_str) {
            Some("--fd") => {
                args.next();
                match args.next().and_then(|v| v.parse().ok()) {
                    Some(n) => fd = Some(n),
                    None => return usage(),
                }
            }
            Some("--ksm") => {
                args.next();
                if let Err(e) = set_memory_merge() {
                    eprintln!("versus-guest: prctl(PR_SET_MEMORY_MERGE) failed: {e} (needs Linux 6.4 or later with KSM)");
                    return ExitCode::from(3);
                }
            }
            _ => break,
        }
    }
    let Some(name) = args.next() else { return usage() };
    if name == IMAGE_CHECK {
        let kib = match args.next().map(|p| p.parse::<u32>()) {
            None => 0,
            Some(Ok(v)) => v,
            Some(Err(_)) => return usage(),
        };
        let Some(mut ch) = open_channel(fd) else { return ExitCode::from(2) };
        return image_check(kib, started, &mut ch);
    }
    if probe::is_mode(&name) {
        let mut params = Vec::new();
        for p in args {
            match p.parse::<u32>() {
                Ok(v) => params.push(v),
                Err(_) => {
                    eprintln!("versus-guest: parameter `{p}` is not a non-negative integer");
                    return ExitCode::from(2);
                }
            }
        }
        let Some(mut ch) = open_channel(fd) else { return ExitCode::from(2) };
        return probe::run(&name, &params, started, &mut ch);
    }
    let param = match args.next() {
        Some(p) => match p.parse::<u32>() {
            Ok(v) => Some(v),
            Err(_) => {
                eprintln!("versus-guest: parameter `{p}` is not a non-negative integer");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let Some(workload) = Workload::from_name(&name, param) else {
        eprintln!("versus-guest: unknown workload `{name}`");
        return usage();
    };
    let Some(mut ch) = open_channel(fd) else { return ExitCode::from(2) };
    run(workload, started, &mut ch)
}

/// The channel to the host: fd N of `--fd N`, else 3 when open, else
/// standard output.
fn open_channel(fd: Option<i32>) -> Option<Channel> {
    let fd = fd.unwrap_or(if fd_is_open(3) { 3 } else { 1 });
    if !fd_is_open(fd) {
        eprintln!("versus-guest: channel fd {fd} is not open");
        return None;
    }
    // SAFETY: `fd` was checked to be open and is owned by this program from
    // here on (the host handed it over for exactly this purpose).
    Some(Channel(unsafe { File::from_raw_fd(fd) }))
}

fn send_result(ch: &mut Channel, workload: Workload, elapsed_ns: u64, checksum: u64, started: u64) {
    let mut line = String::new();
    let report = Report { workload: workload.name(), param: workload.param(), elapsed_ns, checksum, started_ns: Some(started) };
    let _ = protocol::write_result(&mut line, &report);
    ch.send(&line);
}

fn ready(ch: &mut Channel, started: u64) {
    let mut line = String::new();
    let _ = protocol::write_ready(&mut line, Some((now_ns(), started)));
    ch.send(&line);
}

/// The `image-check` mode's name.
const IMAGE_CHECK: &str = "image-check";
/// The files whose content says which version of an OS image a root is.
pub const IMAGE_FILES: [&str; 2] = ["/etc/debian_version", "/var/lib/dpkg/status"];
/// Where `image-check` writes the instance's own data.
const INSTANCE_DATA: &str = "/var/tmp/versus-instance-data";

/// SHA-256 over each of [`IMAGE_FILES`] (missing: empty) followed by a NUL,
/// folded to 64 bits: the version of the image this root holds. versus
/// computes the same over an image tree (`src/experiment/patch.rs`).
fn image_digest() -> u64 {
    let mut all = Vec::new();
    for f in IMAGE_FILES {
        all.extend(std::fs::read(f).unwrap_or_default());
        all.push(0);
    }
    wl::checksum64(&versus_workload::sha256::digest(&all))
}

fn image_check(kib: u32, started: u64, ch: &mut Channel) -> ExitCode {
    let t = now_ns();
    if kib > 0 {
        let data: Vec<u8> = (0..kib as usize * 1024).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect();
        let written = std::fs::File::create(INSTANCE_DATA).and_then(|mut f| {
            f.write_all(&data)?;
            f.sync_all()
        });
        if let Err(e) = written {
            eprintln!("versus-guest: cannot write {INSTANCE_DATA}: {e}");
            return ExitCode::from(4);
        }
    }
    let digest = image_digest();
    let el = now_ns() - t;
    ready(ch, started);
    let mut line = String::new();
    let report = Report { workload: IMAGE_CHECK, param: kib, elapsed_ns: el, checksum: digest, started_ns: Some(started) };
    let _ = protocol::write_result(&mut line, &report);
    ch.send(&line);
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn run(workload: Workload, started: u64, ch: &mut Channel) -> ExitCode {
    match workload {
        Workload::Ready => ready(ch, started),
        Workload::Cpu { rounds } => {
            ready(ch, started);
            let t = now_ns();
            let digest = wl::cpu(rounds);
            let el = now_ns() - t;
            send_result(ch, workload, el, wl::checksum64(&digest), started);
        }
        Workload::Mem { mib } => {
            ready(ch, started);
            let t = now_ns();
            // Zeroed by the allocator with fresh (untouched) pages: a
            // buffer this large is a new anonymous mapping, so touch_pages
            // still takes the first-touch fault of every page, which is
            // the point of the workload.
            let mut buf = vec![0u8; mib as usize * 1024 * 1024];
            let acc = wl::touch_pages(&mut buf);
            let el = now_ns() - t;
            send_result(ch, workload, el, acc, started);
            drop(buf);
        }
        Workload::Call { n } => {
            ready(ch, started);
            let t = now_ns();
            let acc = wl::call_loop(n, || std::process::id() as u64);
            let el = now_ns() - t;
            send_result(ch, workload, el, acc, started);
        }
        Workload::Idle { mib } => {
            let mut buf = vec![0u8; mib as usize * 1024 * 1024];
            let t = now_ns();
            let acc = wl::touch_pages(&mut buf);
            let el = now_ns() - t;
            ready(ch, started);
            send_result(ch, workload, el, acc, started);
            // Wait for the host to close our standard input.
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            std::hint::black_box(&buf);
        }
    }
    ExitCode::SUCCESS
}
