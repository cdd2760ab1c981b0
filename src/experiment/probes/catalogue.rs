//! The probe catalogue: every isolation probe, its category, the question
//! it answers and what counts as `exposed` (documented for users in
//! docs/probes.md; a test keeps the two in step).

/// Which guests can run a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Needs a Linux kernel under the workload (process, containers, Linux guests).
    Linux,
    /// Only the kernel-less guest (`vm-bare`), answered by its VMM.
    Bare,
    /// Every platform.
    All,
}

/// A probe of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ProbeDef {
    pub id: &'static str,
    /// kernel, processes, filesystem, network, privileges, devices,
    /// kernel interfaces, resources.
    pub category: &'static str,
    /// The one-line question the probe answers.
    pub question: &'static str,
    /// What counts as `exposed`.
    pub exposed_when: &'static str,
    /// Only meaningful on the host's kernel: `isolated` when the workload
    /// has a kernel of its own.
    pub kernel_relative: bool,
    pub scope: Scope,
}

const fn p(id: &'static str, category: &'static str, question: &'static str, exposed_when: &'static str, kernel_relative: bool, scope: Scope) -> ProbeDef {
    ProbeDef { id, category, question, exposed_when, kernel_relative, scope }
}

/// Every probe, in report order.
pub const CATALOGUE: &[ProbeDef] = &[
    p(
        "kernel.shared",
        "kernel",
        "Does the workload run on the host's kernel?",
        "the kernel boot id it reads (/proc/sys/kernel/random/boot_id) is the host's; without /proc, uname release and version equal the host's",
        false,
        Scope::All,
    ),
    p(
        "proc.host_pids",
        "processes",
        "Can the workload see host processes?",
        "its /proc shows versus itself (its parent, same pid and start time) or the host's pid 1 (same name and start time)",
        true,
        Scope::Linux,
    ),
    p(
        "ns.pid",
        "processes",
        "Does the workload share the host's pid namespace (is it not pid 1 of its own)?",
        "its pid namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "ns.ipc",
        "processes",
        "Does the workload share the host's IPC namespace (SysV IPC, POSIX queues)?",
        "its ipc namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "proc.host_env",
        "processes",
        "Does the workload inherit the host's environment, where secrets often live?",
        "half or more of versus' environment variables (at least 3), by name and value, are in its environment (values are compared as hashes, never reported)",
        false,
        Scope::Linux,
    ),
    p(
        "fs.host_root",
        "filesystem",
        "Can the workload see the host's root filesystem?",
        "its / (or /proc/1/root) is the host's / (same device and inode)",
        true,
        Scope::Linux,
    ),
    p(
        "fs.host_mounts",
        "filesystem",
        "Can the workload see the host's mount table?",
        "its /proc/self/mountinfo lists the host's root mount (same device, root and mount point)",
        true,
        Scope::Linux,
    ),
    p("ns.mnt", "filesystem", "Does the workload share the host's mount namespace?", "its mnt namespace inode is the host's", true, Scope::Linux),
    p(
        "fs.runtime_sockets",
        "filesystem",
        "Are container runtime sockets (docker, containerd, cri-o, podman, libvirt) reachable?",
        "one of their well-known paths is a socket it can see",
        true,
        Scope::Linux,
    ),
    p(
        "net.host_interfaces",
        "network",
        "Can the workload see the host's network interfaces?",
        "one of its interfaces has the name and MAC address of a host interface other than lo",
        false,
        Scope::Linux,
    ),
    p(
        "net.host_loopback",
        "network",
        "Can the workload connect to a TCP port listening on the host's 127.0.0.1?",
        "connect() to the port versus listens on succeeds",
        false,
        Scope::Linux,
    ),
    p(
        "net.host_unix",
        "network",
        "Can the workload connect to a host abstract unix socket?",
        "connect() to the abstract socket versus listens on succeeds",
        false,
        Scope::Linux,
    ),
    p("ns.net", "network", "Does the workload share the host's network namespace?", "its net namespace inode is the host's", true, Scope::Linux),
    p("priv.uid0_host", "privileges", "Does the workload run as the host's root?", "uid 0 with the identity uid map (0 0 4294967295)", true, Scope::Linux),
    p(
        "priv.capabilities",
        "privileges",
        "Does the workload hold CAP_SYS_ADMIN over the host?",
        "CAP_SYS_ADMIN is in its effective set and its user namespace is the host's",
        true,
        Scope::Linux,
    ),
    p("priv.seccomp", "privileges", "Can the workload make every system call (no seccomp filter)?", "prctl(PR_GET_SECCOMP) is 0", true, Scope::Linux),
    p(
        "priv.no_new_privs",
        "privileges",
        "Can the workload gain privileges through setuid or file capabilities?",
        "prctl(PR_GET_NO_NEW_PRIVS) is 0",
        true,
        Scope::Linux,
    ),
    p(
        "priv.lsm",
        "privileges",
        "Is the workload unconfined by an LSM (AppArmor, SELinux)?",
        "/proc/self/attr/current is `unconfined` or there is no LSM label",
        true,
        Scope::Linux,
    ),
    p("ns.user", "privileges", "Does the workload share the host's user namespace?", "its user namespace inode is the host's", true, Scope::Linux),
    p("kif.kallsyms", "kernel interfaces", "Can the workload read kernel symbol addresses?", "/proc/kallsyms shows non-zero addresses", true, Scope::Linux),
    p(
        "kif.proc_masked",
        "kernel interfaces",
        "Can the workload read the host-wide /proc files container runtimes mask (/proc/timer_list, /proc/sched_debug, /proc/keys, /proc/latency_stats, /proc/timer_stats)?",
        "one of them gives bytes (a masked file reads as empty; one this kernel lacks does not count)",
        true,
        Scope::Linux,
    ),
    p("kif.dmesg", "kernel interfaces", "Can the workload read the kernel log?", "syslog(SYSLOG_ACTION_READ_ALL) succeeds", true, Scope::Linux),
    p(
        "kif.proc_sys",
        "kernel interfaces",
        "Can the workload write host-wide sysctls?",
        "open(/proc/sys/kernel/core_pattern, O_WRONLY) succeeds (nothing is written)",
        true,
        Scope::Linux,
    ),
    p(
        "kif.sysfs",
        "kernel interfaces",
        "Is /sys mounted writable for a host root?",
        "/sys is a read-write sysfs, the workload is euid 0 and in the host's user namespace",
        true,
        Scope::Linux,
    ),
    p(
        "kif.cgroup_release_agent",
        "kernel interfaces",
        "Can the workload write a cgroup v1 release_agent (the classic container escape)?",
        "open(<cgroup>/release_agent, O_WRONLY) succeeds (nothing is written)",
        true,
        Scope::Linux,
    ),
    p(
        "kif.module_load",
        "kernel interfaces",
        "Can the workload load kernel modules?",
        "init_module() with an empty image gets past the CAP_SYS_MODULE check (fails with anything but EPERM); ENOSYS (no module support) is not_applicable",
        true,
        Scope::Linux,
    ),
    p(
        "kif.hostname",
        "kernel interfaces",
        "Does a hostname change inside reach the host?",
        "sethostname() (to the current name) succeeds in the host's UTS namespace, or the host's hostname changed during the run",
        true,
        Scope::Linux,
    ),
    p(
        "kif.clock",
        "kernel interfaces",
        "Can the workload set the host's clock?",
        "settimeofday(NULL, NULL) passes the CAP_SYS_TIME check (time namespaces never cover CLOCK_REALTIME)",
        true,
        Scope::Linux,
    ),
    p(
        "ns.uts",
        "kernel interfaces",
        "Does the workload share the host's UTS namespace (hostname)?",
        "its uts namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "ns.time",
        "kernel interfaces",
        "Does the workload share the host's time namespace (monotonic and boot clock offsets)?",
        "its time namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "dev.mem",
        "devices",
        "Can the workload read host memory through /dev/mem, /dev/kmem, /dev/port or /proc/kcore?",
        "one of the devices opens read-only, or reading /proc/kcore returns bytes (a runtime's masked /proc/kcore reads as empty)",
        true,
        Scope::Linux,
    ),
    p("dev.kvm", "devices", "Can the workload open /dev/kvm?", "it opens", true, Scope::Linux),
    p("dev.block", "devices", "Can the workload open a host block device?", "a block device node under /dev opens read-only", true, Scope::Linux),
    p(
        "dev.cpu_identity",
        "devices",
        "Does the workload see the host CPU's identity (CPUID brand string)?",
        "the brand string it reads equals the host's",
        false,
        Scope::All,
    ),
    p(
        "ns.cgroup",
        "resources",
        "Does the workload share the host's cgroup namespace (sees host cgroup paths)?",
        "its cgroup namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "vm.mem_outside_ram",
        "resources",
        "Can the kernel-less guest read or write memory outside its RAM?",
        "an access outside guest RAM returns data or is silently accepted instead of ending the guest",
        false,
        Scope::Bare,
    ),
    p(
        "vm.unknown_port",
        "devices",
        "Does the VMM answer port I/O it does not implement?",
        "an access to an unknown port is served instead of ending the guest",
        false,
        Scope::Bare,
    ),
    p(
        "vm.supervisor",
        "privileges",
        "Can the kernel-less guest leave user mode?",
        "a privileged instruction or a system call from CPL3 runs instead of faulting to the VMM",
        false,
        Scope::Bare,
    ),
];

/// The catalogue entry of `id`.
pub fn def(id: &str) -> Option<&'static ProbeDef> {
    CATALOGUE.iter().find(|d| d.id == id)
}

/// Namespaces the guest reports, as in /proc/self/ns.
pub const NAMESPACES: [&str; 8] = ["pid", "net", "mnt", "uts", "ipc", "cgroup", "user", "time"];
