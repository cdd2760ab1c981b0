//! Builds the programs that run inside the sandboxes and hands their paths to
//! the crate, which embeds them:
//!
//! - `harness/guest`: the workload program, a static (crt-static) Linux
//!   binary run as a process, as a container's pid 1 and as a guest's /init;
//! - `harness/vmm`: `versus-vmm`, the VMM (crates/vmm) as a static
//!   (crt-static) process of its own, for honest memory figures.
//!
//! Both in one nested build (harness/nested_cargo.rs: profile `sandbox`,
//! crt-static, offline), sharing their dependencies. (The kernel-less
//! guest, harness/bare, is built by crates/vmm's build script.)

use std::path::PathBuf;

#[path = "harness/nested_cargo.rs"]
mod nested_cargo;
use nested_cargo::nested_cargo;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    for p in [
        "Cargo.toml",
        "Cargo.lock",
        "harness/nested_cargo.rs",
        "harness/guest/src",
        "harness/guest/Cargo.toml",
        "harness/vmm/src",
        "harness/vmm/Cargo.toml",
        "crates/workload/src",
        "crates/workload/Cargo.toml",
        "crates/vmm/src",
        "crates/vmm/Cargo.toml",
        "crates/vmm/build.rs",
        "harness/bare/src",
        "harness/bare/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    // The VMM process is linked statically (as Firecracker is) so that its
    // resident memory is its own: a dynamically linked one maps about
    // 1.2 MiB of glibc that mem.vmm would count.
    let dir = nested_cargo(&root, &["versus-guest", "versus-vmm-bin"], &[], "static", &["-C", "target-feature=+crt-static"]);
    git_revision(&root);
    println!("cargo:rustc-env=VERSUS_GUEST_BIN={}", dir.join("versus-guest").display());
    println!("cargo:rustc-env=VERSUS_VMM_BIN={}", dir.join("versus-vmm").display());
}

/// `VERSUS_GIT_REVISION` for env.json: the commit versus is built from
/// (`git describe --always`), when the source is a git checkout. Reruns
/// when HEAD moves (not on every edit: a dirty tree is not marked).
fn git_revision(root: &std::path::Path) {
    let git = root.join(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed={}", git.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", git.join("packed-refs").display());
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
            if let Some(r) = head.trim().strip_prefix("ref: ") {
                println!("cargo:rerun-if-changed={}", git.join(r).display());
            }
        }
    }
    let out = std::process::Command::new("git").arg("-C").arg(root).args(["describe", "--always", "--abbrev=12"]).output();
    if let Ok(o) = out {
        let rev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !rev.is_empty() {
            println!("cargo:rustc-env=VERSUS_GIT_REVISION={rev}");
        }
    }
}
