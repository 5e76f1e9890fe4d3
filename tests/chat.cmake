# The committed chat-layout fixture (tests/fixtures/chat/expected.json, checked by test_chat) must be
# exactly what @huggingface/jinja renders from tests/fixtures/chat/chat_template.jinja today.
find_program(NODE_EXECUTABLE node)
if(NODE_EXECUTABLE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle/node_modules)
  add_test(NAME chat_oracle
    COMMAND ${CMAKE_COMMAND} -DNODE=${NODE_EXECUTABLE} -DORACLE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle
      -DCHAT=${CMAKE_CURRENT_SOURCE_DIR}/fixtures/chat -DTOKENIZER=${CMAKE_CURRENT_SOURCE_DIR}/fixtures/tokenizer
      -DOUT=${CMAKE_CURRENT_BINARY_DIR}/chat_oracle_expected.json
      -P ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_oracle/run_chat_oracle.cmake)
endif()
