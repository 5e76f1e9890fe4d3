# Runs the C examples (examples/*.c) on the embedded tiny model. While models/tiny does not exist
# the examples are still built but their runs are skipped (exit code 77 of run_example.sh).
set(DMLLM_EXAMPLE_MODEL ${PROJECT_SOURCE_DIR}/models/tiny)
set(DMLLM_EXAMPLE_IMAGE ${PROJECT_SOURCE_DIR}/examples/images/chelsea.png)
set(DMLLM_EXAMPLE_OUT ${CMAKE_CURRENT_BINARY_DIR}/examples_out)
file(MAKE_DIRECTORY ${DMLLM_EXAMPLE_OUT})
# name, regular expression the output must match, arguments after MODEL_DIR IMAGE
function(dmllm_example_test name pattern)
  add_test(NAME example_${name} COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/run_example.sh ${DMLLM_EXAMPLE_MODEL}
    "${pattern}" $<TARGET_FILE:example_${name}> ${DMLLM_EXAMPLE_MODEL} ${DMLLM_EXAMPLE_IMAGE} ${ARGN})
  set_tests_properties(example_${name} PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77 ENVIRONMENT "${DMLLM_TEST_ENV}")
endfunction()
dmllm_example_test(segment "cat: [0-9.]+%" "cat,grass,wall" ${DMLLM_EXAMPLE_OUT}/segment.png)
dmllm_example_test(depth "depth: min [0-9.]+ m, median [0-9.]+ m, max [0-9.]+ m" ${DMLLM_EXAMPLE_OUT}/depth.png)
dmllm_example_test(refseg "found: (yes|no)" "the cat" ${DMLLM_EXAMPLE_OUT}/refseg.png)
dmllm_example_test(chat "assistant: .*tokens, .*assistant: " "What animal is this?" "What colour is it?")
