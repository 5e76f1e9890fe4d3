# The Rust bindings' tests (bindings/rust): cargo builds and tests both crates against this build's
# libdensemllm.so. Cargo's output stays inside the build directory. A missing cargo is not skipped
# quietly: the test is registered anyway and fails naming the missing program.
find_program(DMLLM_CARGO cargo)
if(NOT DMLLM_CARGO)
  message(WARNING "cargo not found: the rust_bindings test will fail (scripts/install-deps.sh installs it)")
  set(DMLLM_CARGO cargo)
endif()
add_test(NAME rust_bindings
  COMMAND ${DMLLM_CARGO} test --offline -j1 --manifest-path ${PROJECT_SOURCE_DIR}/bindings/rust/Cargo.toml)
set_tests_properties(rust_bindings PROPERTIES TIMEOUT 1800
  ENVIRONMENT "${DMLLM_TEST_ENV};DMLLM_LIB_DIR=$<TARGET_FILE_DIR:densemllm>;CARGO_TARGET_DIR=${PROJECT_BINARY_DIR}/rust-target"
  ENVIRONMENT_MODIFICATION "LD_LIBRARY_PATH=path_list_prepend:$<TARGET_FILE_DIR:densemllm>")
