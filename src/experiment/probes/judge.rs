//! Judging a platform's probe observations against the host's facts: one
//! row per catalogue probe ([`classify`]), each judged by the function of
//! its family (`ns.*`, `kernel.*`, `proc.*`, `fs.*`, `net.*`, `priv.*`,
//! `kif.*`, `dev.*`). Kernel-relative exposures of a workload with a kernel
//! of its own become `isolated` (the kernel objects are its own).

use std::collections::{BTreeMap, BTreeSet};

use super::catalogue::{def, ProbeDef, Scope, CATALOGUE};
use super::host_facts::HostFacts;
use super::wire::{dec, errno_name, fields, num};
use crate::model::{Outcome, ProbeLine, ProbeRow};
use crate::platform::Guest;

/// What else the host knows about one probe run.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The port (and abstract socket suffix) versus listened on.
    pub port: u16,
    /// The host's hostname after the run, when it differs from before.
    pub hostname_changed_to: Option<String>,
}

/// Whether a catalogue probe applies to a guest.
pub fn applies(def: &ProbeDef, guest: Guest) -> bool {
    match def.scope {
        Scope::All => true,
        Scope::Linux => guest.runs_linux_probes(),
        Scope::Bare => guest == Guest::NoKernel,
    }
}

type Verdict = (Outcome, String);

/// Classifies the observations of one platform's probe run. One row per
/// catalogue probe (in catalogue order), then rows for ids the catalogue
/// does not know (kept, category `other`). A probe the platform should have
/// answered but did not is `error`; one its guest cannot run is
/// `not_applicable`.
pub fn classify(platform: &str, guest: Guest, lines: &[ProbeLine], host: &HostFacts, ctx: &Context) -> Vec<ProbeRow> {
    let by_id: BTreeMap<&str, &ProbeLine> = lines.iter().map(|l| (l.id.as_str(), l)).collect();
    let obs = |id: &str| by_id.get(id).filter(|l| l.result == "observed").map(|l| fields(&l.evidence));
    let kernel_shared = by_id.get("kernel.shared").map(|l| {
        if l.result == "observed" {
            kernel_shared(&fields(&l.evidence), host).0 == Outcome::Exposed
        } else {
            l.result == "exposed"
        }
    });
    let ns_shared = |kind: &str| obs(&format!("ns.{kind}")).and_then(|f| num(&f, "inode")).map(|i| Some(&i) == host.ns.get(kind));
    let shared = Shared { user: ns_shared("user"), uts: ns_shared("uts") };
    let mut rows = Vec::new();
    for d in CATALOGUE {
        let row = |result: Outcome, evidence: String| ProbeRow {
            run_id: String::new(),
            platform: platform.to_string(),
            probe: d.id.to_string(),
            category: d.category.to_string(),
            result,
            evidence,
        };
        if !applies(d, guest) {
            let why = match guest {
                Guest::NoKernel => "kernel-less guest: there is no kernel interface inside to probe; its only way out is the VMM's exits",
                _ => "only the kernel-less guest's VMM answers this probe",
            };
            rows.push(row(Outcome::NotApplicable, why.into()));
            continue;
        }
        let Some(line) = by_id.get(d.id) else {
            rows.push(row(Outcome::Error, format!("{platform} did not report this probe")));
            continue;
        };
        if line.result != "observed" {
            match Outcome::parse(&line.result) {
                Some(o) => rows.push(row(o, line.evidence.clone())),
                None => rows.push(row(Outcome::Error, format!("unknown result `{}`: {}", line.result, line.evidence))),
            }
            continue;
        }
        let f = fields(&line.evidence);
        let (mut result, mut evidence) = judge(d.id, &Obs { f: &f, h: host, ctx, shared });
        if d.kernel_relative && kernel_shared == Some(false) && result == Outcome::Exposed {
            result = Outcome::Isolated;
            evidence = format!("its own kernel, not the host's: {evidence}");
        }
        rows.push(row(result, evidence));
    }
    for l in lines {
        if def(&l.id).is_none() {
            let result = Outcome::parse(&l.result).unwrap_or(Outcome::Error);
            rows.push(ProbeRow {
                run_id: String::new(),
                platform: platform.into(),
                probe: l.id.clone(),
                category: "other".into(),
                result,
                evidence: l.evidence.clone(),
            });
        }
    }
    rows
}

fn kernel_shared(f: &BTreeMap<String, String>, h: &HostFacts) -> Verdict {
    let release = f.get("release").map(|s| dec(s));
    let version = f.get("version").map(|s| dec(s));
    let uname = match (&release, &version) {
        (Some(r), Some(v)) => format!("uname {r} {v}"),
        _ => "no uname".into(),
    };
    if f.get("kernel").map(String::as_str) == Some("none") && f.get("boot_id").is_none() {
        return (
            Outcome::Isolated,
            format!(
                "no kernel under the workload: it was entered directly by the VMM in user mode (CS reads {}, CPL {}); no boot id or uname exists to read, and the host's kernel ({} {}) is reachable only through VM exits",
                f.get("cs").map(String::as_str).unwrap_or("?"),
                f.get("cpl").map(String::as_str).unwrap_or("?"),
                h.release,
                h.version
            ),
        );
    }
    match (f.get("boot_id"), &h.boot_id) {
        (Some(g), Some(b)) if g == b => (Outcome::Exposed, format!("boot id {g} is the host's ({uname})")),
        (Some(g), Some(b)) => (Outcome::Isolated, format!("boot id {g}, host's {b} ({uname}; host {} {})", h.release, h.version)),
        (Some(_), None) => (Outcome::Error, "the host's boot id is unreadable: mount /proc".into()),
        (None, _) => match (release, version) {
            (Some(r), Some(v)) if r == h.release && v == h.version => (Outcome::Exposed, format!("no boot id; uname {r} {v} equals the host's")),
            (Some(r), Some(v)) => (Outcome::Isolated, format!("no boot id; uname {r} {v}, host's {} {}", h.release, h.version)),
            _ => (Outcome::Isolated, "no kernel answered: no boot id, no uname".into()),
        },
    }
}

/// Whether the workload shares the host's user and UTS namespaces, when it
/// reported them.
#[derive(Debug, Clone, Copy)]
struct Shared {
    user: Option<bool>,
    uts: Option<bool>,
}

/// One probe's observation and what it is judged against.
struct Obs<'a> {
    f: &'a BTreeMap<String, String>,
    h: &'a HostFacts,
    ctx: &'a Context,
    shared: Shared,
}

fn unknown(id: &str) -> Verdict {
    (Outcome::Error, format!("no rule to judge `{id}`"))
}

/// Judges one observed probe: a probe that failed inside is an `error`;
/// otherwise its family's function decides.
fn judge(id: &str, o: &Obs<'_>) -> Verdict {
    if let Some(e) = o.f.get("error") {
        return (Outcome::Error, format!("the probe failed: {}", errno_name(e)));
    }
    match id.split('.').next().unwrap_or("") {
        "ns" => judge_ns(id, o),
        "kernel" if id == "kernel.shared" => kernel_shared(o.f, o.h),
        "proc" => judge_proc(id, o),
        "fs" => judge_fs(id, o),
        "net" => judge_net(id, o),
        "priv" => judge_priv(id, o),
        "kif" => judge_kif(id, o),
        "dev" => judge_dev(id, o),
        _ => unknown(id),
    }
}

/// The `ns.*` probes: is the workload's namespace inode the host's?
fn judge_ns(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let (f, h) = (o.f, o.h);
    let Some(kind) = id.strip_prefix("ns.") else { return unknown(id) };
    let Some(host) = h.ns.get(kind) else {
        return (NotApplicable, format!("the host kernel has no {kind} namespace"));
    };
    match num(f, "inode") {
        Some(i) if i == *host => (Exposed, format!("{kind}:[{i}] is the host's namespace")),
        Some(i) => (Isolated, format!("{kind}:[{i}], host's {kind}:[{host}]")),
        None => (Error, format!("no namespace inode reported ({})", f.get("link").map(|s| dec(s)).unwrap_or_default())),
    }
}

/// The `proc.*` probes: processes (/proc, environment).
fn judge_proc(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let h = o.h;
    match id {
        "proc.host_pids" => {
            let visible = num(f, "visible");
            let ppid = num(f, "ppid");
            let seen = match visible {
                Some(n) => format!("sees {n} processes in /proc"),
                None => format!("cannot list /proc ({})", f.get("proc").map(|s| errno_name(s)).unwrap_or_default()),
            };
            if ppid == Some(h.pid as u64) && num(f, "ppid_start").is_some() && num(f, "ppid_start") == h.start {
                return (Exposed, format!("{seen}; its parent is pid {} = versus itself (same start time)", h.pid));
            }
            let pid1 = f.get("pid1_comm").map(|s| dec(s));
            if pid1.is_some() && pid1 == h.pid1_comm && num(f, "pid1_start").is_some() && num(f, "pid1_start") == h.pid1_start {
                return (Exposed, format!("{seen}; its pid 1 is the host's `{}` (same start time)", pid1.unwrap_or_default()));
            }
            if visible.is_none() && f.get("pid1_comm").is_none() {
                return (Error, seen);
            }
            (
                Isolated,
                format!(
                    "{seen}; parent pid {}; its pid 1 is `{}`, not the host's `{}`",
                    ppid.unwrap_or(0),
                    pid1.unwrap_or_default(),
                    h.pid1_comm.clone().unwrap_or_default()
                ),
            )
        }
        "proc.host_env" => {
            if h.env.is_empty() {
                return (NotApplicable, "versus has an empty environment: nothing to inherit".into());
            }
            let vars = f.get("vars").map(String::as_str).unwrap_or("");
            let mut same = Vec::new();
            let mut count = 0;
            for v in vars.split(',').filter(|v| !v.is_empty()) {
                count += 1;
                if let Some((n, hash)) = v.rsplit_once(':') {
                    let n = dec(n);
                    if u64::from_str_radix(hash, 16).ok().is_some_and(|x| h.env.get(&n) == Some(&x)) {
                        same.push(n);
                    }
                }
            }
            let shown = same.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            let ev = format!(
                "{} of its {count} variables have the name and value of one of versus' {} ({shown}{})",
                same.len(),
                h.env.len(),
                if same.len() > 8 { ", ..." } else { "" }
            );
            if same.len() >= 3 && same.len() * 2 >= h.env.len() {
                (Exposed, ev)
            } else {
                (Isolated, ev)
            }
        }
        _ => unknown(id),
    }
}

/// The `fs.*` probes: the filesystem.
fn judge_fs(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let h = o.h;
    match id {
        "fs.host_root" => {
            let listing = dec(f.get("listing").map(String::as_str).unwrap_or("")).replace(',', " ");
            let Some((d, i)) = h.root else {
                return (Error, "cannot stat the host's /".into());
            };
            let host = format!("{d}:{i}");
            if f.get("root") == Some(&host) {
                return (Exposed, format!("its / is the host's / (dev:ino {host}); it lists: {listing}"));
            }
            if f.get("proc1root") == Some(&host) {
                return (Exposed, format!("/proc/1/root is the host's / (dev:ino {host}); its own / lists: {listing}"));
            }
            (
                Isolated,
                format!(
                    "its / is {} (host {host}), /proc/1/root {}; it lists: {listing}",
                    f.get("root").map(|s| errno_name(s)).unwrap_or_default(),
                    f.get("proc1root").map(|s| errno_name(s)).unwrap_or_default()
                ),
            )
        }
        "fs.host_mounts" => {
            let Some(root) = &h.root_mount else {
                return (Error, "cannot read the host's mount table".into());
            };
            let mounts: BTreeSet<String> = f
                .get("mounts")
                .map(String::as_str)
                .unwrap_or("")
                .split(';')
                .filter(|m| !m.is_empty())
                .map(|m| m.split(',').map(dec).collect::<Vec<_>>().join(","))
                .collect();
            let common = mounts.intersection(&h.mounts).count();
            let ev = format!("{} mounts visible, {common} of them the host's {}", mounts.len(), h.mounts.len());
            if mounts.contains(root) {
                (Exposed, format!("{ev}, including its root mount {root}"))
            } else {
                (Isolated, format!("{ev}; the host's root mount {root} is not among them"))
            }
        }
        "fs.runtime_sockets" => match f.get("found").filter(|s| !s.is_empty()) {
            Some(s) => (Exposed, format!("runtime sockets visible: {}", dec(s))),
            None => (Isolated, format!("none of {} well-known runtime socket paths is a socket inside", f.get("checked").map(String::as_str).unwrap_or("?"))),
        },
        _ => unknown(id),
    }
}

/// The `net.*` probes: the network.
fn judge_net(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let h = o.h;
    let ctx = o.ctx;
    match id {
        "net.host_interfaces" => {
            if h.interfaces.is_empty() {
                return (NotApplicable, "the host has no interface other than lo to compare with".into());
            }
            let ifs: Vec<(String, String)> =
                f.get("ifs").map(String::as_str).unwrap_or("").split(',').filter_map(|s| s.split_once('@')).map(|(n, m)| (dec(n), m.to_string())).collect();
            let names = ifs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" ");
            let shared: Vec<&str> =
                ifs.iter().filter(|(n, m)| h.interfaces.iter().any(|(hn, hm)| hn == n && (hm == m || m == "unknown"))).map(|(n, _)| n.as_str()).collect();
            if shared.is_empty() {
                (
                    Isolated,
                    format!(
                        "its interfaces: {names}; none is one of the host's ({})",
                        h.interfaces.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" ")
                    ),
                )
            } else {
                (Exposed, format!("host interfaces visible (same name and MAC): {}; all: {names}", shared.join(" ")))
            }
        }
        "net.host_loopback" | "net.host_unix" => {
            let what = if id == "net.host_loopback" { format!("127.0.0.1:{}", ctx.port) } else { format!("@versus-probe-{}", ctx.port) };
            match f.get("connect").map(String::as_str) {
                Some("ok") => (Exposed, format!("connect() to the host's listener {what} succeeded")),
                Some(e) => (Isolated, format!("connect() to the host's listener {what} failed: {}", errno_name(e))),
                None => (Error, "no connect result reported".into()),
            }
        }
        _ => unknown(id),
    }
}

/// The `priv.*` probes: privileges.
fn judge_priv(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let user_ns_shared = o.shared.user;
    match id {
        "priv.uid0_host" => {
            let uid = num(f, "uid");
            let map: Vec<String> = dec(f.get("uid_map").map(String::as_str).unwrap_or("")).split_whitespace().map(String::from).collect();
            let ev = format!(
                "uid {} euid {}, uid_map `{}`",
                uid.map(|u| u.to_string()).unwrap_or("?".into()),
                f.get("euid").map(String::as_str).unwrap_or("?"),
                map.join(" ")
            );
            if uid != Some(0) {
                (Isolated, ev)
            } else if map.first().map(String::as_str) == Some("0") && map.get(1).map(String::as_str) == Some("0") {
                (Exposed, format!("{ev}: root of the host"))
            } else if map.is_empty() {
                (Error, format!("{ev}: uid map unreadable"))
            } else {
                (Isolated, format!("{ev}: root only inside its user namespace"))
            }
        }
        "priv.capabilities" => {
            let Some(eff) = f.get("eff").and_then(|e| u64::from_str_radix(e, 16).ok()) else {
                return (Error, "no capability sets reported".into());
            };
            let ev = format!("CapEff {:016x} ({} capabilities), CapBnd {}", eff, eff.count_ones(), f.get("bnd").map(String::as_str).unwrap_or("?"));
            let sys_admin = eff & (1 << 21) != 0;
            match (sys_admin, user_ns_shared) {
                (true, Some(false)) => (Isolated, format!("{ev}: CAP_SYS_ADMIN only over its own user namespace")),
                (true, _) => (Exposed, format!("{ev}: CAP_SYS_ADMIN in the host's user namespace")),
                (false, _) => (Isolated, format!("{ev}: no CAP_SYS_ADMIN")),
            }
        }
        "priv.seccomp" => match num(f, "mode") {
            Some(0) => (Exposed, "seccomp mode 0: no filter, every system call reachable".into()),
            Some(m) => (Isolated, format!("seccomp mode {m} ({} filters)", f.get("filters").map(String::as_str).unwrap_or("?"))),
            None => (Error, "no seccomp mode reported".into()),
        },
        "priv.no_new_privs" => match num(f, "nnp") {
            Some(0) => (Exposed, "no_new_privs is 0: setuid binaries and file capabilities still raise privileges".into()),
            Some(_) => (Isolated, "no_new_privs is set".into()),
            None => (Error, "no no_new_privs value reported".into()),
        },
        "priv.lsm" => match (f.get("label").map(|s| dec(s)), f.get("label_error")) {
            (Some(l), _) if l == "unconfined" || l.is_empty() => (Exposed, format!("LSM label `{l}`")),
            (Some(l), _) => (Isolated, format!("confined by LSM label `{l}`")),
            (None, Some(e)) => (Exposed, format!("no LSM label (/proc/self/attr/current: {})", errno_name(e))),
            (None, None) => (Error, "no LSM label reported".into()),
        },
        _ => unknown(id),
    }
}

/// The `kif.*` probes: kernel interfaces.
fn judge_kif(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let h = o.h;
    let ctx = o.ctx;
    let user_ns_shared = o.shared.user;
    let shared = o.shared;
    match id {
        "kif.kallsyms" => match (f.get("open").map(String::as_str), num(f, "nonzero")) {
            (Some("ok"), Some(n)) if n > 0 => {
                (Exposed, format!("/proc/kallsyms shows {n} non-zero addresses in its first {} lines", f.get("lines").map(String::as_str).unwrap_or("?")))
            }
            (Some("ok"), _) => (Isolated, "/proc/kallsyms readable but addresses hidden (kptr_restrict)".into()),
            (Some(e), _) => (Isolated, format!("/proc/kallsyms: {}", errno_name(e))),
            (None, _) => (Error, "no result reported".into()),
        },
        "kif.proc_masked" => {
            let mut read = Vec::new();
            let mut closed = Vec::new();
            for name in ["timer_list", "sched_debug", "keys", "latency_stats", "timer_stats"] {
                let Some(v) = f.get(name) else { continue };
                match v.strip_prefix("ok:").and_then(|n| n.parse::<u64>().ok()) {
                    Some(0) => closed.push(format!("/proc/{name} reads as empty")),
                    Some(n) => read.push(format!("/proc/{name} gives {n} bytes")),
                    None => closed.push(format!("/proc/{name} {}", errno_name(v))),
                }
            }
            match (read.is_empty(), closed.is_empty()) {
                (true, true) => (Error, "no result reported".into()),
                (false, _) => (Exposed, read.into_iter().chain(closed).collect::<Vec<_>>().join("; ")),
                (true, false) => (Isolated, closed.join("; ")),
            }
        }
        "kif.dmesg" => match f.get("read") {
            Some(r) if r.starts_with("errno") => (Isolated, format!("syslog(READ_ALL): {}", errno_name(r))),
            Some(r) => (Exposed, format!("syslog(READ_ALL) returned {r} bytes of the kernel log")),
            None => (Error, "no result reported".into()),
        },
        "kif.proc_sys" => match f.get("open_write").map(String::as_str) {
            Some("ok") => (Exposed, "open(/proc/sys/kernel/core_pattern, O_WRONLY) succeeded (nothing written)".into()),
            Some(e) => (Isolated, format!("open(/proc/sys/kernel/core_pattern, O_WRONLY): {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        "kif.sysfs" => {
            let mount = f.get("mount").map(String::as_str).unwrap_or("?");
            let euid = num(f, "euid");
            match mount {
                "rw" if euid == Some(0) && user_ns_shared != Some(false) => {
                    (Exposed, "/sys is a read-write sysfs and the workload is root of the host's user namespace".into())
                }
                "rw" => (
                    Isolated,
                    format!(
                        "/sys is read-write but the workload is euid {} {}",
                        euid.unwrap_or(0),
                        if user_ns_shared == Some(false) { "in its own user namespace" } else { "" }
                    ),
                ),
                "ro" => (Isolated, "/sys is mounted read-only".into()),
                "absent" => (Isolated, "no sysfs mounted on /sys".into()),
                e => (Error, format!("mount table unreadable: {}", errno_name(e))),
            }
        }
        "kif.cgroup_release_agent" => match f.get("writable").filter(|w| !w.is_empty()) {
            Some(w) => (Exposed, format!("writable: {}", dec(w).replace(',', " "))),
            None => (Isolated, format!("{} release_agent files visible, none writable", f.get("checked").map(String::as_str).unwrap_or("0"))),
        },
        "kif.module_load" => match (f.get("ret"), num(f, "errno")) {
            (Some(_), _) => (Exposed, "init_module() returned 0".into()),
            (_, Some(1)) => (Isolated, "init_module(): EPERM (no CAP_SYS_MODULE)".into()),
            (_, Some(38)) => (NotApplicable, "init_module(): ENOSYS: this kernel has no module loading".into()),
            (_, Some(e)) => {
                (Exposed, format!("init_module() passed the CAP_SYS_MODULE check and failed on the empty image: {:?}", nix::errno::Errno::from_raw(e as i32)))
            }
            _ => (Error, "no result reported".into()),
        },
        "kif.hostname" => {
            let name = dec(f.get("hostname").map(String::as_str).unwrap_or(""));
            if let Some(changed) = &ctx.hostname_changed_to {
                return (Exposed, format!("the host's hostname changed to `{changed}` during the run"));
            }
            let shared_uts = shared.uts;
            match f.get("set_same").map(String::as_str) {
                Some("ok") if name == h.hostname && shared_uts != Some(false) => {
                    (Exposed, format!("sethostname(`{name}`) succeeded and `{name}` is the host's hostname"))
                }
                Some("ok") => (Isolated, format!("sethostname succeeds on its own hostname `{name}`; the host's `{}` is unchanged", h.hostname)),
                Some(e) => (Isolated, format!("sethostname(`{name}`): {}", errno_name(e))),
                None => (Error, "no result reported".into()),
            }
        }
        "kif.clock" => match f.get("settimeofday").map(String::as_str) {
            Some("ok") => (Exposed, "settimeofday(NULL, NULL) passed the CAP_SYS_TIME check".into()),
            Some(e) => (Isolated, format!("settimeofday: {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        _ => unknown(id),
    }
}

/// The `dev.*` probes: devices.
fn judge_dev(id: &str, o: &Obs<'_>) -> Verdict {
    use Outcome::*;
    let f = o.f;
    let h = o.h;
    match id {
        "dev.mem" => {
            let opens = f.get("open").map(String::as_str).unwrap_or("");
            let ok: Vec<&str> = opens.split(',').filter_map(|o| o.strip_suffix(":ok")).collect();
            // /proc/kcore: `ok:<bytes read>` or the error; absent from older
            // workload programs.
            let kcore = f.get("kcore").map(String::as_str);
            let kcore_bytes = kcore.and_then(|k| k.strip_prefix("ok:")).and_then(|n| n.parse::<u64>().ok());
            let kcore_ev = match (kcore, kcore_bytes) {
                (_, Some(0)) => Some("/proc/kcore opens but reads as empty (masked)".to_string()),
                (_, Some(n)) => Some(format!("/proc/kcore gives {n} bytes")),
                (Some(e), None) => Some(format!("/proc/kcore {}", errno_name(e))),
                (None, None) => None,
            };
            let with_kcore = |ev: String| match &kcore_ev {
                Some(k) => format!("{ev}; {k}"),
                None => ev,
            };
            if !ok.is_empty() {
                (Exposed, with_kcore(format!("opens read-only: {}", ok.join(" "))))
            } else if kcore_bytes.is_some_and(|n| n > 0) {
                (Exposed, with_kcore("none of /dev/mem, /dev/kmem, /dev/port opens".into()))
            } else {
                (
                    Isolated,
                    with_kcore(format!(
                        "none opens: {}",
                        opens
                            .split(',')
                            .map(|o| match o.rsplit_once(':') {
                                Some((p, e)) => format!("{p} {}", errno_name(e)),
                                None => o.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
            }
        }
        "dev.kvm" => match f.get("open").map(String::as_str) {
            Some("ok") => (Exposed, "/dev/kvm opens".into()),
            Some(e) => (Isolated, format!("/dev/kvm: {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        "dev.block" => match (f.get("path").map(|s| dec(s)), f.get("open").map(String::as_str)) {
            (Some(p), _) if p == "none" => (Isolated, "no block device node in /dev".into()),
            (Some(p), Some("ok")) => (Exposed, format!("{p} opens read-only")),
            (Some(p), Some(e)) => (Isolated, format!("{p}: {}", errno_name(e))),
            _ => (Error, "no result reported".into()),
        },
        "dev.cpu_identity" => {
            let b = dec(f.get("brand").map(String::as_str).unwrap_or(""));
            // The kernel-less guest also reports vendor and signature.
            let more = match (f.get("vendor"), f.get("sig")) {
                (Some(v), Some(s)) => format!(" (vendor `{}`, signature {s})", dec(v)),
                _ => String::new(),
            };
            if h.cpu_brand.is_empty() {
                (NotApplicable, "the host CPU reports no brand string".into())
            } else if b == h.cpu_brand {
                (Exposed, format!("CPUID brand `{b}` is the host's{more}"))
            } else {
                (Isolated, format!("CPUID brand `{b}`, host's `{}`{more}", h.cpu_brand))
            }
        }
        _ => unknown(id),
    }
}
