//! Builds the programs that run inside the sandboxes and hands their paths to
//! the crate, which embeds them:
//!
//! - `harness/guest`: the workload program, a static (crt-static) Linux
//!   binary run as a process, as a container's pid 1 and as a guest's /init.
//!
//! Each is its own Cargo package outside the workspace (it needs other
//! rustflags and `panic = "abort"`), built by a nested `cargo build` into a
//! target directory under OUT_DIR. They depend on nothing but
//! `crates/workload`, so the nested build needs no network.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn nested_cargo(package_dir: &Path, target_dir: &Path, rustflags: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let flags = rustflags.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(package_dir)
        .args(["build", "--release", "--offline", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .arg("--config")
        .arg(format!("target.{TARGET}.rustflags=[{flags}]"));
    // The outer build's flags and target settings are not the guest's.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", package_dir.display()));
    assert!(status.success(), "building {} failed ({status}); run `cargo build --release` in that directory to see why", package_dir.display());
    target_dir.join(TARGET).join("release")
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    for p in ["harness/guest/src", "harness/guest/Cargo.toml", "crates/workload/src", "crates/workload/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }

    let guest_dir = nested_cargo(&root.join("harness/guest"), &out.join("harness-guest"), &["-C", "target-feature=+crt-static"]);
    println!("cargo:rustc-env=VERSUS_GUEST_BIN={}", guest_dir.join("versus-guest").display());

    // The kernel-less VM guest: freestanding, static, linked at the load
    // address of src/platform/vm/abi.rs (IMAGE_BASE), which it includes.
    for p in ["harness/bare/src", "harness/bare/Cargo.toml", "src/platform/vm/abi.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let bare_dir = nested_cargo(
        &root.join("harness/bare"),
        &out.join("harness-bare"),
        &["-C", "relocation-model=static", "-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib", "-C", "link-arg=-static", "-C", "link-arg=-Wl,--image-base=0x100000"],
    );
    println!("cargo:rustc-env=VERSUS_BARE_BIN={}", bare_dir.join("versus-bare").display());
}
