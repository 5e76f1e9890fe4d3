# README.md stays true: its table of environment variables lists exactly those the sources read
# (tests/check_readme_env.py), and its tested copy-paste blocks (```LANG ci) run against this build
# (tests/readme_blocks.py): C, Python, Rust and the CLI on models/tiny.
add_test(NAME readme_env_vars COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_readme_env.py
  ${PROJECT_SOURCE_DIR})
# Not in a sanitized build: the blocks' own programs (cc, python3, cargo) cannot load a sanitized
# library without the runtimes preloaded, which a reader's commands do not do; the Release pass
# runs them. Cargo's output goes to the build directory, so a second run only relinks.
if(NOT DMLLM_SANITIZE)
  add_test(NAME readme_blocks COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/readme_blocks.py
    ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set_tests_properties(readme_blocks PROPERTIES TIMEOUT 900
    ENVIRONMENT "${DMLLM_TEST_ENV};CARGO_TARGET_DIR=${PROJECT_BINARY_DIR}/readme-rust-target")
endif()
