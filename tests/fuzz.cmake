# The libFuzzer harnesses of tests/fuzz in the normal build: each is linked to a plain main
# (replay_main.c) and replays its seed corpus and the crash reproducers of tests/fuzz/regressions
# (fuzz_replay_<name>). With clang installed, fuzz_smoke also runs 50,000 seeded inputs through every
# target (scripts/fuzz.sh --smoke: the same inputs on every machine), in the normal build only: the fuzzers carry their own ASan and UBSan, so scripts/test.sh's sanitized
# second pass would only repeat it.
file(GLOB DMLLM_FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_*.c)
list(REMOVE_ITEM DMLLM_FUZZ_HARNESSES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_support.c)
foreach(src ${DMLLM_FUZZ_HARNESSES})
  get_filename_component(harness ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${harness})
  add_executable(replay_${name} ${src} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_support.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/replay_main.c)
  target_compile_options(replay_${name} PRIVATE ${DMLLM_WARNINGS})
  target_compile_definitions(replay_${name} PRIVATE DMLLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(replay_${name} PRIVATE densemllm_static)
  add_test(NAME fuzz_replay_${name} COMMAND replay_${name}
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/regressions/${name})
  set_tests_properties(fuzz_replay_${name} PROPERTIES TIMEOUT 300 ENVIRONMENT "${DMLLM_TEST_ENV}")
endforeach()

find_program(DMLLM_CLANG clang)
if(DMLLM_CLANG AND NOT DMLLM_SANITIZE)
  add_test(NAME fuzz_smoke COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/fuzz.sh --smoke)
  set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 1500
    ENVIRONMENT "DMLLM_FUZZ_BUILD_DIR=${PROJECT_BINARY_DIR}/fuzz;DMLLM_FUZZ_WORK_DIR=${PROJECT_BINARY_DIR}/fuzz-work")
elseif(NOT DMLLM_CLANG)
  message(WARNING "clang missing (scripts/install-deps.sh installs it): fuzz_smoke is not registered")
endif()
