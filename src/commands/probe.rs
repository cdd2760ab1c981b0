//! `versus probe`: the isolation probe matrix alone.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use versus::experiment::probes;
use versus::model::ProbeRow;
use versus::platform::container::Profile;
use versus::platform::registry::{self, PlatformOptions};

use super::launch::parse_secs;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Platforms to probe (comma-separated).
    #[arg(short, long, value_delimiter = ',', default_value = "process,container,vm-bare")]
    pub platforms: Vec<String>,
    /// Seconds allowed for each platform's probe run.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// Print probes.csv rows (CSV) instead of the matrix.
    #[arg(long)]
    pub csv: bool,
    /// The container platform's security profile: `default` (what runc and
    /// Docker apply: 14 capabilities, seccomp, no_new_privs, masked /proc
    /// paths) or `privileged` (namespaces, cgroup and read-only rootfs only).
    #[arg(long, default_value = "default")]
    pub container_profile: Profile,
}

pub fn run(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    registry::validate(&a.platforms)?;
    let mut rows: Vec<ProbeRow> = Vec::new();
    let mut failed = false;
    let popts = PlatformOptions { container_profile: a.container_profile, ..PlatformOptions::default() };
    if a.platforms.iter().any(|p| p == "container") {
        eprintln!("container: {}", a.container_profile.describe());
    }
    for name in &a.platforms {
        match registry::create(name, &popts) {
            Ok(p) => match probes::run_probes(p.as_ref(), Duration::from_secs_f64(a.timeout)) {
                Ok(r) => rows.extend(r),
                Err(e) => {
                    eprintln!("{name}: probes failed: {e}");
                    failed = true;
                }
            },
            Err(why) => eprintln!("skipping {name}: {why}"),
        }
    }
    if a.csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        for r in &rows {
            w.serialize(r)?;
        }
        w.flush()?;
    } else {
        print!("{}", matrix(&rows));
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Probes as rows, platforms as columns.
fn matrix(rows: &[ProbeRow]) -> String {
    let mut platforms: Vec<&str> = Vec::new();
    let mut ids: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !platforms.contains(&r.platform.as_str()) {
            platforms.push(&r.platform);
        }
        if !ids.iter().any(|(i, _)| *i == r.probe) {
            ids.push((&r.probe, &r.category));
        }
    }
    let mut out = format!("{:<26}{:<20}", "probe", "category");
    for p in &platforms {
        out.push_str(&format!("{p:<16}"));
    }
    out.push('\n');
    for (id, cat) in ids {
        out.push_str(&format!("{id:<26}{cat:<20}"));
        for p in &platforms {
            let r = rows.iter().find(|r| r.platform == *p && r.probe == id).map(|r| r.result.to_string()).unwrap_or_else(|| "-".into());
            out.push_str(&format!("{r:<16}"));
        }
        out.push('\n');
    }
    out
}
