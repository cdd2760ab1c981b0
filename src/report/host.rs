//! The host section: the fingerprint (how KVM is provided first), the host
//! measurements, and each platform's status.

use std::fmt::Write as _;

use super::{civil, grouped_table, table, Ctx};
use crate::chart::fmt_bytes;
use crate::model::RunStatus;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String) {
    let _ = writeln!(o, "## Host\n");
    let Some(e) = &ctx.f.env else {
        let _ = writeln!(o, "No env.json in this run: the host fingerprint is unknown.\n");
        return;
    };
    let h = &e.host;
    let or_unknown = |s: &str| if s.is_empty() { "unknown".to_string() } else { s.to_string() };
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "unknown".into());
    let peers: Vec<String> = h
        .peers
        .iter()
        .filter(|p| p.path.is_some())
        .map(|p| match p.version.as_deref().and_then(crate::host::version_number) {
            Some(v) => format!("{} {v}", p.name),
            None => p.name.clone(),
        })
        .collect();
    let rows = vec![
        vec!["KVM".into(), h.kvm_mode.describe()],
        vec!["CPU emulation".into(), h.cpu_emulated.clone().unwrap_or_else(|| "none detected: the CPU runs natively or hardware-virtualized".into())],
        vec!["kernel".into(), or_unknown(&h.kernel)],
        vec!["distribution".into(), or_unknown(&h.distribution)],
        vec!["CPU".into(), format!("{} ({} cores)", or_unknown(&h.cpu_model), h.cores)],
        vec!["memory".into(), if h.memory_bytes > 0 { fmt_bytes(h.memory_bytes as f64) } else { "unknown".into() }],
        vec![
            "cgroups".into(),
            format!(
                "{} ({})",
                serde_json::to_value(h.cgroup_mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                h.cgroup_controllers.join(", ")
            ),
        ],
        vec!["KSM".into(), opt(&h.ksm)],
        vec!["transparent huge pages".into(), opt(&h.transparent_hugepages)],
        vec!["root / user namespaces / overlayfs".into(), format!("{} / {} / {}", h.is_root, h.user_namespaces, h.overlayfs)],
        vec!["peers installed".into(), if peers.is_empty() { "none".into() } else { peers.join(", ") }],
        vec!["versus".into(), format!("{} ({})", e.versus_version, e.git_revision.clone().unwrap_or_else(|| "revision unknown".into()))],
        vec!["started".into(), civil(e.started_at_unix)],
        vec!["command".into(), format!("`{}`", e.command_line.join(" "))],
    ];
    table(o, &["", ""], &rows);
    let k = &e.host_measurements.kvm_speed;
    let _ = writeln!(o, "Host measurements:\n");
    match (k.cpl3_iters_per_s, k.cpl0_iters_per_s, k.user_to_supervisor_ratio) {
        (Some(u), Some(s), Some(r)) => {
            let host = k.host_iters_per_s.map(|h| format!(", natively {h:.3e}/s")).unwrap_or_default();
            let verdict = match (k.verdict.as_deref(), &k.verdict_reason) {
                (Some("native"), _) => ": guest kernel code runs at hardware speed".to_string(),
                (Some("emulated"), _) => format!(": guest kernel code is emulated on this host (ratio above {})", versus_vmm::speed::EMULATED_ABOVE),
                (Some("undetermined"), Some(why)) => format!(": undetermined, {why}"),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "- `kvm_speed`: a guest loop runs {u:.3e}/s in guest user mode and {s:.3e}/s in guest supervisor mode{host} (ratio {r:.1}){verdict}"
            );
        }
        _ => {
            let _ = writeln!(o, "- `kvm_speed`: not measured: {}", k.error.clone().unwrap_or_else(|| "not recorded".into()));
        }
    }
    let judged = match crate::host::guest_kernel_speed(&h.kvm_mode, k) {
        crate::host::GuestKernelSpeed::Native => {
            "the KVM module and the measured loops agree: guest kernel code runs natively, a Linux guest is representative here".to_string()
        }
        crate::host::GuestKernelSpeed::NotNative(why) => format!("a Linux guest is not representative here: {why}"),
    };
    let _ = writeln!(o, "- guest kernels: {judged}\n");
    let _ = writeln!(o, "### Platforms\n");
    let rows: Vec<(String, Vec<String>)> = e
        .platforms
        .iter()
        .map(|p| {
            (
                p.platform.clone(),
                vec![
                    p.platform.clone(),
                    p.status.to_string(),
                    if p.status != RunStatus::Ran {
                        "-".into()
                    } else if p.representative {
                        "yes".into()
                    } else {
                        format!("no: {}", p.representative_note.clone().unwrap_or_default())
                    },
                    match (&p.reason, p.notes.len()) {
                        (Some(r), _) => r.clone(),
                        (None, 0) => "-".into(),
                        (None, n) => format!("{n} notes, below"),
                    },
                ],
            )
        })
        .collect();
    grouped_table(o, &["platform", "status", "representative", "reason / notes"], rows);
    let mut noted: Vec<&crate::model::PlatformStatus> = e.platforms.iter().filter(|p| p.reason.is_none() && !p.notes.is_empty()).collect();
    noted.sort_by_key(|p| (crate::platform::registry::info(&p.platform).map(|i| i.group), crate::platform::registry::order(&p.platform)));
    for p in noted {
        let _ = writeln!(o, "Notes of `{}`:\n", p.platform);
        for n in &p.notes {
            let _ = writeln!(o, "- {n}");
        }
        o.push('\n');
    }
}
