//! The /init mode: when this program is pid 1 of a `vm-linux` guest (argv[0]
//! is `/init`), it
//!
//! 1. signals boot-done at once: a 32-bit `out` of the magic to the
//!    boot-done port (after ioperm(2), since even root needs I/O permission);
//! 2. mounts /proc (for the command line) and devtmpfs on /dev (for the
//!    serial ports);
//! 3. reads the workload from the kernel command line
//!    (`versus.args=cpu,1000`: the argument vector, comma-separated);
//! 4. with `root=/dev/vda` on the command line (a guest booted on an OS
//!    image's disk), loads the kernel modules the initramfs carries
//!    (/lib/modules/modules.order: virtio_mmio, virtio_blk and their
//!    dependencies, with finit_module(2)), waits for the disk, mounts it
//!    (ext4, read-write unless `ro`), mounts /dev, /proc and /sys in it,
//!    chroots into it and runs the image's `init=` program (default
//!    /versus-init) instead of itself in step 5, so the workload sees the
//!    disk as its root;
//! 5. runs this same program as a child with `--fd 3` and the serial port
//!    COM2 (/dev/ttyS1) as fd 3, so the workload speaks the same protocol as
//!    everywhere else, on a line that kernel messages never touch;
//! 6. when the child ends, reboots: with `reboot=k` the kernel resets the
//!    CPU through the i8042, which ends the VM (a power-off without ACPI
//!    would only halt).
//!
//! Must match `src/platform/vm/devices/boot_done.rs` (port, magic) and
//! `src/platform/vm/linux/mod.rs` (command-line key, channel tty).

use std::ffi::CString;
use std::process::ExitCode;

/// `devices::boot_done::BOOT_DONE_PORT` / `BOOT_DONE_MAGIC` on the host.
pub const BOOT_DONE_PORT: u16 = 0x0440;
pub const BOOT_DONE_MAGIC: u32 = 0x5353_5256;
/// The kernel command-line key carrying the workload's arguments.
pub const ARGS_KEY: &str = "versus.args=";
/// The workload channel (COM2).
pub const CHANNEL_TTY: &str = "/dev/ttyS1";

extern "C" {
    fn ioperm(from: u64, num: u64, turn_on: i32) -> i32;
    fn mount(src: *const i8, target: *const i8, fstype: *const i8, flags: u64, data: *const u8) -> i32;
    fn mkdir(path: *const i8, mode: u32) -> i32;
    fn open(path: *const i8, flags: i32, ...) -> i32;
    fn dup2(old: i32, new: i32) -> i32;
    fn close(fd: i32) -> i32;
    fn fork() -> i32;
    fn execv(path: *const i8, argv: *const *const i8) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn reboot(cmd: i32) -> i32;
    fn sync();
    fn getpid() -> i32;
    fn chroot(path: *const i8) -> i32;
    fn chdir(path: *const i8) -> i32;
    fn syscall(num: i64, ...) -> i64;
    fn _exit(code: i32) -> !;
}

const O_RDWR: i32 = 2;
const O_NOCTTY: i32 = 0o400;
const RB_AUTOBOOT: i32 = 0x0123_4567;
const MS_RDONLY: u64 = 1;
const SYS_FINIT_MODULE: i64 = 313;
const EEXIST: i32 = 17;

/// The kernel command-line keys of a guest booted on a disk.
pub const ROOT_KEY: &str = "root=";
pub const INIT_KEY: &str = "init=";
/// The program the image's disk holds for the workload
/// (`src/image/disk.rs`'s INIT_PATH).
pub const DEFAULT_DISK_INIT: &str = "/versus-init";
/// Where the initramfs of a disk boot keeps its modules, and their order.
pub const MODULES_DIR: &str = "/lib/modules";
/// Where the disk is mounted before the chroot.
const NEW_ROOT: &str = "/newroot";

/// `Some(exit code)` when this process is a guest's /init (and then it
/// never really returns: it reboots the VM); `None` otherwise.
pub fn dispatch() -> Option<ExitCode> {
    // SAFETY: getpid has no preconditions.
    if unsafe { getpid() } != 1 {
        return None;
    }
    // The kernel starts /init with no arguments; a container's pid 1 is the
    // same program as /init too, but always gets its workload as arguments.
    let mut args = std::env::args();
    if args.next().as_deref() != Some("/init") || args.next().is_some() {
        return None;
    }
    signal_boot_done();
    run_as_init();
    poweroff();
}

fn signal_boot_done() {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { ioperm(BOOT_DONE_PORT as u64, 4, 1) } != 0 {
        eprintln!("versus-init: ioperm failed; boot-done not signalled");
        return;
    }
    // SAFETY: the port is granted by ioperm above and belongs to versus'
    // boot-done device; a 32-bit OUT has no memory effects.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") BOOT_DONE_PORT, in("eax") BOOT_DONE_MAGIC, options(nomem, nostack, preserves_flags));
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn mount_fs(fstype: &str, target: &str) {
    let (t, f) = (cstr(target), cstr(fstype));
    // SAFETY: valid NUL-terminated strings that outlive the calls.
    unsafe {
        mkdir(t.as_ptr(), 0o755);
        if mount(f.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) != 0 {
            eprintln!("versus-init: mounting {fstype} on {target} failed: {}", std::io::Error::last_os_error());
        }
    }
}

/// The value of `key` (e.g. `root=`) on the kernel command line.
pub fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key)).filter(|v| !v.is_empty())
}

/// Loads the modules listed in /lib/modules/modules.order, in order.
fn load_modules() -> Result<(), String> {
    let order = std::fs::read_to_string(format!("{MODULES_DIR}/modules.order"))
        .map_err(|e| format!("no {MODULES_DIR}/modules.order in the initramfs ({e}): it cannot load the disk's drivers"))?;
    let empty = cstr("");
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = format!("{MODULES_DIR}/{name}.ko");
        let f = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: finit_module reads the open module file and the empty,
        // NUL-terminated parameter string; no other memory is passed.
        let r = unsafe { syscall(SYS_FINIT_MODULE, f.as_raw_fd() as i64, empty.as_ptr(), 0i64) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(EEXIST) {
                return Err(format!("loading the module {name}: {e}"));
            }
        }
    }
    Ok(())
}

/// Mounts `dev` (ext4) as the new root, with /dev, /proc and /sys, and
/// chroots into it.
fn enter_disk_root(dev: &str, read_only: bool) -> Result<(), String> {
    let t0 = std::time::Instant::now();
    while !std::path::Path::new(dev).exists() {
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            return Err(format!("{dev} did not appear within 20 s of loading virtio_mmio and virtio_blk (no virtio-mmio device announced?)"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (d, t, f) = (cstr(dev), cstr(NEW_ROOT), cstr("ext4"));
    // SAFETY: valid NUL-terminated strings that outlive the calls.
    unsafe {
        mkdir(t.as_ptr(), 0o755);
        if mount(d.as_ptr(), t.as_ptr(), f.as_ptr(), if read_only { MS_RDONLY } else { 0 }, std::ptr::null()) != 0 {
            return Err(format!("mounting {dev} (ext4) on {NEW_ROOT}: {}", std::io::Error::last_os_error()));
        }
    }
    mount_fs("devtmpfs", &format!("{NEW_ROOT}/dev"));
    mount_fs("proc", &format!("{NEW_ROOT}/proc"));
    mount_fs("sysfs", &format!("{NEW_ROOT}/sys"));
    let dot = cstr(".");
    let slash = cstr("/");
    // SAFETY: valid NUL-terminated paths; as pid 1 we hold CAP_SYS_CHROOT.
    unsafe {
        if chdir(t.as_ptr()) != 0 || chroot(dot.as_ptr()) != 0 || chdir(slash.as_ptr()) != 0 {
            return Err(format!("chroot into {NEW_ROOT}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The workload's argument vector from the kernel command line.
pub fn args_from_cmdline(cmdline: &str) -> Option<Vec<String>> {
    let v = cmdline.split_whitespace().find_map(|w| w.strip_prefix(ARGS_KEY))?;
    let args: Vec<String> = v.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
    (!args.is_empty()).then_some(args)
}

fn run_as_init() {
    mount_fs("proc", "/proc");
    mount_fs("devtmpfs", "/dev");
    mount_fs("sysfs", "/sys");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let Some(args) = args_from_cmdline(&cmdline) else {
        eprintln!("versus-init: no `{ARGS_KEY}` on the kernel command line: nothing to run");
        return;
    };
    let tty = cstr(CHANNEL_TTY);
    // SAFETY: a valid path; the fd is handed to the child as fd 3.
    let fd = unsafe { open(tty.as_ptr(), O_RDWR | O_NOCTTY) };
    if fd < 0 {
        eprintln!("versus-init: cannot open {CHANNEL_TTY}: {}", std::io::Error::last_os_error());
        return;
    }
    // On a disk: the drivers, the mount, the chroot; then the image's program.
    let mut program = "/init".to_string();
    if let Some(dev) = param(&cmdline, ROOT_KEY) {
        let read_only = cmdline.split_whitespace().any(|w| w == "ro");
        if let Err(why) = load_modules().and_then(|()| enter_disk_root(dev, read_only)) {
            eprintln!("versus-init: {why}");
            // The host reads the channel: say it there too, so the launch
            // fails with the reason instead of a timeout.
            use std::io::Write;
            use std::os::fd::FromRawFd;
            // SAFETY: `fd` is open and ours; the File closes it on drop.
            let mut ch = unsafe { std::fs::File::from_raw_fd(fd) };
            let _ = ch.write_all(format!("ABORT versus-init: {why}\n").as_bytes());
            return;
        }
        program = param(&cmdline, INIT_KEY).unwrap_or(DEFAULT_DISK_INIT).to_string();
    }
    let mut argv_s = vec![cstr("versus-guest"), cstr("--fd"), cstr("3")];
    argv_s.extend(args.iter().map(|a| cstr(a)));
    let mut argv: Vec<*const i8> = argv_s.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let path = cstr(&program);
    // SAFETY: fork in a single-threaded process; the child only calls
    // async-signal-safe functions (dup2, close, execv, _exit) before exec.
    let pid = unsafe { fork() };
    if pid == 0 {
        // SAFETY: see above; argv is NULL-terminated and outlives execv.
        unsafe {
            if fd != 3 {
                dup2(fd, 3);
                close(fd);
            }
            execv(path.as_ptr(), argv.as_ptr());
            _exit(127);
        }
    }
    if pid < 0 {
        eprintln!("versus-init: fork failed: {}", std::io::Error::last_os_error());
        return;
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    if unsafe { waitpid(pid, &mut status, 0) } == pid && status != 0 {
        // The host only sees the guest reboot: say why on the console.
        match (status & 0x7f, (status >> 8) & 0xff) {
            (0, code) => eprintln!("versus-init: the workload exited with status {code}"),
            (sig, _) => eprintln!("versus-init: the workload was killed by signal {sig}"),
        }
    }
}

fn poweroff() -> ! {
    // SAFETY: sync and reboot have no memory preconditions; as pid 1 in the
    // guest we hold CAP_SYS_BOOT.
    unsafe {
        sync();
        reboot(RB_AUTOBOOT);
        // Only reached if reboot failed: leaving pid 1 panics the kernel,
        // and `panic=-1` reboots it.
        _exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_read_from_the_command_line() {
        assert_eq!(args_from_cmdline("console=ttyS0 versus.args=cpu,1000 quiet"), Some(vec!["cpu".to_string(), "1000".to_string()]));
        assert_eq!(args_from_cmdline("versus.args=ready\n"), Some(vec!["ready".to_string()]));
        assert_eq!(args_from_cmdline("console=ttyS0"), None);
        assert_eq!(args_from_cmdline("versus.args="), None);
    }

    #[test]
    fn a_disk_boot_is_read_from_the_command_line() {
        let c = "console=ttyS0 rdinit=/init root=/dev/vda rw init=/versus-init versus.args=image-check,0";
        assert_eq!((param(c, ROOT_KEY), param(c, INIT_KEY)), (Some("/dev/vda"), Some("/versus-init")));
        // rdinit= is not init=.
        assert_eq!(param("rdinit=/init", INIT_KEY), None);
        assert_eq!(param("console=ttyS0 root=", ROOT_KEY), None);
    }
}
