# Runs the chat-template oracle on the committed conversations and fails unless its output equals
# the committed tests/fixtures/chat/expected.json byte for byte.
execute_process(COMMAND ${NODE} chat_oracle.mjs ${CHAT}/chat_template.jinja ${CHAT}/conversations.json
    ${TOKENIZER}/tokenizer.json ${OUT}
  WORKING_DIRECTORY ${ORACLE_DIR} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "the chat oracle failed: ${result}")
endif()
file(READ ${OUT} fresh)
file(READ ${CHAT}/expected.json committed)
if(NOT fresh STREQUAL committed)
  message(FATAL_ERROR "tests/fixtures/chat/expected.json differs from what @huggingface/jinja renders now")
endif()
