# The committed tokenizer parity fixture (tests/fixtures/tokenizer/expected.json, checked by
# test_tokenizer) must be exactly what the npm oracle @huggingface/tokenizers outputs today.
find_program(NODE_EXECUTABLE node)
if(NODE_EXECUTABLE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle/node_modules)
  add_test(NAME tokenizer_oracle
    COMMAND ${CMAKE_COMMAND} -DNODE=${NODE_EXECUTABLE} -DORACLE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle
      -DFIXTURES=${CMAKE_CURRENT_SOURCE_DIR}/fixtures/tokenizer -DOUT=${CMAKE_CURRENT_BINARY_DIR}/oracle_expected.json
      -P ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle/run_oracle.cmake)
else()
  message(WARNING "node or tests/tokenizer_oracle/node_modules missing (scripts/install-deps.sh installs them): "
                  "the live tokenizer oracle test is not registered")
endif()
