//! `versus env`: the host fingerprint.

use std::process::ExitCode;

use clap::Args;
use versus::host::fingerprint;

#[derive(Args, Debug)]
pub struct EnvArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: EnvArgs) -> anyhow::Result<ExitCode> {
    let (h, m) = fingerprint();
    if a.json {
        let mut v = serde_json::to_value(&h)?;
        v["measurements"] = serde_json::to_value(&m)?;
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
    println!("kvm           {}", h.kvm_mode.describe());
    if let Some(why) = &h.cpu_emulated {
        println!("  emulated    {why}");
    }
    let sp = &m.kvm_speed;
    match (sp.cpl3_iters_per_s, sp.cpl0_iters_per_s, sp.user_to_supervisor_ratio) {
        (Some(u), Some(k), Some(r)) => {
            println!("  guest loop  user mode {u:.3e}/s, supervisor mode {k:.3e}/s (ratio {r:.0}); natively {:.3e}/s", sp.host_iters_per_s.unwrap_or(f64::NAN));
            match (sp.verdict.as_deref(), &sp.verdict_reason) {
                (Some("undetermined"), Some(why)) => println!("              undetermined: {why}"),
                (Some(v), _) => println!("              verdict: guest supervisor code {}", if v == "emulated" { "is emulated" } else { "runs natively" }),
                _ => {}
            }
        }
        _ => println!("  guest loop  not measured: {}", sp.error.as_deref().unwrap_or("unknown error")),
    }
    match versus::host::guest_kernel_speed(&h.kvm_mode, sp) {
        versus::host::GuestKernelSpeed::Native => println!("  guest kernels run natively: vm-linux numbers are representative"),
        versus::host::GuestKernelSpeed::NotNative(why) => println!("  vm-linux numbers are not representative: {why}"),
    }
    println!("ksm           {}", h.ksm.as_deref().unwrap_or("unknown"));
    println!("thp           {}", h.transparent_hugepages.as_deref().unwrap_or("unknown"));
    for p in &h.peers {
        let at = match (&p.path, &p.version) {
            (Some(path), Some(v)) => format!("{v} ({})", path.display()),
            (Some(path), None) => format!("{} (its --version did not answer)", path.display()),
            (None, _) => "not installed".into(),
        };
        println!("peer {:<18} {at}", p.name);
    }
    Ok(ExitCode::SUCCESS)
}
