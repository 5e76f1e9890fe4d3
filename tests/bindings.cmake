# Every DMLLM_API function of the header is covered by the Python binding and, when present, by the
# Rust sys crate, or is listed with a reason in tests/bindings_allowlist.txt.
add_test(NAME bindings_coverage COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_bindings.py ${PROJECT_SOURCE_DIR})
