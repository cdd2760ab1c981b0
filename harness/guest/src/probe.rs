//! The `probe` and `stress-*` modes of the workload program.
//!
//! `probe PORT` runs the isolation probes from inside the sandbox. Each probe
//! sends one line
//!
//! ```text
//! PROBE id=<id> result=observed evidence=k=v k=v ...
//! ```
//!
//! with what it read or which call succeeded (values percent-encoded, see
//! [`enc`]). The guest does not judge: versus compares the observations with
//! the host's own values (its boot id, its pid and start time, its
//! namespaces, its interfaces, ...) and classifies each probe as isolated,
//! exposed, not applicable or error (`src/measure/probes.rs`). Nothing here
//! changes the host: writes are only attempted as opens without writing,
//! `sethostname` is called with the current name, `settimeofday(NULL, NULL)`
//! only passes the permission check, `init_module` gets an empty image.
//!
//! `stress-cpu MS`, `stress-mem MS` and `stress-fork MS [MAX]` are the noisy
//! neighbours of the interference measurement: each signals ready, loads the
//! machine for at most MS milliseconds (or until standard input reaches end
//! of file), then reports a RESULT whose checksum is the work done (rounds,
//! MiB copied, or the peak number of processes for the fork bomb).

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use versus_workload::protocol::{self, Report};

use super::{now_ns, ready, Channel};

#[repr(C)]
struct UtsName {
    fields: [[u8; 65]; 6],
}

extern "C" {
    fn uname(buf: *mut UtsName) -> i32;
    fn getppid() -> i32;
    fn getpid() -> i32;
    fn getuid() -> u32;
    fn geteuid() -> u32;
    fn prctl(option: i32, ...) -> i32;
    fn klogctl(kind: i32, buf: *mut u8, len: i32) -> i32;
    fn syscall(n: i64, ...) -> i64;
    fn gethostname(name: *mut u8, len: usize) -> i32;
    fn sethostname(name: *const u8, len: usize) -> i32;
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn ioctl(fd: i32, req: u64, ...) -> i32;
    fn close(fd: i32) -> i32;
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn _exit(code: i32) -> !;
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 1;
const POLLHUP: i16 = 0x10;

/// True once standard input is at end of file (the host asked to stop).
/// Never blocks.
fn stdin_closed() -> bool {
    let mut p = PollFd { fd: 0, events: POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { poll(&mut p, 1, 0) };
    if r <= 0 || p.revents & (POLLIN | POLLHUP) == 0 {
        return false;
    }
    let mut b = [0u8; 64];
    // SAFETY: reads into a local buffer; poll said it will not block.
    unsafe { read(0, b.as_mut_ptr(), b.len()) == 0 }
}

const PR_SET_PDEATHSIG: i32 = 1;
const PR_GET_SECCOMP: i32 = 21;
const PR_GET_NO_NEW_PRIVS: i32 = 39;
const SYSLOG_ACTION_READ_ALL: i32 = 3;
const SYS_INIT_MODULE: i64 = 175;
const SYS_SETTIMEOFDAY: i64 = 164;
const SIOCGIFHWADDR: u64 = 0x8927;
const AF_INET: i32 = 2;
const SOCK_DGRAM: i32 = 2;
const SIGKILL: i32 = 9;
const WNOHANG: i32 = 1;
const PROT_READ: i32 = 1;
const PROT_WRITE: i32 = 2;
const MAP_SHARED: i32 = 1;
const MAP_ANONYMOUS: i32 = 0x20;

/// Is `name` a mode of this module?
pub fn is_mode(name: &str) -> bool {
    name == "probe" || name.starts_with("stress-")
}

/// Runs the mode `name` with its numeric parameters.
pub fn run(name: &str, params: &[u32], started: u64, ch: &mut Channel) -> ExitCode {
    match name {
        "probe" => {
            ready(ch, started);
            let port = params.first().copied().unwrap_or(0).min(u16::MAX as u32) as u16;
            run_probes(port, ch);
            ExitCode::SUCCESS
        }
        "stress-cpu" | "stress-mem" | "stress-fork" => {
            let ms = params.first().copied().unwrap_or(1000);
            let max = params.get(1).copied().unwrap_or(256);
            stress(name, ms, max, started, ch)
        }
        _ => {
            eprintln!("versus-guest: unknown mode `{name}` (expected probe, stress-cpu, stress-mem or stress-fork)");
            ExitCode::from(2)
        }
    }
}

/// Percent-encodes what the evidence grammar reserves (space, `%`, `=`,
/// `,`, `;`) and anything that is not printable ASCII.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'=' | b',' | b';') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn io_err(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("errno{n}"),
        None => enc(&e.to_string()),
    }
}

fn send(ch: &mut Channel, id: &str, evidence: &str) {
    let mut line = String::new();
    let _ = protocol::write_probe(&mut line, id, "observed", evidence);
    ch.send(&line);
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// (comm, starttime) from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    // Fields after the comm start at field 3 (state); starttime is field 22.
    let start = s[close + 2..].split(' ').nth(19)?.parse().ok()?;
    Some((comm, start))
}

fn open_write(path: &str) -> String {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => "ok".into(),
        Err(e) => io_err(&e),
    }
}

fn open_read(path: &str) -> String {
    match std::fs::File::open(path) {
        Ok(_) => "ok".into(),
        Err(e) => io_err(&e),
    }
}

/// `ok:<bytes>`: how many of its first 4 KiB a file gives (0 for a file
/// masked by /dev/null), or the error of opening or reading it.
fn read_some(path: &str) -> String {
    let mut buf = vec![0u8; 4096];
    match std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => format!("ok:{n}"),
        Err(e) => io_err(&e),
    }
}

fn dev_ino(path: &str) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}", m.dev(), m.ino()),
        Err(e) => io_err(&e),
    }
}

fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

fn mac_of(fd: i32, name: &str) -> Option<String> {
    // struct ifreq: a 16-byte name, then a union whose first member is a
    // struct sockaddr (family u16, 14 bytes of data): 40 bytes in all.
    let mut req = [0u8; 40];
    let n = name.len().min(15);
    req[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: `req` is a writable, NUL-terminated struct ifreq of the size
    // the kernel copies in and out for SIOCGIFHWADDR.
    if unsafe { ioctl(fd, SIOCGIFHWADDR, req.as_mut_ptr()) } < 0 {
        return None;
    }
    let mac = &req[18..24];
    Some(mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

/// FNV-1a, 64 bits: lets the host compare environment values without the
/// guest reporting them.
fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in s {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn run_probes(port: u16, ch: &mut Channel) {
    // kernel.shared
    let mut u = UtsName { fields: [[0; 65]; 6] };
    // SAFETY: `u` is a writable struct utsname of glibc's layout (6 x 65 bytes).
    let uname_ok = unsafe { uname(&mut u) } == 0;
    let mut ev = String::new();
    if let Ok(b) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let _ = write!(ev, "boot_id={} ", enc(b.trim()));
    }
    if uname_ok {
        let _ = write!(ev, "release={} version={}", enc(&cstr(&u.fields[2])), enc(&cstr(&u.fields[3])));
    }
    send(ch, "kernel.shared", ev.trim_end());

    // proc.host_pids
    // SAFETY: getpid/getppid take no arguments and cannot fail.
    let (pid, ppid) = unsafe { (getpid(), getppid()) };
    let mut ev = format!("self={pid} ppid={ppid}");
    if ppid > 0 {
        if let Some((c, s)) = proc_stat(ppid) {
            let _ = write!(ev, " ppid_comm={} ppid_start={s}", enc(&c));
        }
    }
    if let Some((c, s)) = proc_stat(1) {
        let _ = write!(ev, " pid1_comm={} pid1_start={s}", enc(&c));
    }
    match std::fs::read_dir("/proc") {
        Ok(d) => {
            let n = d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_str().is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))).count();
            let _ = write!(ev, " visible={n}");
        }
        Err(e) => {
            let _ = write!(ev, " proc={}", io_err(&e));
        }
    }
    send(ch, "proc.host_pids", &ev);

    // Namespaces: their inode numbers; versus compares them with its own.
    for ns in ["pid", "net", "mnt", "uts", "ipc", "cgroup", "user", "time"] {
        let ev = match std::fs::read_link(format!("/proc/self/ns/{ns}")) {
            Ok(l) => {
                let l = l.to_string_lossy().into_owned();
                let ino = l.split('[').nth(1).and_then(|r| r.trim_end_matches(']').parse::<u64>().ok());
                match ino {
                    Some(i) => format!("inode={i}"),
                    None => format!("link={}", enc(&l)),
                }
            }
            Err(e) => format!("error={}", io_err(&e)),
        };
        send(ch, &format!("ns.{ns}"), &ev);
    }

    // proc.host_env: names and value hashes only.
    let mut vars: Vec<String> =
        std::env::vars_os().take(256).map(|(k, v)| format!("{}:{:016x}", enc(&k.to_string_lossy()), fnv(v.as_encoded_bytes()))).collect();
    vars.sort();
    send(ch, "proc.host_env", &format!("count={} vars={}", vars.len(), vars.join(",")));

    // net.host_interfaces
    let mut ifs = Vec::new();
    match std::fs::read_to_string("/proc/self/net/dev") {
        Ok(t) => {
            // SAFETY: plain socket creation; closed below.
            let fd = unsafe { socket(AF_INET, SOCK_DGRAM, 0) };
            for l in t.lines().skip(2) {
                if let Some((name, _)) = l.split_once(':') {
                    let name = name.trim();
                    let mac = if fd >= 0 { mac_of(fd, name) } else { None };
                    ifs.push(format!("{}@{}", enc(name), mac.unwrap_or_else(|| "unknown".into())));
                }
            }
            if fd >= 0 {
                // SAFETY: closes the socket opened above.
                unsafe { close(fd) };
            }
            send(ch, "net.host_interfaces", &format!("ifs={}", ifs.join(",")));
        }
        Err(e) => send(ch, "net.host_interfaces", &format!("error={}", io_err(&e))),
    }

    // net.host_loopback and net.host_unix: reach listeners versus opened.
    let tcp = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let r = match std::net::TcpStream::connect_timeout(&tcp, Duration::from_millis(300)) {
        Ok(_) => "ok".to_string(),
        Err(e) => io_err(&e),
    };
    send(ch, "net.host_loopback", &format!("port={port} connect={r}"));
    let r = {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("versus-probe-{port}");
        match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
            Ok(a) => match std::os::unix::net::UnixStream::connect_addr(&a) {
                Ok(_) => "ok".to_string(),
                Err(e) => io_err(&e),
            },
            Err(e) => io_err(&e),
        }
    };
    send(ch, "net.host_unix", &format!("name=@versus-probe-{port} connect={r}"));

    // fs.host_root
    let mut names: Vec<String> =
        std::fs::read_dir("/").map(|d| d.filter_map(|e| e.ok()).map(|e| enc(&e.file_name().to_string_lossy())).collect()).unwrap_or_default();
    names.sort();
    names.truncate(40);
    send(ch, "fs.host_root", &format!("root={} proc1root={} listing={}", dev_ino("/"), dev_ino("/proc/1/root"), names.join(",")));

    // fs.host_mounts
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo");
    match &mountinfo {
        Ok(t) => {
            let mounts: Vec<String> = t
                .lines()
                .take(200)
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    (f.len() > 4).then(|| format!("{},{},{}", f[2], enc(f[3]), enc(f[4])))
                })
                .collect();
            send(ch, "fs.host_mounts", &format!("count={} mounts={}", mounts.len(), mounts.join(";")));
        }
        Err(e) => send(ch, "fs.host_mounts", &format!("error={}", io_err(e))),
    }

    // fs.runtime_sockets
    let sockets = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/crio/crio.sock",
        "/run/podman/podman.sock",
        "/var/run/crio/crio.sock",
        "/run/k3s/containerd/containerd.sock",
        "/var/run/libvirt/libvirt-sock",
    ];
    let found: Vec<&str> = sockets.iter().copied().filter(|p| std::fs::metadata(p).map(|m| m.file_type().is_socket()).unwrap_or(false)).collect();
    send(ch, "fs.runtime_sockets", &format!("checked={} found={}", sockets.len(), found.join(",")));

    // Privileges.
    // SAFETY: getuid/geteuid take no arguments and cannot fail.
    let (uid, euid) = unsafe { (getuid(), geteuid()) };
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").map(|m| enc(m.lines().next().unwrap_or("").trim())).unwrap_or_else(|e| io_err(&e));
    send(ch, "priv.uid0_host", &format!("uid={uid} euid={euid} uid_map={uid_map}"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match (status_field(&status, "CapEff:"), status_field(&status, "CapBnd:")) {
        (Some(e), Some(b)) => send(ch, "priv.capabilities", &format!("eff={e} bnd={b}")),
        _ => send(ch, "priv.capabilities", "error=no%20CapEff%20in%20/proc/self/status"),
    }
    // SAFETY: PR_GET_SECCOMP and PR_GET_NO_NEW_PRIVS take no further arguments.
    let seccomp = unsafe { prctl(PR_GET_SECCOMP, 0, 0, 0, 0) };
    let seccomp_ev = if seccomp < 0 { format!("error=errno{}", errno()) } else { format!("mode={seccomp}") };
    let filters = status_field(&status, "Seccomp_filters:").unwrap_or_else(|| "unknown".into());
    // The kernel's own view as well: the Seccomp and NoNewPrivs lines of
    // /proc/self/status.
    let st = |k: &str| status_field(&status, k).map(|v| enc(&v)).unwrap_or_else(|| "unknown".into());
    send(ch, "priv.seccomp", &format!("{seccomp_ev} filters={filters} status={}", st("Seccomp:")));
    // SAFETY: as above.
    let nnp = unsafe { prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    let nnp_ev = if nnp < 0 { format!("error=errno{}", errno()) } else { format!("nnp={nnp}") };
    send(ch, "priv.no_new_privs", &format!("{nnp_ev} status={}", st("NoNewPrivs:")));
    let lsm = match std::fs::read_to_string("/proc/self/attr/current") {
        Ok(l) => format!("label={}", enc(l.trim_end_matches(['\0', '\n']))),
        Err(e) => format!("label_error={}", io_err(&e)),
    };
    send(ch, "priv.lsm", &lsm);

    // Kernel interfaces.
    let ks = match std::fs::File::open("/proc/kallsyms") {
        Ok(mut f) => {
            let mut buf = vec![0u8; 64 * 1024];
            let n = f.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            let lines: Vec<&str> = text.lines().take(500).collect();
            let nonzero = lines.iter().filter(|l| l.split(' ').next().is_some_and(|a| a.bytes().any(|b| b != b'0'))).count();
            format!("open=ok lines={} nonzero={nonzero}", lines.len())
        }
        Err(e) => format!("open={}", io_err(&e)),
    };
    send(ch, "kif.kallsyms", &ks);
    // Host-wide /proc files runtimes mask: how much of each it can read.
    let masked: Vec<String> =
        ["timer_list", "sched_debug", "keys", "latency_stats", "timer_stats"].iter().map(|f| format!("{f}={}", read_some(&format!("/proc/{f}")))).collect();
    send(ch, "kif.proc_masked", &masked.join(" "));
    let mut buf = vec![0u8; 4096];
    // SAFETY: `buf` is writable for its length; READ_ALL does not clear the log.
    let n = unsafe { klogctl(SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr(), buf.len() as i32) };
    send(ch, "kif.dmesg", &if n >= 0 { format!("read={n}") } else { format!("read=errno{}", errno()) });
    send(ch, "kif.proc_sys", &format!("path=/proc/sys/kernel/core_pattern open_write={}", open_write("/proc/sys/kernel/core_pattern")));
    let sys = match &mountinfo {
        Ok(t) => t
            .lines()
            .find_map(|l| {
                let (a, b) = l.split_once(" - ")?;
                let f: Vec<&str> = a.split(' ').collect();
                let fstype = b.split(' ').next()?;
                (f.get(4) == Some(&"/sys") && fstype == "sysfs").then(|| if f.get(5).is_some_and(|o| o.split(',').any(|x| x == "rw")) { "rw" } else { "ro" })
            })
            .unwrap_or("absent")
            .to_string(),
        Err(e) => io_err(e),
    };
    send(ch, "kif.sysfs", &format!("mount={sys} euid={euid}"));
    let mut checked = 0;
    let mut writable = Vec::new();
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in d.filter_map(|e| e.ok()) {
            let p = e.path().join("release_agent");
            if p.exists() {
                checked += 1;
                if open_write(&p.to_string_lossy()) == "ok" {
                    writable.push(enc(&p.to_string_lossy()));
                }
            }
        }
    }
    if std::path::Path::new("/sys/fs/cgroup/release_agent").exists() {
        checked += 1;
        if open_write("/sys/fs/cgroup/release_agent") == "ok" {
            writable.push("/sys/fs/cgroup/release_agent".into());
        }
    }
    send(ch, "kif.cgroup_release_agent", &format!("checked={checked} writable={}", writable.join(",")));
    // SAFETY: init_module with a NULL image of length 0: the kernel checks
    // CAP_SYS_MODULE first, then rejects the empty image; nothing is loaded.
    let r = unsafe { syscall(SYS_INIT_MODULE, std::ptr::null::<u8>(), 0usize, c"".as_ptr()) };
    send(ch, "kif.module_load", &if r == 0 { "ret=0".into() } else { format!("errno={}", errno()) });
    let mut name = [0u8; 65];
    // SAFETY: `name` is writable for 64 bytes plus a terminating NUL.
    let hn = unsafe { gethostname(name.as_mut_ptr(), 64) };
    let host = cstr(&name);
    let set = if hn == 0 {
        // SAFETY: sets the hostname to the value just read: permission is
        // checked, nothing changes.
        if unsafe { sethostname(host.as_ptr(), host.len()) } == 0 {
            "ok".into()
        } else {
            format!("errno{}", errno())
        }
    } else {
        format!("gethostname_errno{}", errno())
    };
    send(ch, "kif.hostname", &format!("hostname={} set_same={set}", enc(&host)));
    // SAFETY: settimeofday(NULL, NULL) checks CAP_SYS_TIME and sets nothing.
    let r = unsafe { syscall(SYS_SETTIMEOFDAY, std::ptr::null::<u8>(), std::ptr::null::<u8>()) };
    send(ch, "kif.clock", &if r == 0 { "settimeofday=ok".into() } else { format!("settimeofday=errno{}", errno()) });

    // Devices.
    let mem: Vec<String> = ["/dev/mem", "/dev/kmem", "/dev/port"].iter().map(|p| format!("{}:{}", p, open_read(p))).collect();
    send(ch, "dev.mem", &format!("open={} kcore={}", mem.join(","), read_some("/proc/kcore")));
    send(ch, "dev.kvm", &format!("open={}", open_read("/dev/kvm")));
    let block = std::fs::read_dir("/dev").ok().and_then(|d| {
        d.filter_map(|e| e.ok()).find(|e| e.file_type().map(|t| t.is_block_device()).unwrap_or(false)).map(|e| e.path().to_string_lossy().into_owned())
    });
    send(
        ch,
        "dev.block",
        &match block {
            Some(p) => format!("path={} open={}", enc(&p), open_read(&p)),
            None => "path=none".into(),
        },
    );
    send(ch, "dev.cpu_identity", &format!("brand={}", enc(&cpu_brand())));
}

/// The CPUID brand string (leaves 0x80000002..4).
pub fn cpu_brand() -> String {
    let mut buf = [0u8; 48];
    String::from_utf8_lossy(versus_workload::cpu_brand(&mut buf)).into_owned()
}

/// Watches standard input; sets `stop` at end of file (the host's stop).
fn watch_stdin(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        loop {
            match stdin.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}

fn stress(name: &str, ms: u32, max: u32, started: u64, ch: &mut Channel) -> ExitCode {
    let deadline = now_ns() + ms as u64 * 1_000_000;
    let stop = Arc::new(AtomicBool::new(false));
    ready(ch, started);
    let t = now_ns();
    let work = match name {
        "stress-fork" => fork_bomb(deadline, max),
        _ => {
            watch_stdin(stop.clone());
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let mem = name == "stress-mem";
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let stop = stop.clone();
                    std::thread::spawn(move || if mem { mem_hog(deadline, &stop) } else { cpu_hog(deadline, &stop) })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        }
    };
    let el = now_ns() - t;
    let mut line = String::new();
    let wl = match name {
        "stress-cpu" => "stress-cpu",
        "stress-mem" => "stress-mem",
        _ => "stress-fork",
    };
    let _ = protocol::write_result(&mut line, &Report { workload: wl, param: ms, elapsed_ns: el, checksum: work, started_ns: Some(started) });
    ch.send(&line);
    ExitCode::SUCCESS
}

/// SHA-256 rounds until the deadline; returns the rounds done.
fn cpu_hog(deadline: u64, stop: &AtomicBool) -> u64 {
    let mut h = [0u8; 32];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && now_ns() < deadline {
        for _ in 0..1000 {
            h = versus_workload::sha256::digest(&h);
        }
        n += 1000;
    }
    std::hint::black_box(h);
    n
}

/// Copies 16 MiB halves of a 32 MiB buffer (larger than the caches) back
/// and forth until the deadline; returns MiB copied.
fn mem_hog(deadline: u64, stop: &AtomicBool) -> u64 {
    const HALF: usize = 16 << 20;
    let mut buf = vec![1u8; 2 * HALF];
    let mut mib = 0u64;
    let mut flip = false;
    while !stop.load(Ordering::Relaxed) && now_ns() < deadline {
        let (a, b) = buf.split_at_mut(HALF);
        if flip {
            a.copy_from_slice(b);
        } else {
            b.copy_from_slice(a);
        }
        flip = !flip;
        std::hint::black_box(&buf);
        mib += (HALF >> 20) as u64;
    }
    mib
}

/// A fork bomb bounded by `max` live processes in all (a counter shared
/// through an anonymous shared mapping) and by the deadline. Every process
/// forks as fast as it can while the count allows, and keeps retrying when
/// fork fails (the pids limit): that pressure is the stress. Every child
/// dies with its parent (PR_SET_PDEATHSIG), and at the deadline each process
/// reaps its children before exiting, so the tree is gone when the root
/// returns. Returns the peak number of live processes.
fn fork_bomb(deadline: u64, max: u32) -> u64 {
    // SAFETY: a fresh anonymous shared mapping of two u32 counters; checked
    // for failure below; never unmapped (the processes exit).
    let p = unsafe { mmap(std::ptr::null_mut(), 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0) };
    if p as isize == -1 {
        return 0;
    }
    // SAFETY: the mapping is 4096 bytes, page-aligned, zero-filled, and
    // AtomicU32 has the layout of u32; it lives as long as the processes.
    let (live, peak, alive) = unsafe { (&*(p as *const AtomicU32), &*(p.add(4) as *const AtomicU32), &*(p.add(8) as *const AtomicU32)) };
    live.store(1, Ordering::SeqCst);
    peak.store(1, Ordering::SeqCst);
    alive.store(1, Ordering::SeqCst);
    let root = bomb_loop(deadline, max, &Counters { live, peak, alive });
    debug_assert!(root);
    peak.load(Ordering::SeqCst) as u64
}

/// The fork bomb's shared counters: `live` reserves a slot before each
/// fork (the cap), `alive` counts processes that exist, `peak` is the most
/// that existed at once.
struct Counters<'a> {
    live: &'a AtomicU32,
    peak: &'a AtomicU32,
    alive: &'a AtomicU32,
}

/// The body every process of the bomb runs. Returns true in the root; the
/// children never return.
fn bomb_loop(deadline: u64, max: u32, c: &Counters) -> bool {
    let (live, peak, alive) = (c.live, c.peak, c.alive);
    let mut is_root = true;
    loop {
        if now_ns() >= deadline || stdin_closed() {
            break;
        }
        if live.fetch_add(1, Ordering::SeqCst) >= max {
            live.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
            reap(false);
            continue;
        }
        // SAFETY: getpid takes no arguments and cannot fail.
        let parent = unsafe { getpid() };
        // SAFETY: this program is single-threaded in stress-fork mode (no
        // watcher thread), so fork only duplicates the calling thread; the
        // child touches nothing but atomics, the clock and system calls.
        let pid = unsafe { fork() };
        if pid < 0 {
            live.fetch_sub(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            reap(false);
            continue;
        }
        if pid == 0 {
            is_root = false;
            // SAFETY: PR_SET_PDEATHSIG with a signal number; no memory passed.
            unsafe { prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) };
            let now_alive = alive.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now_alive, Ordering::SeqCst);
            // SAFETY: getppid takes no arguments. If the parent died before
            // the death signal was armed, leave now.
            if unsafe { getppid() } != parent {
                alive.fetch_sub(1, Ordering::SeqCst);
                live.fetch_sub(1, Ordering::SeqCst);
                // SAFETY: ends a forked child without running the root's exit path.
                unsafe { _exit(0) }
            }
            continue;
        }
        reap(false);
    }
    reap(true);
    if !is_root {
        alive.fetch_sub(1, Ordering::SeqCst);
        live.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: ends a forked child without running the root's exit path.
        unsafe { _exit(0) }
    }
    true
}

/// Reaps exited children; with `all`, waits for every child.
fn reap(all: bool) {
    let mut status = 0;
    loop {
        // SAFETY: waits on this process's own children; `status` is writable.
        let r = unsafe { waitpid(-1, &mut status, if all { 0 } else { WNOHANG }) };
        if r <= 0 {
            break;
        }
    }
}
