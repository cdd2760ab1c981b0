//! The nested `cargo build` that every build script of versus uses for the
//! programs that run inside the sandboxes (included with `#[path]` by
//! build.rs and crates/vmm/build.rs). Each such program is its own Cargo
//! package outside the workspace (other rustflags, `panic = "abort"`),
//! built offline into a target directory under the caller's OUT_DIR.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the package at `package_dir` for [`TARGET`] with `rustflags`;
/// returns the directory holding its release binaries.
pub fn nested_cargo(package_dir: &Path, target_dir: &Path, rustflags: &[&str]) -> PathBuf {
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
