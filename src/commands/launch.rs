//! `versus launch <platform>`: one launch, phase times printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use versus::platform::container::Profile;
use versus::platform::registry::{self, PlatformOptions};
use versus::platform::LaunchSpec;
use versus::runner;
use versus::workload::WorkloadSpec;

#[derive(Args, Debug)]
pub struct LaunchArgs {
    /// Platform: process, container, vm-bare, vm-linux, ...
    pub platform: String,
    /// Workload (`ready`, `cpu[:rounds]`, `mem[:MiB]`, `call[:n]`, `idle[:MiB]`).
    #[arg(short, long, default_value = "ready")]
    pub workload: WorkloadSpec,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for each step of the launch.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// Run the platform even where its numbers are not representative.
    #[arg(long)]
    pub force: bool,
    /// Kernel image for vm-linux (vmlinux or bzImage).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Stream a VM guest's serial console to stderr.
    #[arg(long)]
    pub console: bool,
    /// The container platform's security profile: `default` (what runc and
    /// Docker apply: 14 capabilities, seccomp, no_new_privs, masked /proc
    /// paths) or `privileged` (namespaces, cgroup and read-only rootfs only).
    #[arg(long, default_value = "default")]
    pub container_profile: Profile,
    /// vm-linux: boot on this raw ext4 disk of an OS image (`versus image
    /// disk debian PATH`) as root, and print the image digest the guest
    /// reports (use with `-w image-check`).
    #[arg(long)]
    pub root_disk: Option<PathBuf>,
}

/// The longest wait versus accepts, in seconds (a day).
pub const MAX_SECS: f64 = 86_400.0;

pub fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_SECS => Ok(v),
        Ok(v) if v > MAX_SECS => Err(format!("`{s}` seconds is more than a day; give at most {MAX_SECS}")),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

pub fn run(a: LaunchArgs) -> anyhow::Result<ExitCode> {
    registry::validate(std::slice::from_ref(&a.platform))?;
    let popts = PlatformOptions { force: a.force, kernel: a.kernel.clone(), console: a.console, container_profile: a.container_profile };
    let platform = registry::create(&a.platform, &popts).map_err(|why| anyhow::anyhow!("cannot launch {}: {why}", a.platform))?;
    let mut spec = LaunchSpec::new(a.workload);
    spec.timeout = Duration::from_secs_f64(a.timeout);
    if let Some(disk) = &a.root_disk {
        spec.root = Some(versus::platform::InstanceRoot::Disk { path: disk.clone(), kernel: None, initrd: None });
        let mut inst = platform.launch(&spec).with_context(|| format!("{} on the disk {}", a.platform, disk.display()))?;
        let r = inst.read_result(spec.timeout).context("reading the guest's image digest")?;
        let digest = r.checksum().unwrap_or("none").to_string();
        let boot_ms = inst.boot().total_ms();
        inst.stop().context("stopping the guest")?;
        println!("{} {} root={}", a.platform, a.workload, disk.display());
        println!("  boot {boot_ms:.1} ms");
        println!("  image digest: {digest}");
        return Ok(ExitCode::SUCCESS);
    }
    let rec = runner::launch_once(platform.as_ref(), &spec).with_context(|| format!("{} {}", a.platform, a.workload))?;
    if a.json {
        let rows: Vec<_> = rec.rows.iter().map(|(m, v)| serde_json::json!({"metric": m.to_string(), "unit": m.unit(), "value": v})).collect();
        let results: Vec<_> = rec.finished.results.iter().map(|r| &r.fields).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "platform": a.platform, "workload": a.workload.to_string(), "rows": rows, "results": results,
                "notes": platform.notes(), "representative": platform.representative().err(),
            }))?
        );
    } else {
        println!("{} {}", a.platform, a.workload);
        for (m, v) in &rec.rows {
            println!("  {:<22}{:>12.3} {}", m.to_string(), v, m.unit());
        }
        if let Err(why) = platform.representative() {
            println!("  note: not representative on this host: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
