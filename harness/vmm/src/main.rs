//! `versus-vmm`: the `vm-bare` VMM as a small process of its own, so that
//! its memory (PSS, and resident memory excluding the guest RAM mapping) can
//! be measured apart from versus. It is linked statically from crates/vmm
//! alone (build.rs of versus builds it with crt-static and embeds it), as
//! Firecracker is, so no shared library pages count against it.
//!
//! ```text
//! versus-vmm [--fd N] [--ksm] <MODE> [PARAM]
//! ```
//!
//! `--ksm` marks the guest RAM `MADV_MERGEABLE`, so that the kernel's
//! samepage merging may merge its pages with other guests' (versus'
//! density measurement with KSM on).
//!
//! MODE is a guest mode of `versus_vmm::abi::mode`, by name (`ready`, `cpu`,
//! `mem`, `call`, `idle`, `probe`, `stress-cpu`, `stress-mem`) or number;
//! PARAM its parameter (default 0; extra arguments are ignored).
//!
//! It writes the workload protocol to fd N (default 3): first
//! `LOG vmm guest_ram=<host addr hex>+<len hex> boot started=<ns> start=<ns>
//! <phase>=<monotonic ns> ...`, then the guest's `READY` (stamped when the
//! guest's READY host call arrived), then the guest's lines. For `idle` it
//! keeps the parked guest until its standard input reaches end of file.
//! When the guest ends with an error, it writes the guest's log lines so
//! far, `LOG vmm-error <VmError::to_wire>`, and `ABORT <message>`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::time::Duration;

use versus_vmm::abi::mode;
use versus_vmm::bare::{BareVm, GuestRun};
use versus_vmm::clock::now_ns;
use versus_vmm::memory::RamOptions;

/// What the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Args {
    fd: i32,
    run: GuestRun,
    ram: RamOptions,
}

/// Reads `[--fd N] [--ksm] <MODE> [PARAM]`: the channel fd, what to run and
/// how to map the guest RAM.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut args = args.into_iter().peekable();
    let mut fd = 3;
    let mut ram = RamOptions::default();
    loop {
        match args.peek().map(String::as_str) {
            Some("--fd") => {
                args.next();
                fd = args.next().and_then(|v| v.parse().ok()).ok_or("--fd needs a descriptor number")?;
            }
            Some("--ksm") => {
                args.next();
                ram.mergeable = true;
            }
            _ => break,
        }
    }
    let name = args.next().ok_or("no guest mode given")?;
    let mode = GuestRun::parse_mode(&name).ok_or_else(|| format!("unknown guest mode `{name}`"))?;
    let param = match args.next().map(|p| p.parse::<u32>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(_)) => return Err("PARAM must be a non-negative integer".into()),
    };
    Ok(Args { fd, run: GuestRun { mode, param }, ram })
}

fn main() -> ExitCode {
    let started = now_ns();
    let Args { fd, run, ram } = match parse_args(std::env::args().skip(1)) {
        Ok(v) => v,
        Err(why) => return usage(&why),
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

    let mut vm = match BareVm::launch_with(run, timeout, ram) {
        Ok(vm) => vm,
        Err(e) => return fail(&mut out, &e.to_string()),
    };
    let mut line = String::from("LOG vmm");
    for (start, len) in vm.guest_ram_host_ranges() {
        line += &format!(" guest_ram={start:x}+{len:x}");
    }
    line += &format!(" boot started={started} start={}", vm.boot.start_ns);
    let mut ready_ns = vm.boot.start_ns;
    for (name, t) in &vm.boot.marks {
        line += &format!(" {name}={t}");
        ready_ns = *t;
    }
    line.push('\n');
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(format!("READY t={ready_ns} started={started}\n").as_bytes());

    let lines = match vm.finish() {
        Ok(l) => l,
        Err(e) => {
            // What the guest logged before it ended (the probes' `site=`
            // marks), then how it ended, in a form the harness reads back
            // (`VmError::from_wire`) to judge it as if the VMM ran inside it.
            let mut text = String::new();
            for l in vm.log_lines() {
                text += &format!("LOG {l}\n");
            }
            text += &format!("LOG vmm-error {}\n", e.to_wire());
            let _ = out.write_all(text.as_bytes());
            return fail(&mut out, &e.to_string());
        }
    };
    let mut text = String::new();
    for l in &lines {
        text += l;
        text.push('\n');
    }
    let _ = out.write_all(text.as_bytes());
    if run.mode == mode::IDLE {
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

fn usage(why: &str) -> ExitCode {
    eprintln!("versus-vmm: {why}\nusage: versus-vmm [--fd N] [--ksm] <ready|cpu|mem|call|idle|probe|stress-cpu|stress-mem|NUMBER> [PARAM]");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &str) -> Vec<String> {
        a.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments_parse_or_say_what_is_wrong() {
        let plain = RamOptions::default();
        assert_eq!(parse_args(args("cpu 7")), Ok(Args { fd: 3, run: GuestRun { mode: mode::CPU, param: 7 }, ram: plain }));
        assert_eq!(parse_args(args("--fd 5 idle")), Ok(Args { fd: 5, run: GuestRun { mode: mode::IDLE, param: 0 }, ram: plain }));
        let merged = parse_args(args("--fd 5 --ksm idle 16")).unwrap();
        assert_eq!((merged.fd, merged.ram.mergeable, merged.run.param), (5, true, 16));
        assert_eq!(parse_args(args(&format!("{}", mode::PROBE))).map(|r| r.run.mode), Ok(mode::PROBE));
        assert_eq!(parse_args(args("--fd x cpu")), Err("--fd needs a descriptor number".into()));
        assert_eq!(parse_args(args("")), Err("no guest mode given".into()));
        assert!(parse_args(args("dance")).unwrap_err().contains("unknown guest mode `dance`"));
        assert!(parse_args(args("cpu -1")).unwrap_err().contains("non-negative"));
    }
}
