//! The container's security profile: what runc and Docker apply by default
//! (`default`), or nothing beyond namespaces, cgroup and a read-only rootfs
//! (`privileged`, versus' launcher before profiles existed).
//!
//! The default profile, in the order the child applies it:
//!
//! 1. runc's masked and read-only paths, on the rootfs's /proc before
//!    pivot_root ([`Hardening::proc_paths`], applied by
//!    [`super::rootfs::RootfsPlan::apply`]): files masked by a bind mount of
//!    /dev/null, directories by an empty read-only tmpfs, read-only paths
//!    bound onto themselves and remounted read-only. versus' rootfs mounts
//!    no /sys, so /sys/firmware needs no mask and there is no /sys to make
//!    read-only.
//! 2. After every mount and the cgroup namespace ([`Hardening::lock`]):
//!    `no_new_privs`, then the seccomp filter ([`DENIED`], compiled by the
//!    parent when the platform is created ([`compile_filter`]: a binary
//!    search over the numbers, the argument rules compiled by
//!    `seccompiler`); the child only installs it), then the capability sets: the bounding set drops all
//!    but the 14 capabilities Docker and runc grant ([`DEFAULT_CAPS`]), the
//!    ambient set is cleared, and effective and permitted become those 14.
//!    The inheritable set is left empty, as runc (since 1.1.2) and Docker
//!    (since 20.10.14) leave it after CVE-2022-24769 and CVE-2022-29162.
//!    Capabilities go last: installing the filter and dropping the bounding
//!    set need the privileges they take away.
//!
//! execve stays allowed by every filter, and the workload, exec'd as uid 0
//! of its namespace, gets its capabilities from the bounding set: the 14.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::str::FromStr;

use nix::errno::Errno;
use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use crate::error::{LaunchError, Result};
use crate::platform::spawn::Failure;
use crate::platform::syscall::Syscall;

/// How much the container launcher hardens its containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// What runc and Docker apply by default: 14 capabilities, a seccomp
    /// filter, no_new_privs, masked and read-only /proc paths.
    #[default]
    Default,
    /// Namespaces, cgroup and a read-only rootfs only: the workload keeps
    /// every capability of root and can make every system call.
    Privileged,
}

impl Profile {
    pub const NAMES: [&'static str; 2] = ["default", "privileged"];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Privileged => "privileged",
        }
    }

    /// One line for the platform notes and the report.
    pub fn describe(self) -> &'static str {
        match self {
            Profile::Default => {
                "profile default (as runc and Docker run a container by default): 14 capabilities (Docker's default set; bounding, effective, permitted; inheritable and ambient empty), a seccomp filter denying what Docker's default profile denies (EPERM), no_new_privs, runc's masked and read-only /proc paths; boot includes applying them (phases rootfs and hardening)"
            }
            Profile::Privileged => {
                "profile privileged (--container-profile privileged): namespaces, cgroup and a read-only rootfs only; the workload keeps every capability of root, no seccomp filter, no masked paths"
            }
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Profile, String> {
        match s {
            "default" => Ok(Profile::Default),
            "privileged" => Ok(Profile::Privileged),
            _ => Err(format!("unknown container profile `{s}`; expected one of {}", Profile::NAMES.join(", "))),
        }
    }
}

/// Docker's and runc's default capabilities, by number.
pub const DEFAULT_CAPS: [(u32, &str); 14] = [
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (13, "CAP_NET_RAW"),
    (18, "CAP_SYS_CHROOT"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

/// The default set as a mask (bit n = capability n): `a80425fb`, the
/// CapEff Docker's containers show.
pub fn default_caps_mask() -> u64 {
    DEFAULT_CAPS.iter().fold(0, |m, (c, _)| m | 1 << c)
}

/// runc's masked paths (files get /dev/null, directories an empty
/// read-only tmpfs).
pub const MASKED: [&str; 9] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// runc's read-only paths.
pub const READ_ONLY: [&str; 6] = ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What the default seccomp filter denies, with EPERM: what Docker's
/// default profile (moby profiles/seccomp/default.json) denies to a
/// container without extra capabilities. Docker's profile is an allow list
/// of about 350 calls; this is the same policy written as the list of what
/// it leaves out that matters, since the rest is allowed either way. Each
/// entry is the system call and why it is denied; `Arg` entries are denied
/// only with the arguments named.
pub const DENIED: &[(&str, Deny, &str)] = &[
    // Kernel code and the machine.
    ("kexec_load", Deny::Always, "load a new kernel"),
    ("kexec_file_load", Deny::Always, "load a new kernel"),
    ("init_module", Deny::Always, "load a kernel module"),
    ("finit_module", Deny::Always, "load a kernel module"),
    ("delete_module", Deny::Always, "unload a kernel module"),
    ("create_module", Deny::Always, "obsolete module call"),
    ("get_kernel_syms", Deny::Always, "obsolete module call"),
    ("query_module", Deny::Always, "obsolete module call"),
    ("reboot", Deny::Always, "reboot the host"),
    ("swapon", Deny::Always, "change the host's swap"),
    ("swapoff", Deny::Always, "change the host's swap"),
    ("acct", Deny::Always, "switch process accounting"),
    ("iopl", Deny::Always, "raw I/O port access"),
    ("ioperm", Deny::Always, "raw I/O port access"),
    ("vhangup", Deny::Always, "hang up the terminal"),
    ("nfsservctl", Deny::Always, "obsolete NFS daemon call"),
    ("quotactl", Deny::Always, "change disk quotas"),
    ("quotactl_fd", Deny::Always, "change disk quotas"),
    ("lookup_dcookie", Deny::Always, "kernel profiling"),
    ("uselib", Deny::Always, "obsolete shared-library loading"),
    ("ustat", Deny::Always, "obsolete filesystem statistics"),
    ("sysfs", Deny::Always, "obsolete filesystem-type query"),
    ("_sysctl", Deny::Always, "obsolete sysctl interface"),
    // Kernel interfaces with a long record of exploits.
    ("bpf", Deny::Always, "load BPF programs into the kernel"),
    ("perf_event_open", Deny::Always, "performance counters: kernel profiling and side channels"),
    ("userfaultfd", Deny::Always, "stalls kernel page faults, a building block of kernel exploits"),
    ("io_uring_setup", Deny::Always, "io_uring (denied by Docker since 25.0)"),
    ("io_uring_enter", Deny::Always, "io_uring (denied by Docker since 25.0)"),
    ("io_uring_register", Deny::Always, "io_uring (denied by Docker since 25.0)"),
    ("fanotify_init", Deny::Always, "filesystem-wide event monitoring"),
    ("syslog", Deny::Always, "read or clear the kernel log"),
    // The kernel keyring is not namespaced.
    ("keyctl", Deny::Always, "the kernel keyring is not namespaced"),
    ("add_key", Deny::Always, "the kernel keyring is not namespaced"),
    ("request_key", Deny::Always, "the kernel keyring is not namespaced"),
    // The clocks are host-wide.
    ("settimeofday", Deny::Always, "set the host's clock"),
    ("clock_settime", Deny::Always, "set the host's clock"),
    ("clock_adjtime", Deny::Always, "adjust the host's clock"),
    ("adjtimex", Deny::Always, "adjust the host's clock"),
    // Other processes' memory.
    ("ptrace", Deny::Always, "trace other processes"),
    ("process_vm_readv", Deny::Always, "read another process's memory"),
    ("process_vm_writev", Deny::Always, "write another process's memory"),
    ("kcmp", Deny::Always, "compare kernel objects of other processes"),
    // Files by handle, bypassing the mount namespace (the "shocker" escape).
    ("open_by_handle_at", Deny::Always, "open files by handle, outside the container's mounts"),
    // Mounts, once the set-up has made them.
    ("mount", Deny::Always, "change mounts after the set-up"),
    ("umount2", Deny::Always, "change mounts after the set-up"),
    ("pivot_root", Deny::Always, "change the root"),
    ("fsopen", Deny::Always, "new mount API"),
    ("fsconfig", Deny::Always, "new mount API"),
    ("fsmount", Deny::Always, "new mount API"),
    ("fspick", Deny::Always, "new mount API"),
    ("move_mount", Deny::Always, "new mount API"),
    ("open_tree", Deny::Always, "new mount API"),
    ("mount_setattr", Deny::Always, "new mount API"),
    // Namespaces: none may be entered or created.
    ("setns", Deny::Always, "enter another namespace"),
    ("unshare", Deny::Arg(ArgRule::NamespaceFlags { time: true }), "create namespaces (unshare of files or fs stays allowed)"),
    ("clone", Deny::Arg(ArgRule::NamespaceFlags { time: false }), "create namespaces (fork and threads stay allowed)"),
    ("clone3", Deny::Enosys, "its flags live in memory the filter cannot read: ENOSYS makes the C library fall back to clone, which the filter checks"),
    // Execution domains other than Linux's.
    ("personality", Deny::Arg(ArgRule::Personality), "execution domains other than Linux (0, 8, 0x20000, 0x20008, and the 0xffffffff query stay allowed)"),
];

/// When a [`DENIED`] call is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// Always, with EPERM.
    Always,
    /// With EPERM when the arguments match.
    Arg(ArgRule),
    /// Always, with ENOSYS (so that callers fall back to another call).
    Enosys,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRule {
    /// Argument 0 has a CLONE_NEW* flag (CLONE_NEWTIME too where it is a
    /// flag: for clone its bit is part of the exit signal).
    NamespaceFlags { time: bool },
    /// Argument 0 is not one of the personalities Docker allows.
    Personality,
}

/// x86_64 system call numbers of [`DENIED`] (x86_64 is the only
/// architecture versus builds for: its VMM is x86_64 code).
fn number(name: &str) -> Option<i64> {
    Some(match name {
        "kexec_load" => libc::SYS_kexec_load,
        "kexec_file_load" => libc::SYS_kexec_file_load,
        "init_module" => libc::SYS_init_module,
        "finit_module" => libc::SYS_finit_module,
        "delete_module" => libc::SYS_delete_module,
        // Removed from the kernel (ENOSYS), numbers kept by the x86_64 table.
        "create_module" => 174,
        "get_kernel_syms" => 177,
        "query_module" => 178,
        "reboot" => libc::SYS_reboot,
        "swapon" => libc::SYS_swapon,
        "swapoff" => libc::SYS_swapoff,
        "acct" => libc::SYS_acct,
        "iopl" => libc::SYS_iopl,
        "ioperm" => libc::SYS_ioperm,
        "vhangup" => libc::SYS_vhangup,
        "nfsservctl" => libc::SYS_nfsservctl,
        "quotactl" => libc::SYS_quotactl,
        "quotactl_fd" => libc::SYS_quotactl_fd,
        "lookup_dcookie" => libc::SYS_lookup_dcookie,
        "uselib" => libc::SYS_uselib,
        "ustat" => libc::SYS_ustat,
        "sysfs" => libc::SYS_sysfs,
        "_sysctl" => libc::SYS__sysctl,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "userfaultfd" => libc::SYS_userfaultfd,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "io_uring_enter" => libc::SYS_io_uring_enter,
        "io_uring_register" => libc::SYS_io_uring_register,
        "fanotify_init" => libc::SYS_fanotify_init,
        "syslog" => libc::SYS_syslog,
        "keyctl" => libc::SYS_keyctl,
        "add_key" => libc::SYS_add_key,
        "request_key" => libc::SYS_request_key,
        "settimeofday" => libc::SYS_settimeofday,
        "clock_settime" => libc::SYS_clock_settime,
        "clock_adjtime" => libc::SYS_clock_adjtime,
        "adjtimex" => libc::SYS_adjtimex,
        "ptrace" => libc::SYS_ptrace,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "process_vm_writev" => libc::SYS_process_vm_writev,
        "kcmp" => libc::SYS_kcmp,
        "open_by_handle_at" => libc::SYS_open_by_handle_at,
        "mount" => libc::SYS_mount,
        "umount2" => libc::SYS_umount2,
        "pivot_root" => libc::SYS_pivot_root,
        "fsopen" => libc::SYS_fsopen,
        "fsconfig" => libc::SYS_fsconfig,
        "fsmount" => libc::SYS_fsmount,
        "fspick" => libc::SYS_fspick,
        "move_mount" => libc::SYS_move_mount,
        "open_tree" => libc::SYS_open_tree,
        "mount_setattr" => libc::SYS_mount_setattr,
        "setns" => libc::SYS_setns,
        "unshare" => libc::SYS_unshare,
        "clone" => libc::SYS_clone,
        "clone3" => libc::SYS_clone3,
        "personality" => libc::SYS_personality,
        _ => return None,
    })
}

/// The x32 ABI reaches the same kernel entry points under the x86_64
/// number with this bit set (and a few under numbers of their own, below):
/// where the kernel runs x32 system calls, the filter denies those numbers
/// too.
const X32: i64 = 0x4000_0000;

/// Whether this kernel runs x32 system calls (CONFIG_X86_X32_ABI, and not
/// disabled at boot). Most do not: an x32 call then fails with ENOSYS
/// before any filter could matter, and the filter leaves the x32 numbers
/// out (which halves it: installing a filter costs time in proportion to
/// its length, paid by every launch). Any answer but ENOSYS keeps them.
pub fn x32_enabled() -> bool {
    // SAFETY: the x32 getpid: no arguments, no memory; on a kernel without
    // x32 it returns ENOSYS.
    let r = unsafe { libc::syscall(X32 | libc::SYS_getpid) };
    !(r == -1 && Errno::last() == Errno::ENOSYS)
}

/// x32's own numbers for calls of [`DENIED`] (arch/x86/entry/syscalls/syscall_64.tbl).
fn x32_number(name: &str) -> Option<i64> {
    match name {
        "ptrace" => Some(X32 | 521),
        "kexec_load" => Some(X32 | 528),
        "process_vm_readv" => Some(X32 | 539),
        "process_vm_writev" => Some(X32 | 540),
        _ => None,
    }
}

/// CLONE_NEW* flags of clone(2) and unshare(2).
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];
const CLONE_NEWTIME: u64 = 0x80;

/// Personalities Docker's profile allows: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONALITIES: [u64; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// When an argument rule's call is denied: when one of its rules matches,
/// or unless one matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sense {
    DenyWhen,
    AllowWhen,
}

/// The argument rules of `rule`, compiled by seccompiler (the rules of a
/// call are or-ed, the conditions of a rule and-ed), and their sense.
fn rules(rule: ArgRule) -> std::result::Result<(Vec<SeccompRule>, Sense), seccompiler::BackendError> {
    match rule {
        ArgRule::NamespaceFlags { time } => {
            // Allowed when no CLONE_NEW* flag is set: one masked compare
            // instead of one rule per flag. The low word is the whole
            // story: clone(2) keeps only the low 32 bits of its flags
            // (kernel_clone_args), and unshare(2) rejects any higher bit
            // with EINVAL before it creates anything.
            let mask = NAMESPACE_FLAGS.iter().copied().chain(time.then_some(CLONE_NEWTIME)).fold(0, |m, f| m | f);
            Ok((vec![SeccompRule::new(vec![SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::MaskedEq(mask), 0)?])?], Sense::AllowWhen))
        }
        ArgRule::Personality => {
            // Denied when none of the allowed values.
            let conds =
                PERSONALITIES.iter().map(|p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *p)).collect::<std::result::Result<_, _>>()?;
            Ok((vec![SeccompRule::new(conds)?], Sense::DenyWhen))
        }
    }
}

/// One denied system call number of the filter: what it returns, and the
/// argument rules that decide (none: always denied).
struct Denial {
    nr: u32,
    action: u32,
    rules: Vec<SeccompRule>,
    sense: Sense,
}

/// [`DENIED`] as the filter's entries, sorted by number; with `x32`, the
/// x32 numbers of the denied calls too.
fn denials(x32: bool) -> Result<Vec<Denial>> {
    let mut out = Vec::new();
    for (name, deny, _) in DENIED {
        let nr = number(name).ok_or_else(|| filter_error(name, &"no system call number on this architecture"))?;
        let (action, (chain, sense)) = match deny {
            Deny::Always => (SeccompAction::Errno(libc::EPERM as u32), (Vec::new(), Sense::DenyWhen)),
            Deny::Arg(r) => (SeccompAction::Errno(libc::EPERM as u32), rules(*r).map_err(|e| filter_error(name, &e))?),
            Deny::Enosys => (SeccompAction::Errno(libc::ENOSYS as u32), (Vec::new(), Sense::DenyWhen)),
        };
        let aliases = [Some(nr | X32), x32_number(name)].into_iter().flatten().filter(|_| x32);
        for n in std::iter::once(nr).chain(aliases) {
            let nr = u32::try_from(n).map_err(|e| filter_error(name, &e))?;
            out.push(Denial { nr, action: action.clone().into(), rules: chain.clone(), sense });
        }
    }
    out.sort_by_key(|d| d.nr);
    Ok(out)
}

fn filter_error(what: &str, e: &dyn fmt::Display) -> LaunchError {
    LaunchError::Unsupported(format!("cannot build the container's seccomp filter ({what}: {e}); use --container-profile privileged"))
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const AUDIT_ARCH_X86_64: u32 = crate::measure::seccomp::AUDIT_ARCH_X86_64;
/// Entries a leaf of the search compares one by one.
const LEAF: usize = 4;

fn insn(code: u16, k: u32, jt: u8, jf: u8) -> seccompiler::sock_filter {
    seccompiler::sock_filter { code, jt, jf, k }
}

/// `len` instructions forward, for a conditional jump's offset (`None`:
/// too far for its 8 bits; the caller jumps with a JA instead).
fn near(len: usize) -> Option<u8> {
    u8::try_from(len).ok()
}

/// The code for one denied number, reached with the number matched: its
/// action, or its rules (seccompiler's compilation of each rule, each
/// followed by what a match returns) and what no match returns.
fn denial_body(d: &Denial) -> BpfProgram {
    if d.rules.is_empty() {
        return vec![insn(RET_K, d.action, 0, 0)];
    }
    let (on_match, otherwise) = match d.sense {
        Sense::DenyWhen => (d.action, libc::SECCOMP_RET_ALLOW),
        Sense::AllowWhen => (libc::SECCOMP_RET_ALLOW, d.action),
    };
    let mut out = Vec::new();
    for rule in d.rules.iter().cloned() {
        out.extend(BpfProgram::from(rule));
        out.push(insn(RET_K, on_match, 0, 0));
    }
    out.push(insn(RET_K, otherwise, 0, 0));
    out
}

/// A binary search over `ds` (sorted) with the number in A: JGE splits
/// down to leaves of [`LEAF`] numbers compared with JEQ. Every path ends
/// in a return.
fn search(ds: &[Denial]) -> BpfProgram {
    let mut out = Vec::new();
    if ds.len() <= LEAF {
        for d in ds {
            let body = denial_body(d);
            match near(body.len()) {
                Some(skip) => out.push(insn(JEQ_K, d.nr, 0, skip)),
                None => out.extend([insn(JEQ_K, d.nr, 1, 0), insn(JA, body.len() as u32, 0, 0)]),
            }
            out.extend(body);
        }
        out.push(insn(RET_K, libc::SECCOMP_RET_ALLOW, 0, 0));
        return out;
    }
    let (low, high) = ds.split_at(ds.len() / 2);
    let left = search(low);
    // A >= the first number of `high`: past the lower half.
    match near(left.len()) {
        Some(skip) => out.push(insn(JGE_K, high[0].nr, skip, 0)),
        None => out.extend([insn(JGE_K, high[0].nr, 0, 1), insn(JA, left.len() as u32, 0, 0)]),
    }
    out.extend(left);
    out.extend(search(high));
    out
}

/// Compiles [`DENIED`] into one classic-BPF program: the architecture
/// check (another architecture kills the process, as seccompiler's
/// filters do), then a binary search over the denied numbers, each with
/// its action (EPERM, or ENOSYS for clone3) and its argument rules, which
/// seccompiler compiles. Every other call is allowed. With `x32`, the x32
/// numbers of the denied calls are denied too.
///
/// Why not seccompiler's own filter: it compares the number against each
/// denied call in turn, and installing a filter costs the kernel a walk of
/// it for every system call number (the action cache of Linux 5.11+) plus
/// its JIT, paid by every launch: 429 instructions walked linearly, and a
/// second filter for the ENOSYS action, took 0.39 ms of a 1.86 ms boot
/// here (docs/design.md, "The container's seccomp filter").
pub fn compile_filter(x32: bool) -> Result<BpfProgram> {
    let ds = denials(x32)?;
    let mut out = vec![
        insn(LD_W_ABS, 4, 0, 0), // seccomp_data.arch
        insn(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        insn(RET_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        insn(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    out.extend(search(&ds));
    if out.len() > libc::BPF_MAXINSNS as usize {
        return Err(filter_error("filter", &format!("{} instructions, more than the kernel's {}", out.len(), libc::BPF_MAXINSNS)));
    }
    Ok(out)
}

/// What a path of the container's /proc becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A file masked by /dev/null.
    MaskFile,
    /// A directory masked by an empty read-only tmpfs.
    MaskDir,
    /// Bound onto itself and remounted read-only.
    ReadOnly,
}

/// One masked or read-only path, its mount target under the rootfs.
#[derive(Debug, Clone)]
pub struct ProcPath {
    /// The path inside the container (`/proc/kcore`).
    pub path: &'static str,
    /// The mount target before pivot_root: the rootfs's copy of `path`.
    pub target: CString,
    pub kind: PathKind,
}

/// A profile ready to apply: its mounts, filters and capabilities, all
/// prepared by the parent once per platform.
pub struct Hardening {
    pub profile: Profile,
    proc_paths: Vec<ProcPath>,
    /// The seccomp filter ([`compile_filter`]); empty for `privileged`.
    filter: BpfProgram,
    /// Capabilities kept (bit n = capability n).
    keep: u64,
    last_cap: u32,
}

/// The steps of [`Hardening::lock`], for error reports.
pub const LOCK_STEPS: [&str; 5] =
    ["set no_new_privs", "install the seccomp filter", "drop a bounding capability", "clear the ambient capabilities", "set the capability sets"];

impl Hardening {
    /// Prepares `profile` for containers whose rootfs is `rootfs`. The
    /// masked and read-only paths are those the host's /proc has (the
    /// container's /proc is a procfs of the same kernel), each with its
    /// kind; paths outside /proc are left out, since the rootfs mounts
    /// nothing else.
    pub fn new(profile: Profile, rootfs: &Path) -> Result<Hardening> {
        if profile == Profile::Privileged {
            return Ok(Hardening { profile, proc_paths: Vec::new(), filter: Vec::new(), keep: u64::MAX, last_cap: 0 });
        }
        let mut proc_paths = Vec::new();
        let paths = MASKED.iter().map(|p| (*p, true)).chain(READ_ONLY.iter().map(|p| (*p, false)));
        for (path, mask) in paths.filter(|(p, _)| p.starts_with("/proc/")) {
            let Ok(meta) = std::fs::metadata(path) else { continue };
            let kind = match (mask, meta.is_dir()) {
                (true, true) => PathKind::MaskDir,
                (true, false) => PathKind::MaskFile,
                (false, _) => PathKind::ReadOnly,
            };
            let target = rootfs.join(path.trim_start_matches('/'));
            let target =
                CString::new(target.as_os_str().as_bytes()).map_err(|_| LaunchError::Unsupported(format!("{} contains a NUL byte", target.display())))?;
            proc_paths.push(ProcPath { path, target, kind });
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63).min(63);
        Ok(Hardening { profile, proc_paths, filter: compile_filter(x32_enabled())?, keep: default_caps_mask(), last_cap })
    }

    /// The masked and read-only paths, in the order they are mounted.
    pub fn proc_paths(&self) -> &[ProcPath] {
        &self.proc_paths
    }

    /// The child's last steps before its stdio and execve: no_new_privs,
    /// the seccomp filter, the capability sets. Nothing for the
    /// privileged profile. Allocation-free with the real system calls.
    pub fn lock(&self, sys: &dyn Syscall) -> std::result::Result<(), Failure> {
        if self.profile == Profile::Privileged {
            return Ok(());
        }
        let fail = |i: usize, errno: Errno| Failure { step: LOCK_STEPS[i], errno, detail: 0 };
        sys.set_no_new_privs().map_err(|e| fail(0, e))?;
        // The kernel copies the program; `self.filter` outlives the call.
        // compile_filter keeps it under BPF_MAXINSNS, so its length fits.
        let prog = libc::sock_fprog { len: self.filter.len() as u16, filter: self.filter.as_ptr() as *mut libc::sock_filter };
        sys.seccomp_filter(&prog).map_err(|e| fail(1, e))?;
        for cap in (0..=self.last_cap).filter(|c| self.keep & (1 << c) == 0) {
            match sys.drop_bounding_cap(cap) {
                // Above what this kernel knows: nothing to drop.
                Err(Errno::EINVAL) => {}
                r => r.map_err(|e| Failure { detail: cap as u64, ..fail(2, e) })?,
            }
        }
        match sys.clear_ambient_caps() {
            // Kernels before 4.3 have no ambient set.
            Err(Errno::EINVAL) => {}
            r => r.map_err(|e| fail(3, e))?,
        }
        sys.capset(self.keep, self.keep, 0).map_err(|e| fail(4, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::seccomp::{evaluate, Insn};
    use crate::platform::syscall::recording::RecordingSyscall;
    use seccompiler::{SeccompFilter, TargetArch};
    use std::collections::BTreeMap;

    #[test]
    fn the_default_capabilities_are_dockers() {
        assert_eq!(default_caps_mask(), 0xa80425fb);
        assert_eq!(default_caps_mask().count_ones(), 14);
        assert_eq!(default_caps_mask() & (1 << 21), 0, "no CAP_SYS_ADMIN");
        assert_eq!(default_caps_mask() & (1 << 16), 0, "no CAP_SYS_MODULE");
        assert_eq!(default_caps_mask() & (1 << 17), 0, "no CAP_SYS_RAWIO");
    }

    #[test]
    fn profiles_parse_and_name_themselves() {
        assert_eq!("default".parse::<Profile>(), Ok(Profile::Default));
        assert_eq!("privileged".parse::<Profile>().map(|p| p.to_string()), Ok("privileged".into()));
        assert!("docker".parse::<Profile>().unwrap_err().contains("default, privileged"));
        assert_eq!(Profile::default(), Profile::Default);
    }

    #[test]
    fn every_denied_call_has_a_number_and_the_filter_compiles() {
        for (name, _, why) in DENIED {
            assert!(number(name).is_some(), "{name}");
            assert!(!why.is_empty());
        }
        let f = compile_filter(false).unwrap();
        // The whole policy in under 200 instructions (seccompiler's linear
        // filters took 429 + 10): every launch installs it.
        assert!(!f.is_empty() && f.len() < 200, "{} instructions", f.len());
        let with_x32 = compile_filter(true).unwrap();
        assert!(with_x32.len() > f.len() * 3 / 2, "x32 numbers denied too: {} vs {} instructions", with_x32.len(), f.len());
        for must in ["init_module", "mount", "ptrace", "bpf", "keyctl", "kexec_load", "setns", "open_by_handle_at"] {
            assert!(DENIED.iter().any(|(n, _, _)| *n == must), "{must} must be denied");
        }
        for allowed in ["execve", "execveat", "write", "dup2", "capset", "prctl", "seccomp", "rt_sigprocmask", "exit_group"] {
            assert!(DENIED.iter().all(|(n, _, _)| *n != allowed), "{allowed} must stay allowed: the child calls it after the filter");
        }
    }

    fn to_insns(p: &[seccompiler::sock_filter]) -> Vec<Insn> {
        p.iter().map(|i| Insn { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect()
    }

    /// The same policy as seccompiler compiles it on its own: an EPERM
    /// filter and an ENOSYS filter, each comparing the number with every
    /// denied call in turn (the filters versus installed before).
    /// Its argument rules are written out as deny rules, one per
    /// namespace flag, independently of [`rules`].
    fn seccompilers_filters(x32: bool) -> Vec<Vec<Insn>> {
        let deny_rules = |r: ArgRule| -> Vec<SeccompRule> {
            let cond = |op, v| SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, v).unwrap();
            match r {
                ArgRule::NamespaceFlags { time } => NAMESPACE_FLAGS
                    .iter()
                    .copied()
                    .chain(time.then_some(CLONE_NEWTIME))
                    .map(|f| SeccompRule::new(vec![cond(SeccompCmpOp::MaskedEq(f), f)]).unwrap())
                    .collect(),
                ArgRule::Personality => vec![SeccompRule::new(PERSONALITIES.iter().map(|p| cond(SeccompCmpOp::Ne, *p)).collect()).unwrap()],
            }
        };
        let (mut eperm, mut enosys) = (BTreeMap::new(), BTreeMap::new());
        for (name, deny, _) in DENIED {
            let nr = number(name).unwrap();
            let (map, chain) = match deny {
                Deny::Always => (&mut eperm, Vec::new()),
                Deny::Arg(r) => (&mut eperm, deny_rules(*r)),
                Deny::Enosys => (&mut enosys, Vec::new()),
            };
            let aliases = [Some(nr | X32), x32_number(name)].into_iter().flatten().filter(|_| x32);
            for n in std::iter::once(nr).chain(aliases) {
                map.insert(n, chain.clone());
            }
        }
        [(eperm, libc::EPERM), (enosys, libc::ENOSYS)]
            .into_iter()
            .map(|(map, errno)| {
                let f = SeccompFilter::new(map, SeccompAction::Allow, SeccompAction::Errno(errno as u32), TargetArch::x86_64).unwrap();
                to_insns(&BpfProgram::try_from(f).unwrap())
            })
            .collect()
    }

    /// What the kernel returns for a call through several filters: the
    /// action of highest precedence (lowest action value), the newest
    /// filter's on a tie.
    fn through(filters: &[Vec<Insn>], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let rets: Vec<u32> = filters.iter().map(|f| evaluate(f, nr, arch, args).expect("a well-formed filter")).collect();
        rets.iter().rev().copied().min_by_key(|r| (r & 0xFFFF_0000) as i32).unwrap()
    }

    #[test]
    fn the_search_filter_decides_every_call_as_seccompilers_filters_do() {
        let mut args: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6], [0xffff_ffff, 0, 0, 0, 0, 0], [1 << 32, 0, 0, 0, 0, 0]];
        for f in NAMESPACE_FLAGS.iter().chain([CLONE_NEWTIME].iter()) {
            args.push([*f, 0, 0, 0, 0, 0]);
            args.push([*f | libc::SIGCHLD as u64 | libc::CLONE_VM as u64, 0, 0, 0, 0, 0]);
        }
        for p in PERSONALITIES.iter().chain([1, 0x20001, 0x0400_0000].iter()) {
            args.push([*p, 0, 0, 0, 0, 0]);
        }
        // fork, vfork and pthread_create's flags: allowed.
        args.push([(libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_SIGHAND | libc::CLONE_THREAD) as u64, 1, 2, 3, 4, 5]);
        for x32 in [false, true] {
            let tree = to_insns(&compile_filter(x32).unwrap());
            let linear = seccompilers_filters(x32);
            let numbers = (0..600u32).chain((0..600).map(|n| n | X32 as u32)).chain([u32::MAX, 0x7fff_ffff]);
            let mut denied = 0;
            for nr in numbers {
                for a in &args {
                    for arch in [AUDIT_ARCH_X86_64, 0x4000_0003] {
                        let (got, want) = (through(std::slice::from_ref(&tree), nr, arch, *a), through(&linear, nr, arch, *a));
                        assert_eq!(got, want, "x32 {x32}: call {nr:#x} arch {arch:#x} args {a:x?}");
                        denied += usize::from(arch == AUDIT_ARCH_X86_64 && got != libc::SECCOMP_RET_ALLOW);
                    }
                }
            }
            assert!(denied > DENIED.len() * 4, "the comparison saw denials: {denied}");
        }
        // Spot checks against the policy itself.
        let tree = to_insns(&compile_filter(false).unwrap());
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let run = |nr: i64, a0: u64| evaluate(&tree, nr as u32, AUDIT_ARCH_X86_64, [a0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(run(libc::SYS_init_module, 0), eperm);
        assert_eq!(run(libc::SYS_clone3, 0), libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(run(libc::SYS_clone, libc::CLONE_NEWNS as u64), eperm);
        assert_eq!(run(libc::SYS_clone, libc::SIGCHLD as u64), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_unshare, CLONE_NEWTIME), eperm);
        assert_eq!(run(libc::SYS_unshare, libc::CLONE_FILES as u64), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_personality, 0xffff_ffff), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(libc::SYS_personality, 1), eperm);
        assert_eq!(run(libc::SYS_write, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(evaluate(&tree, 0, 0x4000_0003, [0; 6]), Some(libc::SECCOMP_RET_KILL_PROCESS));
    }

    #[test]
    fn far_jumps_go_through_ja() {
        // Bodies longer than a conditional jump's 8 bits reach: every path
        // still returns what the entry says.
        let big = |nr: u32| Denial {
            nr,
            action: 0x0005_0001,
            rules: (0..40).map(|v| SeccompRule::new(vec![SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, v).unwrap()]).unwrap()).collect(),
            sense: Sense::DenyWhen,
        };
        let ds: Vec<Denial> = (0..12).map(|i| big(i * 10)).collect();
        let mut prog = vec![insn(LD_W_ABS, 0, 0, 0)];
        prog.extend(search(&ds));
        assert!(prog.len() > 3 * 256, "{} instructions", prog.len());
        let prog = to_insns(&prog);
        for nr in 0..130 {
            for a0 in [0u64, 7, 39, 40, 1 << 33] {
                let want = if nr % 10 == 0 && nr < 120 && a0 < 40 { 0x0005_0001 } else { libc::SECCOMP_RET_ALLOW };
                assert_eq!(evaluate(&prog, nr, AUDIT_ARCH_X86_64, [a0, 0, 0, 0, 0, 0]), Some(want), "call {nr} arg {a0}");
            }
        }
    }

    #[test]
    fn lock_order_is_nnp_filters_then_capabilities() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hardening::new(Profile::Default, dir.path()).unwrap();
        let sys = RecordingSyscall::default();
        h.lock(&sys).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], "no_new_privs");
        assert!(calls[1].starts_with("seccomp ") && !calls[2].starts_with("seccomp "), "one filter: {calls:?}");
        let drops: Vec<u32> = calls.iter().filter_map(|c| c.strip_prefix("capbset_drop ")).map(|c| c.parse().unwrap()).collect();
        assert!(drops.contains(&21) && drops.contains(&16), "CAP_SYS_ADMIN and CAP_SYS_MODULE leave the bounding set");
        assert!(DEFAULT_CAPS.iter().all(|(c, _)| !drops.contains(c)), "the 14 stay");
        assert_eq!(calls[calls.len() - 2], "ambient_clear");
        assert_eq!(calls.last().unwrap(), "capset eff=a80425fb prm=a80425fb inh=0");
        // The privileged profile does nothing.
        let p = Hardening::new(Profile::Privileged, dir.path()).unwrap();
        let sys = RecordingSyscall::default();
        p.lock(&sys).unwrap();
        assert!(sys.calls().is_empty());
        assert!(p.proc_paths().is_empty());
    }

    #[test]
    fn masked_and_read_only_paths_follow_the_host_proc() {
        let h = Hardening::new(Profile::Default, Path::new("/img/rootfs")).unwrap();
        for p in h.proc_paths() {
            assert_eq!(p.target.to_str().unwrap(), format!("/img/rootfs{}", p.path));
            assert!(Path::new(p.path).exists(), "only what this kernel's /proc has: {}", p.path);
            let want = match (MASKED.contains(&p.path), Path::new(p.path).is_dir()) {
                (true, true) => PathKind::MaskDir,
                (true, false) => PathKind::MaskFile,
                (false, _) => PathKind::ReadOnly,
            };
            assert_eq!(p.kind, want, "{}", p.path);
        }
        let sys = h.proc_paths().iter().find(|p| p.path == "/proc/sys").unwrap();
        assert_eq!(sys.kind, PathKind::ReadOnly);
        assert!(h.proc_paths().iter().any(|p| p.kind == PathKind::MaskFile), "every kernel has one of the masked files (/proc/keys, /proc/timer_list, ...)");
        assert!(h.proc_paths().iter().all(|p| p.path.starts_with("/proc/")), "no /sys in versus' rootfs");
    }

    #[test]
    fn a_failing_lock_step_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let h = Hardening::new(Profile::Default, dir.path()).unwrap();
        let sys = RecordingSyscall { fail_on: Some("seccomp"), ..Default::default() };
        let f = h.lock(&sys).unwrap_err();
        assert_eq!((f.step, f.errno), ("install the seccomp filter", Errno::EPERM));
        assert!(sys.calls().iter().all(|c| !c.starts_with("capset")), "nothing after the failed step");
    }
}
