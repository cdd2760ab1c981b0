//! `versus-vmm`: the `vm-bare` VMM as a small process of its own, so that
//! its memory (PSS, and resident memory excluding the guest RAM mapping) can
//! be measured apart from versus. Same interface as the workload program:
//!
//! ```text
//! versus-vmm [--fd N] <ready|cpu|mem|call|idle|probe|stress-cpu|stress-mem> [PARAM]
//! ```
//!
//! It writes the workload protocol to fd N (default 3): first
//! `LOG vmm guest_ram=<host addr hex>+<len hex> boot <phase>=<monotonic ns> ...`,
//! then the guest's `READY` (stamped when the guest's READY host call
//! arrived), then the guest's results. For `idle` it keeps the parked guest
//! until its standard input reaches end of file.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::time::Duration;

use versus::measure::clock::now_ns;
use versus::platform::vm::bare::{BareVm, GuestRun};
use versus::workload::WorkloadSpec;

fn main() -> ExitCode {
    let started = now_ns();
    let mut args = std::env::args().skip(1).peekable();
    let mut fd = 3;
    if args.peek().map(String::as_str) == Some("--fd") {
        args.next();
        match args.next().and_then(|v| v.parse().ok()) {
            Some(n) => fd = n,
            None => return usage(),
        }
    }
    let Some(name) = args.next() else { return usage() };
    let spec = match args.next() {
        Some(p) => format!("{name}:{p}"),
        None => name,
    };
    let spec: WorkloadSpec = match spec.parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("versus-vmm: {e}");
            return usage();
        }
    };
    let timeout = std::env::var("VERSUS_VMM_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).map(Duration::from_millis).unwrap_or(Duration::from_secs(30));
    // SAFETY: F_GETFD only queries the descriptor; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        eprintln!("versus-vmm: channel fd {fd} is not open");
        return ExitCode::from(2);
    }
    // SAFETY: the fd was checked to be open and was handed to this program
    // for exactly this purpose; it is owned from here on.
    let mut out = unsafe { File::from_raw_fd(fd) };

    // A mode the kernel-less guest cannot run is refused, never replaced.
    let run = match GuestRun::from_spec(&spec) {
        Ok(r) => r,
        Err(e) => return fail(&mut out, &e.to_string()),
    };
    let mut vm = match BareVm::launch(run, timeout) {
        Ok(vm) => vm,
        Err(e) => return fail(&mut out, &e.to_string()),
    };
    let boot = vm.boot.clone();
    let mut line = String::from("LOG vmm");
    for (start, len) in vm.guest_ram_host_ranges() {
        line += &format!(" guest_ram={start:x}+{len:x}");
    }
    line += &format!(" boot started={started} start={}", boot.start_ns);
    let mut t = boot.start_ns;
    for (name, ms) in &boot.phases {
        t += (ms * 1e6).round() as u64;
        line += &format!(" {name}={t}");
    }
    line.push('\n');
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(format!("READY t={} started={started}\n", boot.ready_ns).as_bytes());

    let fin = match vm.finish() {
        Ok(f) => f,
        Err(e) => return fail(&mut out, &e.to_string()),
    };
    let mut text = String::new();
    for l in &fin.logs {
        text += &format!("LOG {l}\n");
    }
    for r in &fin.results {
        text += "RESULT";
        for (k, v) in &r.fields {
            text += &format!(" {k}={v}");
        }
        text.push('\n');
    }
    for p in &fin.probes {
        text += &format!("PROBE id={} result={} evidence={}\n", p.id, p.result, p.evidence);
    }
    let _ = out.write_all(text.as_bytes());
    if matches!(spec, WorkloadSpec::Bench(versus::workload::Workload::Idle { .. })) {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }
    drop(vm);
    ExitCode::SUCCESS
}

fn fail(out: &mut File, msg: &str) -> ExitCode {
    let _ = out.write_all(format!("ABORT {}\n", msg.replace('\n', " ")).as_bytes());
    eprintln!("versus-vmm: {msg}");
    ExitCode::from(1)
}

fn usage() -> ExitCode {
    eprintln!("usage: versus-vmm [--fd N] <ready|cpu|mem|call|idle|probe|stress-cpu|stress-mem> [PARAM]");
    ExitCode::from(2)
}
