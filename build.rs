//! Builds the programs that run inside the sandboxes and hands their paths to
//! the crate, which embeds them:
//!
//! - `harness/guest`: the workload program, a static (crt-static) Linux
//!   binary run as a process, as a container's pid 1 and as a guest's /init;
//! - `harness/vmm`: `versus-vmm`, the vm-bare VMM (crates/vmm) as a static
//!   (crt-static) process of its own, for honest memory figures.
//!
//! Each is its own Cargo package outside the workspace (it needs other
//! rustflags and `panic = "abort"`), built by a nested `cargo build` into a
//! target directory under OUT_DIR. They depend on nothing but the
//! workspace's own crates and crates the outer build already fetched, so
//! the nested build runs offline. (The kernel-less guest, harness/bare, is
//! built by crates/vmm's build script.)

use std::path::PathBuf;

#[path = "harness/nested_cargo.rs"]
mod nested_cargo;
use nested_cargo::nested_cargo;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    for p in ["harness/nested_cargo.rs", "harness/guest/src", "harness/guest/Cargo.toml", "crates/workload/src", "crates/workload/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let guest_dir = nested_cargo(&root.join("harness/guest"), &out.join("harness-guest"), &["-C", "target-feature=+crt-static"]);
    println!("cargo:rustc-env=VERSUS_GUEST_BIN={}", guest_dir.join("versus-guest").display());

    // The vm-bare VMM as a process of its own, linked statically (as
    // Firecracker is) so its resident memory is its own: a dynamically
    // linked one maps about 1.2 MiB of glibc that mem.vmm would count.
    for p in [
        "harness/vmm/src",
        "harness/vmm/Cargo.toml",
        "crates/vmm/src",
        "crates/vmm/Cargo.toml",
        "crates/vmm/build.rs",
        "harness/bare/src",
        "harness/bare/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let vmm_dir = nested_cargo(&root.join("harness/vmm"), &out.join("harness-vmm"), &["-C", "target-feature=+crt-static"]);
    println!("cargo:rustc-env=VERSUS_VMM_BIN={}", vmm_dir.join("versus-vmm").display());
}
