//! The isolation-probe matrix (difference 4 of docs/design.md): what a workload
//! can see of, and do to, the host, from inside each platform.
//!
//! The workload program's `probe` mode (`harness/guest/src/probe.rs`) runs
//! every probe inside the sandbox and reports raw observations (`PROBE id=..
//! result=observed evidence=k=v ...`): the boot id and uname it sees, its
//! parent's pid and start time, its namespace inodes, interfaces, whether a
//! connect or an open succeeded. versus compares them here with the values it
//! reads on the host itself ([`HostFacts`]) and classifies each probe as
//! `isolated`, `exposed`, `not_applicable` or `error` ([`classify`]). A guest
//! or VMM that can judge a probe itself may send a final result instead of
//! `observed` (the kernel-less guest's `vm.*` probes do); it is kept.
//!
//! Probes about kernel objects (capabilities, seccomp, /proc/sys, devices,
//! namespaces) only concern the host when the workload runs on the host's
//! kernel: on a guest with its own kernel they are `isolated` by
//! construction, and the evidence says so.
//!
//! The catalogue ([`CATALOGUE`]) is documented for users in docs/probes.md;
//! a test keeps the two in step.

//!
//! | file | job |
//! |---|---|
//! | [`catalogue`] | every probe: id, category, question, what counts as exposed, scope |
//! | [`host_facts`] | what versus reads on the host to judge against |
//! | [`wire`] | decoding the workload's observations |
//! | [`judge`] | classifying observations, one function per probe family |
//! | [`run`] | running the matrix on a platform |
//! | [`surface`] | the attack-surface rows |

pub mod catalogue;
pub mod host_facts;
pub mod judge;
pub mod run;
pub mod surface;
pub mod wire;

pub use catalogue::{def, ProbeDef, Scope, CATALOGUE, NAMESPACES};
pub use host_facts::{count_host_syscalls, cpu_brand, host_syscalls, HostFacts};
pub use judge::{classify, Context};
pub use run::{run_probe_workload, run_probes, run_probes_with};
pub use surface::{surface_rows, syscall_surface};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::wire::{dec, fields, fnv};
    use super::*;
    use crate::model::{Outcome, ProbeLine, ProbeRow};
    use crate::platform::Guest;

    fn line(id: &str, ev: &str) -> ProbeLine {
        ProbeLine { id: id.into(), result: "observed".into(), evidence: ev.into() }
    }

    fn host() -> HostFacts {
        let mut h = HostFacts {
            boot_id: Some("b-1".into()),
            release: "6.1".into(),
            version: "#1".into(),
            pid: 100,
            start: Some(555),
            pid1_comm: Some("systemd".into()),
            pid1_start: Some(3),
            interfaces: vec![("eth0".into(), "02:00:00:00:00:01".into())],
            root: Some((2049, 2)),
            root_mount: Some("8:1,/,/".into()),
            hostname: "box".into(),
            cpu_brand: "Some CPU".into(),
            syscalls: Some(360),
            ..Default::default()
        };
        for (i, n) in NAMESPACES.iter().enumerate() {
            h.ns.insert(n.to_string(), 4026531830 + i as u64);
        }
        h.mounts.insert("8:1,/,/".into());
        h.mounts.insert("0:5,/,/proc".into());
        h.env = [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")].iter().map(|(k, v)| (k.to_string(), fnv(v.as_bytes()))).collect();
        h
    }

    fn get<'a>(rows: &'a [ProbeRow], id: &str) -> &'a ProbeRow {
        rows.iter().find(|r| r.probe == id).unwrap_or_else(|| panic!("no row {id}"))
    }

    #[test]
    fn host_pids_root_and_network_flip_with_the_observation() {
        let h = host();
        let ctx = Context { port: 7, ..Default::default() };
        let shared = vec![
            line("kernel.shared", "boot_id=b-1 release=6.1 version=%231"),
            line("proc.host_pids", "self=200 ppid=100 ppid_comm=versus ppid_start=555 pid1_comm=systemd pid1_start=3 visible=90"),
            line("fs.host_root", "root=2049:2 proc1root=errno13 listing=bin,etc"),
            line("net.host_interfaces", "ifs=lo@00:00:00:00:00:00,eth0@02:00:00:00:00:01"),
            line("net.host_loopback", "port=7 connect=ok"),
        ];
        let rows = classify("process", Guest::HostKernel, &shared, &h, &ctx);
        for id in ["kernel.shared", "proc.host_pids", "fs.host_root", "net.host_interfaces", "net.host_loopback"] {
            assert_eq!(get(&rows, id).result, Outcome::Exposed, "{id}: {}", get(&rows, id).evidence);
        }
        let isolated = vec![
            line("kernel.shared", "boot_id=b-1 release=6.1 version=%231"),
            line("proc.host_pids", "self=1 ppid=0 pid1_comm=init pid1_start=900 visible=1"),
            line("fs.host_root", "root=2049:77 proc1root=2049:77 listing=init,proc"),
            line("net.host_interfaces", "ifs=lo@00:00:00:00:00:00"),
            line("net.host_loopback", "port=7 connect=errno101"),
        ];
        let rows = classify("container", Guest::HostKernel, &isolated, &h, &ctx);
        for id in ["proc.host_pids", "fs.host_root", "net.host_interfaces", "net.host_loopback"] {
            assert_eq!(get(&rows, id).result, Outcome::Isolated, "{id}: {}", get(&rows, id).evidence);
        }
        assert!(get(&rows, "net.host_loopback").evidence.contains("ENETUNREACH"), "{}", get(&rows, "net.host_loopback").evidence);
        // Probes it did not report are errors, never silently isolated.
        assert_eq!(get(&rows, "priv.seccomp").result, Outcome::Error);
    }

    #[test]
    fn own_kernel_turns_kernel_relative_exposure_into_isolation() {
        let h = host();
        let lines = vec![
            line("kernel.shared", "boot_id=other release=6.1 version=%231"),
            line("priv.seccomp", "mode=0 filters=0"),
            line("ns.pid", "inode=4026531830"),
            line("dev.cpu_identity", "brand=Some%20CPU"),
        ];
        let rows = classify("vm-linux", Guest::OwnKernel, &lines, &h, &Context::default());
        assert_eq!(get(&rows, "kernel.shared").result, Outcome::Isolated);
        assert_eq!(get(&rows, "priv.seccomp").result, Outcome::Isolated);
        assert!(get(&rows, "priv.seccomp").evidence.starts_with("its own kernel"));
        assert_eq!(get(&rows, "ns.pid").result, Outcome::Isolated, "the init pid namespace inode is the same number on every kernel");
        assert_eq!(get(&rows, "dev.cpu_identity").result, Outcome::Exposed, "CPUID is not kernel-relative");
    }

    #[test]
    fn bare_guest_rows_and_final_results_pass_through() {
        let h = host();
        let lines = vec![
            line("kernel.shared", ""),
            ProbeLine { id: "vm.unknown_port".into(), result: "isolated".into(), evidence: "port 0x99 ended the guest".into() },
            ProbeLine { id: "vm.extra".into(), result: "exposed".into(), evidence: "x".into() },
        ];
        let rows = classify("vm-bare", Guest::NoKernel, &lines, &h, &Context::default());
        assert_eq!(get(&rows, "kernel.shared").result, Outcome::Isolated);
        assert_eq!(get(&rows, "proc.host_pids").result, Outcome::NotApplicable);
        assert_eq!(get(&rows, "vm.unknown_port").result, Outcome::Isolated);
        assert_eq!(get(&rows, "vm.supervisor").result, Outcome::Error, "missing bare probe is an error");
        assert_eq!(get(&rows, "vm.extra").category, "other");
        let linux = classify("process", Guest::HostKernel, &[], &h, &Context::default());
        assert_eq!(get(&linux, "vm.supervisor").result, Outcome::NotApplicable);
    }

    #[test]
    fn judges_privileges_env_and_kernel_interfaces() {
        let h = host();
        let a = "A:".to_string() + &format!("{:016x}", fnv(b"1"));
        let b = "B:".to_string() + &format!("{:016x}", fnv(b"2"));
        let c = "C:".to_string() + &format!("{:016x}", fnv(b"3"));
        let lines = vec![
            line("kernel.shared", "boot_id=b-1"),
            line("proc.host_env", &format!("count=3 vars={a},{b},{c}")),
            line("priv.uid0_host", "uid=0 euid=0 uid_map=0%20%20%200%204294967295"),
            line("priv.capabilities", "eff=000001ffffffffff bnd=000001ffffffffff"),
            line("ns.user", "inode=4026531836"),
            line("kif.module_load", "errno=38"),
            line("kif.hostname", "hostname=box set_same=ok"),
            line("kif.dmesg", "read=errno1"),
        ];
        let rows = classify("process", Guest::HostKernel, &lines, &h, &Context::default());
        assert_eq!(get(&rows, "proc.host_env").result, Outcome::Exposed);
        assert_eq!(get(&rows, "priv.uid0_host").result, Outcome::Exposed);
        assert_eq!(get(&rows, "priv.capabilities").result, Outcome::Exposed);
        assert_eq!(get(&rows, "kif.module_load").result, Outcome::NotApplicable);
        assert_eq!(get(&rows, "kif.hostname").result, Outcome::Exposed);
        assert_eq!(get(&rows, "kif.dmesg").result, Outcome::Isolated);
        let lines = vec![
            line("kernel.shared", "boot_id=b-1"),
            line("proc.host_env", "count=0 vars="),
            line("priv.uid0_host", "uid=0 euid=0 uid_map=0%201000%201"),
            line("priv.capabilities", "eff=000001ffffffffff bnd=000001ffffffffff"),
            line("ns.user", "inode=4026532000"),
            line("kif.module_load", "errno=1"),
            line("kif.hostname", "hostname=versus-1-0 set_same=ok"),
        ];
        let ctx = Context { hostname_changed_to: None, port: 1 };
        let rows = classify("container", Guest::HostKernel, &lines, &h, &ctx);
        for id in ["proc.host_env", "priv.uid0_host", "priv.capabilities", "kif.module_load", "kif.hostname"] {
            assert_eq!(get(&rows, id).result, Outcome::Isolated, "{id}: {}", get(&rows, id).evidence);
        }
        let ctx = Context { hostname_changed_to: Some("pwned".into()), port: 1 };
        assert_eq!(get(&classify("container", Guest::HostKernel, &lines, &h, &ctx), "kif.hostname").result, Outcome::Exposed);
    }

    /// What the default container profile closes, judged from the
    /// observations a hardened container and a privileged one report (both
    /// root in the host's user namespace, as versus runs them as root).
    #[test]
    fn judges_a_hardened_container_against_a_privileged_one() {
        let h = host();
        let common = |caps: &str, seccomp: &str, nnp: &str, module: &str, proc_sys: &str, kcore: &str| {
            vec![
                line("kernel.shared", "boot_id=b-1"),
                line("ns.user", "inode=4026531836"),
                line("priv.capabilities", &format!("eff={caps} bnd={caps}")),
                line("priv.seccomp", &format!("mode={seccomp} filters={seccomp}")),
                line("priv.no_new_privs", &format!("nnp={nnp}")),
                line("kif.module_load", &format!("errno={module}")),
                line("kif.proc_sys", &format!("path=/proc/sys/kernel/core_pattern open_write={proc_sys}")),
                line("kif.clock", if module == "1" { "settimeofday=errno1" } else { "settimeofday=ok" }),
                line("dev.mem", &format!("open=/dev/mem:errno2,/dev/kmem:errno2,/dev/port:errno2 kcore={kcore}")),
                line("kif.proc_masked", &format!("timer_list={kcore} sched_debug=errno2 keys=ok:0")),
            ]
        };
        let hardened = common("00000000a80425fb", "2", "1", "1", "errno30", "ok:0");
        let rows = classify("container", Guest::HostKernel, &hardened, &h, &Context::default());
        for id in ["priv.capabilities", "priv.seccomp", "priv.no_new_privs", "kif.module_load", "kif.proc_sys", "kif.clock", "dev.mem", "kif.proc_masked"] {
            assert_eq!(get(&rows, id).result, Outcome::Isolated, "{id}: {}", get(&rows, id).evidence);
        }
        assert!(get(&rows, "priv.capabilities").evidence.contains("(14 capabilities)"), "{}", get(&rows, "priv.capabilities").evidence);
        assert!(get(&rows, "dev.mem").evidence.contains("reads as empty"), "{}", get(&rows, "dev.mem").evidence);
        let privileged = common("000001ffffffffff", "0", "0", "2", "ok", "ok:4096");
        let rows = classify("container", Guest::HostKernel, &privileged, &h, &Context::default());
        for id in ["priv.capabilities", "priv.seccomp", "priv.no_new_privs", "kif.module_load", "kif.proc_sys", "kif.clock", "dev.mem", "kif.proc_masked"] {
            assert_eq!(get(&rows, id).result, Outcome::Exposed, "{id}: {}", get(&rows, id).evidence);
        }
        assert!(get(&rows, "dev.mem").evidence.contains("/proc/kcore gives 4096 bytes"), "{}", get(&rows, "dev.mem").evidence);
        // An open that fails on /proc/kcore is isolated too.
        let denied = common("00000000a80425fb", "2", "1", "1", "errno30", "errno1");
        let rows = classify("container", Guest::HostKernel, &denied, &h, &Context::default());
        assert_eq!(get(&rows, "dev.mem").result, Outcome::Isolated, "{}", get(&rows, "dev.mem").evidence);
    }

    #[test]
    fn decoding_and_syscall_count() {
        assert_eq!(dec("a%20b%3Dc%"), "a b=c%");
        assert_eq!(fields("a=1 b=x=y")["b"], "x=y");
        let k = "0 T __x64_sys_read\n0 T __x64_sys_write\n0 T __pfx___x64_sys_read\n0 T __x64_sys_read\n0 T __x64_sys_ni_syscall\n";
        assert_eq!(count_host_syscalls(k), 2);
    }

    #[test]
    fn every_probe_has_a_known_category_and_a_unique_id() {
        let cats = ["kernel", "processes", "filesystem", "network", "privileges", "devices", "kernel interfaces", "resources"];
        let mut ids = BTreeSet::new();
        for d in CATALOGUE {
            assert!(cats.contains(&d.category), "{}", d.id);
            assert!(ids.insert(d.id), "duplicate {}", d.id);
            assert!(d.question.ends_with('?'), "{}", d.id);
        }
    }

    #[test]
    fn docs_list_every_probe() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/probes.md")).expect("docs/probes.md exists");
        for d in CATALOGUE {
            assert!(doc.contains(&format!("`{}`", d.id)), "docs/probes.md does not document `{}`", d.id);
        }
    }
}
