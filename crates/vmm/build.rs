//! Builds the kernel-less guest (`harness/bare`) and hands its path to the
//! crate, which embeds it: freestanding, static, linked at the load address
//! of src/abi.rs (IMAGE_BASE), which the guest includes. A package of its
//! own outside the workspace, built by the nested `cargo build` of
//! harness/nested_cargo.rs; it depends on nothing but `crates/workload`.

use std::path::PathBuf;

#[path = "../../harness/nested_cargo.rs"]
mod nested_cargo;
use nested_cargo::nested_cargo;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let bare = root.join("../../harness/bare");
    for p in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", bare.join(p).display());
    }
    for p in ["src/abi.rs", "../workload/src", "../workload/Cargo.toml", "../../harness/nested_cargo.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let dir = nested_cargo(
        &bare,
        &out.join("harness-bare"),
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
