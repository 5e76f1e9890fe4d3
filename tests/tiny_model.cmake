# The tiny model's end-to-end test reads held-out scenes that tools/train/heldout.py (numpy + PIL,
# no torch) writes from a fixed seed before it runs.
set(DMLLM_HELDOUT_DIR ${PROJECT_BINARY_DIR}/heldout)
add_test(NAME tiny_model_heldout
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tools/train/heldout.py ${DMLLM_HELDOUT_DIR} --count 24)
set_tests_properties(tiny_model_heldout PROPERTIES FIXTURES_SETUP heldout TIMEOUT 300)
set_tests_properties(test_tiny_model PROPERTIES FIXTURES_REQUIRED heldout
  ENVIRONMENT "${DMLLM_TEST_ENV};DMLLM_HELDOUT_DIR=${DMLLM_HELDOUT_DIR}")
