#!/bin/sh
# rust_downstream.sh CARGO SOURCE_DIR LIB_DIR TARGET_DIR: run by the rust_downstream test
# (tests/rust.cmake). Builds tests/rust_downstream, a crate outside the bindings' workspace with a
# path dependency on densemllm, and runs its binary directly and through `cargo run`, both without
# LD_LIBRARY_PATH, on the tiny model.
set -eu
cargo=$1 src=$2 libdir=$3 target=$4
fail() { echo "FAILED: $*"; exit 1; }
manifest=$src/tests/rust_downstream/Cargo.toml
image=$src/examples/images/chelsea.png
DMLLM_LIB_DIR=$libdir CARGO_TARGET_DIR=$target "$cargo" build --offline -j1 --manifest-path "$manifest" ||
    fail "cargo build"
unset LD_LIBRARY_PATH
out=$("$target/debug/densemllm-downstream" "$src/models/tiny" "$image") || fail "the downstream binary exited with $?"
echo "$out"
echo "$out" | grep -Eq "^cat: [0-9.]+%" || fail "unexpected output"
DMLLM_LIB_DIR=$libdir CARGO_TARGET_DIR=$target "$cargo" run -q --offline -j1 --manifest-path "$manifest" -- \
    "$src/models/tiny" "$image" > /dev/null || fail "cargo run"
echo "rust_downstream: passed"
