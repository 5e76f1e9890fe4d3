# The tiny model's end-to-end test reads synthetic scenes that tools/train/heldout.py (numpy + PIL,
# no torch) writes before it runs: the committed held-out set (seed 424242, 24 scenes, the PyTorch
# comparison) and 32 fresh scenes of seed 9001, one of the draws of scripts/eval-tiny.py.
set(DMLLM_HELDOUT_DIR ${PROJECT_BINARY_DIR}/heldout)
set(DMLLM_FRESH_DIR ${PROJECT_BINARY_DIR}/heldout-fresh)
add_test(NAME tiny_model_heldout
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tools/train/heldout.py ${DMLLM_HELDOUT_DIR} --count 24)
add_test(NAME tiny_model_fresh
  COMMAND /usr/bin/python3 ${PROJECT_SOURCE_DIR}/tools/train/heldout.py ${DMLLM_FRESH_DIR} --count 32
          --seed 9001)
set_tests_properties(tiny_model_heldout tiny_model_fresh PROPERTIES FIXTURES_SETUP heldout TIMEOUT 300)
set_tests_properties(test_tiny_model PROPERTIES FIXTURES_REQUIRED heldout
  ENVIRONMENT "${DMLLM_TEST_ENV};DMLLM_HELDOUT_DIR=${DMLLM_HELDOUT_DIR};DMLLM_FRESH_DIR=${DMLLM_FRESH_DIR}")
