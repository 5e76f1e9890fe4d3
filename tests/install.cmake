# Installs the build into a temporary prefix and builds examples/external against it four ways:
# CMake package (shared and static component) and pkg-config (shared, and static via Libs.private).
# Not in a sanitized build (scripts/test.sh's second pass): the consumers are plain programs, which
# cannot run a sanitized library (the ASan runtime must be loaded first) nor link its archive
# without -fsanitize; the first pass runs these tests on the Release build.
if(NOT DMLLM_SANITIZE)
  add_test(NAME install_consumer COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_consumer.sh
    ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION} ${CMAKE_INSTALL_LIBDIR} ${CMAKE_C_COMPILER})
  set_tests_properties(install_consumer PROPERTIES TIMEOUT 600 ENVIRONMENT "${DMLLM_TEST_ENV}")

  # Installs, moves the prefix, and runs the installed densemllm command on its installed default
  # model without DMLLM_MODEL; builds examples/ out of tree against the moved package.
  add_test(NAME install_relocated COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/install_relocated.sh
    ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_C_COMPILER})
  set_tests_properties(install_relocated PROPERTIES TIMEOUT 600 ENVIRONMENT "${DMLLM_TEST_ENV}")
endif()
