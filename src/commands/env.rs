//! `versus env`: the host fingerprint.

use std::process::ExitCode;

use clap::Args;
use versus::host::{Host, KvmMode};

#[derive(Args, Debug)]
pub struct EnvArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The fingerprint plus the host measurements every report carries: the
/// guest supervisor/user loop speed ratio that tells hardware-assisted KVM
/// from a host where guest kernel code is emulated.
pub fn fingerprint() -> (Host, serde_json::Value) {
    let host = Host::detect();
    let kvm_speed = if host.kvm_device {
        match versus::platform::vm::speed::measure() {
            Ok(s) => serde_json::json!({
                "cpl0_iters_per_s": s.cpl0_iters_per_s,
                "cpl3_iters_per_s": s.cpl3_iters_per_s,
                "user_to_supervisor_ratio": s.ratio,
                "supervisor_emulated": s.supervisor_emulated(),
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        }
    } else {
        serde_json::json!({ "error": "no /dev/kvm" })
    };
    (host, serde_json::json!({ "kvm_speed": kvm_speed }))
}

pub fn run(a: EnvArgs) -> anyhow::Result<ExitCode> {
    let (h, m) = fingerprint();
    if a.json {
        let mut v = serde_json::to_value(&h)?;
        v["measurements"] = m;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("host          {}", h.hostname);
    println!("kernel        {}", h.kernel);
    println!("distribution  {}", h.distribution);
    println!("cpu           {} ({} cores)", h.cpu_model, h.cores);
    println!("memory        {:.1} GiB", h.memory_bytes as f64 / (1u64 << 30) as f64);
    println!("cgroups       {:?} [{}]", h.cgroup_mode, h.cgroup_controllers.join(", "));
    println!("root          {}", yes(h.is_root));
    println!("user ns       {}", yes(h.user_namespaces));
    println!("overlayfs     {}", yes(h.overlayfs));
    let kvm = match &h.kvm_mode {
        KvmMode::Absent => "absent".to_string(),
        KvmMode::Hardware { module, nested_host } => format!("hardware-assisted ({module}{})", if *nested_host { ", this host is itself a guest: nested" } else { "" }),
        KvmMode::Pvm => "kvm_pvm: guest kernel code is emulated".to_string(),
        KvmMode::Unknown => "present, module not recognised".to_string(),
    };
    println!("kvm           {kvm}");
    let sp = &m["kvm_speed"];
    match (sp["cpl3_iters_per_s"].as_f64(), sp["cpl0_iters_per_s"].as_f64(), sp["user_to_supervisor_ratio"].as_f64()) {
        (Some(u), Some(k), Some(r)) => {
            println!("  guest loop  user mode {:.3e}/s, supervisor mode {:.3e}/s: supervisor is {r:.0}x slower", u, k);
            if sp["supervisor_emulated"].as_bool() == Some(true) {
                println!("              guest kernel code is emulated here: vm-linux numbers are not representative");
            }
        }
        _ => println!("  guest loop  not measured: {}", sp["error"].as_str().unwrap_or("unknown error")),
    }
    println!("ksm           {}", h.ksm.as_deref().unwrap_or("unknown"));
    println!("thp           {}", h.transparent_hugepages.as_deref().unwrap_or("unknown"));
    for p in &h.peers {
        println!("peer {:<9} {}", p.name, p.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not installed".into()));
    }
    Ok(ExitCode::SUCCESS)
}
