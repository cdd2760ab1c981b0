//! Builds the kernel-less guest (`harness/bare`) and hands its path to the
//! crate, which embeds it: freestanding, static, linked at the load address
//! of src/abi.rs (IMAGE_BASE), which the guest includes. Built by the
//! nested `cargo build` of harness/nested_cargo.rs with the link arguments
//! of a freestanding image (feature `image` of versus-bare enables its
//! binary); it depends on nothing but `crates/workload`.

use std::path::PathBuf;

#[path = "../../harness/nested_cargo.rs"]
mod nested_cargo;
use nested_cargo::nested_cargo;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let workspace = root.join("../..");
    for p in [
        "harness/bare/src",
        "harness/bare/Cargo.toml",
        "crates/vmm/src/abi.rs",
        "crates/workload/src",
        "crates/workload/Cargo.toml",
        "harness/nested_cargo.rs",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }
    let dir = nested_cargo(
        &workspace,
        &["versus-bare"],
        &["versus-bare/image"],
        "bare",
        &[
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
        ],
    );
    println!("cargo:rustc-env=VERSUS_BARE_BIN={}", dir.join("versus-bare").display());
}
