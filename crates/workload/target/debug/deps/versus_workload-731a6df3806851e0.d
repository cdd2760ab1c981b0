/work/main/crates/workload/target/debug/deps/versus_workload-731a6df3806851e0.d: src/lib.rs src/protocol.rs src/sha256.rs

/work/main/crates/workload/target/debug/deps/libversus_workload-731a6df3806851e0.rlib: src/lib.rs src/protocol.rs src/sha256.rs

/work/main/crates/workload/target/debug/deps/libversus_workload-731a6df3806851e0.rmeta: src/lib.rs src/protocol.rs src/sha256.rs

src/lib.rs:
src/protocol.rs:
src/sha256.rs:
