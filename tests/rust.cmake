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
# Sanitized build: cargo runs the test binaries (not cargo and rustc themselves) with the runtimes.
set(DMLLM_RUST_RUNNER "")
if(DMLLM_PRELOAD)
  string(TOUPPER "${CMAKE_SYSTEM_PROCESSOR}" arch)
  set(DMLLM_RUST_RUNNER ";CARGO_TARGET_${arch}_UNKNOWN_LINUX_GNU_RUNNER=env LD_PRELOAD=${DMLLM_PRELOAD}")
endif()
set_tests_properties(rust_bindings PROPERTIES TIMEOUT 1800
  ENVIRONMENT "${DMLLM_TEST_ENV};DMLLM_LIB_DIR=$<TARGET_FILE_DIR:densemllm>;CARGO_TARGET_DIR=${PROJECT_BINARY_DIR}/rust-target${DMLLM_RUST_RUNNER}"
  ENVIRONMENT_MODIFICATION "LD_LIBRARY_PATH=path_list_prepend:$<TARGET_FILE_DIR:densemllm>")

# A downstream crate with a path dependency (tests/rust_downstream) runs without LD_LIBRARY_PATH.
# Not in a sanitized build: a plain downstream program cannot load a sanitized library (the ASan
# runtime must come first), as tests/install.cmake's consumers; the Release pass runs it.
if(NOT DMLLM_SANITIZE)
  add_test(NAME rust_downstream COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/rust_downstream.sh ${DMLLM_CARGO}
    ${PROJECT_SOURCE_DIR} $<TARGET_FILE_DIR:densemllm> ${PROJECT_BINARY_DIR}/rust-downstream-target)
  set_tests_properties(rust_downstream PROPERTIES TIMEOUT 1800 ENVIRONMENT "${DMLLM_TEST_ENV}")
endif()
# `cargo doc` needs no C library (no DMLLM_LIB_DIR, pkg-config finds nothing) and warns about nothing.
add_test(NAME rust_doc COMMAND env -u DMLLM_LIB_DIR PKG_CONFIG_LIBDIR=${PROJECT_BINARY_DIR}/no-pkgconfig
  RUSTDOCFLAGS=-Dwarnings CARGO_TARGET_DIR=${PROJECT_BINARY_DIR}/rust-doc-target
  ${DMLLM_CARGO} doc --offline -j1 --workspace --no-deps --manifest-path ${PROJECT_SOURCE_DIR}/bindings/rust/Cargo.toml)
set_tests_properties(rust_doc PROPERTIES TIMEOUT 1800)
