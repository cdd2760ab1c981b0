//! The nested `cargo build` that versus' build scripts use for the programs
//! that run inside the sandboxes (included with `#[path]` by build.rs and
//! crates/vmm/build.rs). Those programs are workspace members (their tests
//! run with `cargo test --workspace`), but their real builds need other
//! flags than the outer build: static linking, `panic = "abort"` (the
//! `sandbox` profile of the root Cargo.toml), and for the kernel-less guest
//! freestanding link arguments. So a build script runs cargo once more,
//! offline (the outer build already fetched every crate), for `TARGET`.
//!
//! Every nested build of one outer target directory shares one directory
//! per set of flags (`<target>/sandbox/<flavour>`): a debug `cargo test` and
//! a `cargo build --release` reuse the same static programs, and a rebuild
//! after a source change recompiles only what changed.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The profile of the root Cargo.toml the sandbox programs are built with.
pub const PROFILE: &str = "sandbox";
/// Set for nested builds: where their own nested builds go (so that a build
/// script running inside a nested build does not nest a third level).
const SANDBOX_DIR_VAR: &str = "VERSUS_SANDBOX_DIR";

/// The directory that holds every nested build: `$VERSUS_SANDBOX_DIR` inside
/// a nested build, else `<outer target dir>/sandbox`, the outer target dir
/// being the nearest ancestor of `OUT_DIR` that cargo tagged with
/// CACHEDIR.TAG.
pub fn sandbox_root() -> PathBuf {
    println!("cargo:rerun-if-env-changed={SANDBOX_DIR_VAR}");
    if let Some(d) = std::env::var_os(SANDBOX_DIR_VAR) {
        return PathBuf::from(d);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let target = out.ancestors().find(|a| a.join("CACHEDIR.TAG").is_file()).unwrap_or(&out).to_path_buf();
    target.join("sandbox")
}

/// Builds the binaries of `packages` (with `features`) of the workspace at
/// `workspace` into `sandbox_root()/flavour` with `rustflags`; returns the
/// directory that holds them.
pub fn nested_cargo(workspace: &Path, packages: &[&str], features: &[&str], flavour: &str, rustflags: &[&str]) -> PathBuf {
    let root = sandbox_root();
    let target_dir = root.join(flavour);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let flags = rustflags.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(",");
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--manifest-path").arg(workspace.join("Cargo.toml"));
    cmd.args(["--offline", "--profile", PROFILE, "--target", TARGET, "--target-dir"]).arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    cmd.arg("--config").arg(format!("target.{TARGET}.rustflags=[{flags}]"));
    // The outer build's flags, target and wrappers are not the sandbox's.
    for var in
        ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER", "RUSTC_WRAPPER", "CARGO_BUILD_RUSTFLAGS"]
    {
        cmd.env_remove(var);
    }
    cmd.env(SANDBOX_DIR_VAR, &root);
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo for {packages:?}: {e}"));
    assert!(
        status.success(),
        "building {packages:?} for the sandboxes failed ({status}); run `cargo build --profile {PROFILE} --target {TARGET} -p {}` to see why",
        packages.join(" -p ")
    );
    target_dir.join(TARGET).join(PROFILE)
}
