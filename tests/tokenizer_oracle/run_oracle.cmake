# Runs the npm oracle on the committed strings and fails unless its output equals the committed
# expected.json byte for byte.
execute_process(COMMAND ${NODE} oracle.mjs ${FIXTURES}/tokenizer.json ${FIXTURES}/strings.json ${OUT}
  WORKING_DIRECTORY ${ORACLE_DIR} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the oracle failed: ${result}")
endif()
file(READ ${OUT} fresh)
file(READ ${FIXTURES}/expected.json committed)
if(NOT fresh STREQUAL committed)
  message(FATAL_ERROR "tests/fixtures/tokenizer/expected.json differs from what @huggingface/tokenizers outputs now")
endif()
