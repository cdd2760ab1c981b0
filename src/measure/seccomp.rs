//! A running process's seccomp filter: its mode and filter count from
//! `/proc/PID/status`, the filter programs themselves (classic BPF, read
//! with `PTRACE_SECCOMP_GET_FILTER`, which needs CAP_SYS_ADMIN and a kernel
//! with CONFIG_CHECKPOINT_RESTORE), and the x86-64 system calls they let
//! through to the host kernel ([`allowed_syscalls`]).
//!
//! A system call counts as allowed when some path through every filter can
//! return ALLOW (or LOG) for its number: the filter is walked with the
//! number and architecture known and the arguments and instruction pointer
//! unknown, so a call allowed only with some arguments (a futex operation,
//! an ioctl request) counts. It is the host kernel surface the process can
//! reach, not the calls it makes.

use std::collections::{BTreeSet, HashSet};

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// System call numbers looked at (x86-64 numbers are below 512; x32's have
/// bit 30 set and are not counted).
pub const MAX_NR: u32 = 512;

/// One classic-BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What versus could learn about one process's seccomp state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSeccomp {
    pub pid: i32,
    /// `Seccomp:` of /proc/PID/status (0 none, 1 strict, 2 filter).
    pub mode: Option<u32>,
    /// `Seccomp_filters:`.
    pub filters: Option<u32>,
    /// The allowed system call numbers, or why the filters could not be read.
    pub allowed: Result<BTreeSet<u32>, String>,
}

/// `Seccomp` and `Seccomp_filters` of /proc/PID/status.
pub fn status(pid: i32) -> (Option<u32>, Option<u32>) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    parse_status(&text)
}

/// `Seccomp` and `Seccomp_filters` of a status text.
pub fn parse_status(text: &str) -> (Option<u32>, Option<u32>) {
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.trim().parse().ok());
    (field("Seccomp:"), field("Seccomp_filters:"))
}

const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// Detaches from a seized process on every path.
struct Seized(libc::pid_t);

impl Drop for Seized {
    fn drop(&mut self) {
        // SAFETY: PTRACE_DETACH on a tracee of this thread; no memory is passed.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0usize, 0usize) };
    }
}

fn errno_text(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Reads every seccomp filter of `pid` (most recently installed first) by
/// seizing it with ptrace for a moment: stops it, copies the programs,
/// detaches. The process must not be traced by anyone else.
pub fn read_filters(pid: i32) -> Result<Vec<Vec<Insn>>, String> {
    // SAFETY: PTRACE_SEIZE takes a pid and no memory; it fails cleanly when
    // not permitted.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) } != 0 {
        return Err(errno_text("PTRACE_SEIZE"));
    }
    let seized = Seized(pid);
    // SAFETY: PTRACE_INTERRUPT on our tracee; no memory.
    if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0usize, 0usize) } != 0 {
        return Err(errno_text("PTRACE_INTERRUPT"));
    }
    let mut st = 0;
    // SAFETY: waits for our tracee to stop; `st` is a valid out pointer.
    if unsafe { libc::waitpid(pid, &mut st, libc::__WALL) } != pid {
        return Err(errno_text("waiting for the traced process to stop"));
    }
    let mut out = Vec::new();
    for index in 0usize.. {
        // SAFETY: with a null buffer the kernel only returns the length.
        let n = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, std::ptr::null_mut::<libc::c_void>()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // ENOENT: no filter at this index (we have read them all).
            if e.raw_os_error() == Some(libc::ENOENT) && index > 0 {
                break;
            }
            return Err(format!(
                "PTRACE_SECCOMP_GET_FILTER: {e}{}",
                if e.raw_os_error() == Some(libc::EINVAL) { " (the kernel lacks CONFIG_CHECKPOINT_RESTORE, or the filter is not a classic one)" } else { "" }
            ));
        }
        let mut buf = vec![libc::sock_filter { code: 0, jt: 0, jf: 0, k: 0 }; n as usize];
        // SAFETY: `buf` holds exactly the `n` instructions the kernel said
        // the filter has.
        let m = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf.as_mut_ptr()) };
        if m != n {
            return Err(errno_text("PTRACE_SECCOMP_GET_FILTER (copy)"));
        }
        out.push(buf.iter().map(|f| Insn { code: f.code, jt: f.jt, jf: f.jf, k: f.k }).collect());
    }
    drop(seized);
    Ok(out)
}

/// Reads what can be read of `pid`'s seccomp state.
pub fn read_process(pid: i32) -> ProcessSeccomp {
    let (mode, filters) = status(pid);
    let allowed = match (mode, filters) {
        (Some(2), Some(n)) if n > 0 => read_filters(pid).map(|f| allowed_syscalls(&f, AUDIT_ARCH_X86_64)),
        (Some(m), _) => Err(format!("seccomp mode {m}: no filter to read")),
        _ => Err(format!("/proc/{pid}/status has no Seccomp line")),
    };
    ProcessSeccomp { pid, mode, filters, allowed }
}

/// The system call numbers below [`MAX_NR`] that every filter may allow
/// for `arch` (a call must pass all of a process's filters).
pub fn allowed_syscalls(filters: &[Vec<Insn>], arch: u32) -> BTreeSet<u32> {
    (0..MAX_NR).filter(|&nr| !filters.is_empty() && filters.iter().all(|f| may_allow(f, nr, arch))).collect()
}

// Classic BPF, as seccomp uses it.
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ST: u16 = 0x02;
const BPF_STX: u16 = 0x03;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_MISC: u16 = 0x07;
const SECCOMP_RET_ACTION_FULL: u32 = 0xFFFF_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7FFF_0000;
const SECCOMP_RET_LOG: u32 = 0x7FFC_0000;
/// `sizeof(struct seccomp_data)`.
const DATA_LEN: u32 = 64;

/// A value known to the walk, or not (`None`: an argument, the
/// instruction pointer, or something computed from them).
type V = Option<u32>;

#[derive(Clone, PartialEq, Eq, Hash)]
struct St {
    pc: usize,
    a: V,
    x: V,
    m: [V; 16],
}

/// Whether some path through `prog` returns ALLOW or LOG for system call
/// `nr` on `arch`.
pub fn may_allow(prog: &[Insn], nr: u32, arch: u32) -> bool {
    let load = |off: u32| -> V {
        match off {
            0 => Some(nr),
            4 => Some(arch),
            _ => None,
        }
    };
    let mut seen: HashSet<St> = HashSet::new();
    let mut stack = vec![St { pc: 0, a: Some(0), x: Some(0), m: [Some(0); 16] }];
    while let Some(mut s) = stack.pop() {
        loop {
            if !seen.insert(s.clone()) {
                break;
            }
            let Some(i) = prog.get(s.pc) else { break };
            let src = |s: &St| if i.code & 0x08 != 0 { s.x } else { Some(i.k) };
            match i.code & 0x07 {
                BPF_LD | BPF_LDX => {
                    let v = match i.code & 0xE0 {
                        0x00 => Some(i.k),                                // IMM
                        0x20 if i.code & 0x18 == 0x00 => load(i.k),       // ABS, word
                        0x20 => None,                                     // ABS, half/byte: not used by seccomp
                        0x60 => s.m.get(i.k as usize).copied().flatten(), // MEM
                        0x80 => Some(DATA_LEN),                           // LEN
                        _ => None,
                    };
                    if i.code & 0x07 == BPF_LD {
                        s.a = v;
                    } else {
                        s.x = v;
                    }
                    s.pc += 1;
                }
                BPF_ST | BPF_STX => {
                    let v = if i.code & 0x07 == BPF_ST { s.a } else { s.x };
                    if let Some(slot) = s.m.get_mut(i.k as usize) {
                        *slot = v;
                    }
                    s.pc += 1;
                }
                BPF_ALU => {
                    let b = src(&s);
                    s.a = match (s.a, b, i.code & 0xF0) {
                        (Some(a), _, 0x80) => Some(a.wrapping_neg()),
                        (Some(a), Some(b), op) => match op {
                            0x00 => Some(a.wrapping_add(b)),
                            0x10 => Some(a.wrapping_sub(b)),
                            0x20 => Some(a.wrapping_mul(b)),
                            0x30 => a.checked_div(b),
                            0x40 => Some(a | b),
                            0x50 => Some(a & b),
                            0x60 => Some(a.checked_shl(b).unwrap_or(0)),
                            0x70 => Some(a.checked_shr(b).unwrap_or(0)),
                            0x90 => a.checked_rem(b),
                            0xA0 => Some(a ^ b),
                            _ => None,
                        },
                        // AND with 0 is 0 whatever the other side.
                        (_, Some(0), 0x50) => Some(0),
                        _ => None,
                    };
                    s.pc += 1;
                }
                BPF_JMP => {
                    let next = s.pc + 1;
                    if i.code & 0xF0 == 0x00 {
                        s.pc = next + i.k as usize; // JA
                        continue;
                    }
                    let taken = match (s.a, src(&s)) {
                        (Some(a), Some(b)) => Some(match i.code & 0xF0 {
                            0x10 => a == b,
                            0x20 => a > b,
                            0x30 => a >= b,
                            0x40 => a & b != 0,
                            _ => false,
                        }),
                        _ => None,
                    };
                    let (t, f) = (next + i.jt as usize, next + i.jf as usize);
                    match taken {
                        Some(true) => s.pc = t,
                        Some(false) => s.pc = f,
                        None => {
                            let mut other = s.clone();
                            other.pc = f;
                            stack.push(other);
                            s.pc = t;
                        }
                    }
                }
                BPF_RET => {
                    let r = if i.code & 0x18 == 0x10 { s.a } else { Some(i.k) };
                    match r.map(|r| r & SECCOMP_RET_ACTION_FULL) {
                        Some(SECCOMP_RET_ALLOW | SECCOMP_RET_LOG) => return true,
                        // A return of an unknown value may be anything.
                        None => return true,
                        _ => break,
                    }
                }
                BPF_MISC => {
                    if i.code & 0xF8 == 0x80 {
                        s.a = s.x; // TXA
                    } else {
                        s.x = s.a; // TAX
                    }
                    s.pc += 1;
                }
                _ => break,
            }
        }
    }
    false
}

/// What a filter returns for one concrete system call: its number,
/// architecture and six arguments (the instruction pointer reads as 0).
/// `None` when the program misbehaves (runs off its end, divides by zero,
/// an unknown instruction), which the kernel's checker would have refused.
pub fn evaluate(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> Option<u32> {
    let load = |off: u32| -> Option<u32> {
        match off {
            0 => Some(nr),
            4 => Some(arch),
            8 | 12 => Some(0),
            16..=63 if off % 4 == 0 => {
                let arg = args[(off as usize - 16) / 8];
                Some(if off % 8 == 0 { arg as u32 } else { (arg >> 32) as u32 })
            }
            _ => None,
        }
    };
    let (mut a, mut x, mut m, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    loop {
        let i = prog.get(pc)?;
        pc += 1;
        let src = if i.code & 0x08 != 0 { x } else { i.k };
        match i.code & 0x07 {
            BPF_LD | BPF_LDX => {
                let v = match i.code & 0xE0 {
                    0x00 => i.k,
                    0x20 if i.code & 0x18 == 0x00 => load(i.k)?,
                    0x60 => *m.get(i.k as usize)?,
                    0x80 => DATA_LEN,
                    _ => return None,
                };
                if i.code & 0x07 == BPF_LD {
                    a = v;
                } else {
                    x = v;
                }
            }
            BPF_ST => *m.get_mut(i.k as usize)? = a,
            BPF_STX => *m.get_mut(i.k as usize)? = x,
            BPF_ALU => {
                a = match i.code & 0xF0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src)?,
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src)?,
                    0xA0 => a ^ src,
                    _ => return None,
                }
            }
            BPF_JMP => {
                let taken = match i.code & 0xF0 {
                    0x00 => {
                        pc += i.k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    _ => return None,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            BPF_RET => return Some(if i.code & 0x18 == 0x10 { a } else { i.k }),
            BPF_MISC => {
                if i.code & 0xF8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(code: u16, k: u32) -> Insn {
        Insn { code, jt: 0, jf: 0, k }
    }
    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code, jt, jf, k }
    }
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const KILL: u32 = 0;
    const ERRNO: u32 = 0x0005_0001;

    /// A filter in the shape libseccomp and gVisor emit: check the
    /// architecture, then the number; `ioctl` (16) only with argument 1
    /// equal to 0x5401.
    fn filter() -> Vec<Insn> {
        vec![
            stmt(LD_W_ABS, 4),
            jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
            stmt(RET_K, KILL),
            stmt(LD_W_ABS, 0),
            jump(JEQ_K, 0, 5, 0),  // read: allow
            jump(JEQ_K, 1, 4, 0),  // write: allow
            jump(JEQ_K, 16, 1, 0), // ioctl: check its argument
            stmt(RET_K, ERRNO),
            stmt(LD_W_ABS, 24), // args[1] low half
            jump(JEQ_K, 0x5401, 0, 1),
            stmt(RET_K, SECCOMP_RET_ALLOW),
            stmt(RET_K, KILL),
        ]
    }

    #[test]
    fn counts_calls_that_some_arguments_allow() {
        let a = allowed_syscalls(&[filter()], AUDIT_ARCH_X86_64);
        assert_eq!(a.into_iter().collect::<Vec<_>>(), vec![0, 1, 16]);
        assert!(allowed_syscalls(&[filter()], 0x4000_0003).is_empty(), "another architecture is killed");
        // Two filters: a call must pass both.
        let only_read = vec![stmt(LD_W_ABS, 0), jump(JEQ_K, 0, 0, 1), stmt(RET_K, SECCOMP_RET_ALLOW), stmt(RET_K, KILL)];
        assert_eq!(allowed_syscalls(&[filter(), only_read], AUDIT_ARCH_X86_64).into_iter().collect::<Vec<_>>(), vec![0]);
        assert!(allowed_syscalls(&[], AUDIT_ARCH_X86_64).is_empty());
    }

    #[test]
    fn evaluates_one_call() {
        let f = filter();
        assert_eq!(evaluate(&f, 0, AUDIT_ARCH_X86_64, [0; 6]), Some(SECCOMP_RET_ALLOW));
        assert_eq!(evaluate(&f, 2, AUDIT_ARCH_X86_64, [0; 6]), Some(ERRNO));
        assert_eq!(evaluate(&f, 16, AUDIT_ARCH_X86_64, [0, 0x5401, 0, 0, 0, 0]), Some(SECCOMP_RET_ALLOW));
        assert_eq!(evaluate(&f, 16, AUDIT_ARCH_X86_64, [0, 0x1_0000_5401, 0, 0, 0, 0]), Some(SECCOMP_RET_ALLOW), "the low half only");
        assert_eq!(evaluate(&f, 16, AUDIT_ARCH_X86_64, [0, 0x5402, 0, 0, 0, 0]), Some(KILL));
        assert_eq!(evaluate(&f, 0, 0x4000_0003, [0; 6]), Some(KILL));
        assert_eq!(evaluate(&f[..5], 5, AUDIT_ARCH_X86_64, [0; 6]), None, "off the end");
    }

    #[test]
    fn reads_the_status_lines() {
        assert_eq!(parse_status("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"), (Some(2), Some(1)));
        assert_eq!(parse_status("Name:\tx\n"), (None, None));
        let me = std::process::id() as i32;
        assert!(status(me).0.is_some(), "this kernel reports Seccomp in /proc/PID/status");
        let r = read_process(me);
        assert!(r.allowed.is_err() || r.mode == Some(2));
    }
}
