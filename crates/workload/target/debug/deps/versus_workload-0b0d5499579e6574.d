/work/main/crates/workload/target/debug/deps/versus_workload-0b0d5499579e6574.d: src/lib.rs src/protocol.rs src/sha256.rs

/work/main/crates/workload/target/debug/deps/versus_workload-0b0d5499579e6574: src/lib.rs src/protocol.rs src/sha256.rs

src/lib.rs:
src/protocol.rs:
src/sha256.rs:
