# The shared library exports exactly the header's DMLLM_API functions, with the ABI major as SONAME.
add_test(NAME abi_exports COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_exports.py
  ${PROJECT_SOURCE_DIR}/include/densemllm.h $<TARGET_FILE:densemllm> ${DMLLM_ABI_VERSION})
