//! Builds the kernel-less guest (`harness/bare`) and hands its path to the
//! crate, which embeds it: freestanding, static, linked at the load address
//! of src/abi.rs (IMAGE_BASE), which the guest includes. A package of its
//! own outside the workspace (other rustflags, `panic = "abort"`), built by
//! a nested `cargo build` into a target directory under OUT_DIR; it depends
//! on nothing but `crates/workload`, so the nested build needs no network.
//!
//! `VERSUS_BARE_PREBUILT` names an already built guest to embed instead
//! (the static `versus-vmm` build passes the one the outer build made).

use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    println!("cargo:rerun-if-env-changed=VERSUS_BARE_PREBUILT");
    if let Some(p) = std::env::var_os("VERSUS_BARE_PREBUILT") {
        println!("cargo:rustc-env=VERSUS_BARE_BIN={}", PathBuf::from(p).display());
        return;
    }
    let bare = root.join("../../harness/bare");
    for p in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", bare.join(p).display());
    }
    for p in ["src/abi.rs", "../workload/src", "../workload/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let target_dir = out.join("harness-bare");
    let flags = [
        "-C",
        "relocation-model=static",
        "-C",
        "link-arg=-nostartfiles",
        "-C",
        "link-arg=-nostdlib",
        "-C",
        "link-arg=-static",
        "-C",
        "link-arg=-Wl,--image-base=0x100000",
    ];
    let flags = flags.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(",");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&bare)
        .args(["build", "--release", "--offline", "--target", TARGET, "--target-dir"])
        .arg(&target_dir)
        .arg("--config")
        .arg(format!("target.{TARGET}.rustflags=[{flags}]"));
    // The outer build's flags and target settings are not the guest's.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", bare.display()));
    assert!(status.success(), "building {} failed ({status}); run `cargo build --release` in that directory to see why", bare.display());
    println!("cargo:rustc-env=VERSUS_BARE_BIN={}", target_dir.join(TARGET).join("release").join("versus-bare").display());
}
