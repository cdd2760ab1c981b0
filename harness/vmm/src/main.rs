//! `versus-vmm`: versus' VMM as a small process of its own, one per guest
//! (the Firecracker model), so that its memory (PSS, and resident memory
//! excluding the guest RAM mapping) can be measured apart from versus and
//! its start is part of every boot. It is linked statically from crates/vmm
//! alone (build.rs of versus builds it with crt-static and embeds it), as
//! Firecracker is, so no shared library pages count against it.
//!
//! ```text
//! versus-vmm [--fd N] [--ksm] <MODE> [PARAM]          the kernel-less guest (vm-bare)
//! versus-vmm [--fd N] [--ksm] linux --kernel PATH --initrd PATH [--mem MIB]
//!            [--cmdline STR] [--disk PATH] [--console] [--hide-unemulated] [--boot-bzimage]   a Linux guest (vm-linux)
//! ```
//!
//! `--ksm` marks the guest RAM `MADV_MERGEABLE`, so that the kernel's
//! samepage merging may merge its pages with other guests' (versus'
//! density measurement with KSM on).
//!
//! Both write the workload protocol to fd N (default 3): first
//! `LOG vmm guest_ram=<host addr hex>+<len hex> boot started=<ns> start=<ns>
//! <phase>=<monotonic ns> ...`, then the guest's lines (`READY`, `RESULT`,
//! `LOG`, `PROBE`). When the guest ends with an error they write
//! `LOG vmm-error <VmError::to_wire>` (kernel-less guest) and
//! `ABORT <message>`, and exit with status 1. A guest that waits (`idle`) is
//! kept until standard input reaches end of file.
//!
//! | file | job |
//! |---|---|
//! | [`bare`] | the kernel-less guest's modes |
//! | [`linux`] | booting a Linux kernel and forwarding its channel UART |
//! | this file | arguments, the channel fd, dispatch |

mod bare;
mod linux;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::process::ExitCode;
use std::time::Duration;

use versus_vmm::clock::now_ns;
use versus_vmm::memory::RamOptions;

/// What to run.
#[derive(Debug, PartialEq)]
enum Command {
    Bare(versus_vmm::bare::GuestRun),
    Linux(linux::Args),
}

/// What the command line asks for.
#[derive(Debug, PartialEq)]
struct Args {
    fd: i32,
    ram: RamOptions,
    command: Command,
}

/// Reads `[--fd N] [--ksm] <MODE> ...`: the channel fd, how to map the
/// guest RAM, and what to run.
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
    let command = match name.as_str() {
        "linux" => Command::Linux(linux::Args::parse(args)?),
        _ => Command::Bare(bare::parse_run(&name, args.next())?),
    };
    Ok(Args { fd, ram, command })
}

fn main() -> ExitCode {
    let started = now_ns();
    let Args { fd, ram, command } = match parse_args(std::env::args().skip(1)) {
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
    let result = match command {
        Command::Bare(run) => bare::run(&mut out, run, ram, started, timeout),
        Command::Linux(args) => linux::run(&mut out, &args, ram, started, timeout),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => fail(&mut out, &msg),
    }
}

/// The first line: guest RAM host ranges and the VMM's boot marks.
fn vmm_line(guest_ram: &[(u64, u64)], started: u64, start: u64, marks: &[(&str, u64)]) -> String {
    let mut line = String::from("LOG vmm");
    for (s, len) in guest_ram {
        line += &format!(" guest_ram={s:x}+{len:x}");
    }
    line += &format!(" boot started={started} start={start}");
    for (name, t) in marks {
        line += &format!(" {name}={t}");
    }
    line.push('\n');
    line
}

/// Blocks until standard input reaches end of file (or fails).
fn wait_stdin_eof() {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while let Ok(n) = stdin.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

fn fail(out: &mut File, msg: &str) -> ExitCode {
    let _ = out.write_all(format!("ABORT {}\n", msg.replace('\n', " | ")).as_bytes());
    eprintln!("versus-vmm: {msg}");
    ExitCode::from(1)
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "versus-vmm: {why}\nusage: versus-vmm [--fd N] [--ksm] <ready|cpu|mem|call|idle|probe|stress-cpu|stress-mem|NUMBER> [PARAM]\n       versus-vmm [--fd N] [--ksm] linux --kernel PATH --initrd PATH [--mem MIB] [--cmdline STR] [--disk PATH] [--console] [--hide-unemulated] [--boot-bzimage]"
    );
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use versus_vmm::abi::mode;
    use versus_vmm::bare::GuestRun;

    fn args(a: &str) -> Vec<String> {
        a.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments_parse_or_say_what_is_wrong() {
        let plain = RamOptions::default();
        assert_eq!(parse_args(args("cpu 7")), Ok(Args { fd: 3, ram: plain, command: Command::Bare(GuestRun { mode: mode::CPU, param: 7 }) }));
        assert_eq!(parse_args(args("--fd 5 idle")), Ok(Args { fd: 5, ram: plain, command: Command::Bare(GuestRun { mode: mode::IDLE, param: 0 }) }));
        let merged = parse_args(args("--fd 5 --ksm idle 16")).unwrap();
        assert_eq!((merged.fd, merged.ram.mergeable, merged.command), (5, true, Command::Bare(GuestRun { mode: mode::IDLE, param: 16 })));
        assert!(matches!(parse_args(args(&format!("{}", mode::PROBE))), Ok(Args { fd: 3, command: Command::Bare(GuestRun { mode: mode::PROBE, .. }), .. })));
        assert_eq!(parse_args(args("--fd x cpu")), Err("--fd needs a descriptor number".into()));
        assert_eq!(parse_args(args("")), Err("no guest mode given".into()));
        assert!(parse_args(args("dance")).unwrap_err().contains("unknown guest mode `dance`"));
        assert!(parse_args(args("cpu -1")).unwrap_err().contains("non-negative"));
        let Ok(Args { fd: 4, command: Command::Linux(l), .. }) = parse_args(args("--fd 4 linux --kernel /k --initrd /i --mem 128 --console --disk /d.ext4"))
        else {
            panic!("linux mode")
        };
        assert_eq!((l.kernel.to_str(), l.initrd.to_str(), l.mem_mib, l.console, l.hide_unemulated), (Some("/k"), Some("/i"), 128, true, false));
        assert_eq!(l.disk.as_deref(), Some(std::path::Path::new("/d.ext4")));
    }

    #[test]
    fn the_first_line_carries_ram_and_marks() {
        let l = vmm_line(&[(0x7f00, 0x1000)], 5, 7, &[("vmm", 9)]);
        assert_eq!(l, "LOG vmm guest_ram=7f00+1000 boot started=5 start=7 vmm=9\n");
    }
}
