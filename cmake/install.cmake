# Install rules: the shared library (with its SONAME symlinks), the static library, the header, a
# pkg-config file and a relocatable CMake package. Included from the top-level CMakeLists.txt.
#
# The shared library carries its dependencies itself, so consumers need only the header and
# libdensemllm.so. The static archive does not: its users also link oneDNN, OpenBLAS, libjpeg-turbo,
# libpng, libwebp(demux), libtiff, gdk-pixbuf, cJSON, OpenMP and libm, which pkg-config lists as
# Libs.private/Requires.private
# (`pkg-config --static`) and the CMake package finds when the `static` component is requested.
include(CMakePackageConfigHelpers)

set(DMLLM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/densemllm)

set_target_properties(densemllm_static PROPERTIES EXPORT_NAME densemllm_static)
install(TARGETS densemllm EXPORT densemllmTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS densemllm_static EXPORT densemllmStaticTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development)
install(FILES ${PROJECT_SOURCE_DIR}/include/densemllm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development)

# Two export sets, so that find_package(densemllm) for the shared library needs none of the
# static archive's dependencies.
install(EXPORT densemllmTargets NAMESPACE densemllm:: DESTINATION ${DMLLM_CMAKE_DIR} COMPONENT Development)
install(EXPORT densemllmStaticTargets NAMESPACE densemllm:: DESTINATION ${DMLLM_CMAKE_DIR} COMPONENT Development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/densemllmConfig.cmake.in
  ${PROJECT_BINARY_DIR}/densemllmConfig.cmake INSTALL_DESTINATION ${DMLLM_CMAKE_DIR})
# Minor versions add functions but keep the ABI (SONAME libdensemllm.so.0) within one major.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/densemllmConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/densemllmConfig.cmake ${PROJECT_BINARY_DIR}/densemllmConfigVersion.cmake
  DESTINATION ${DMLLM_CMAKE_DIR} COMPONENT Development)

# pkg-config: the prefix is found relative to the .pc file, so `cmake --install --prefix DIR`
# yields a working file wherever DIR is.
file(RELATIVE_PATH DMLLM_PC_PREFIX_FROM_PCFILEDIR
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" DMLLM_PC_PREFIX_FROM_PCFILEDIR "${DMLLM_PC_PREFIX_FROM_PCFILEDIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/densemllm.pc.in ${PROJECT_BINARY_DIR}/densemllm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/densemllm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT Development)

# The densemllm command and its default model, share/densemllm/models/tiny. Nothing absolute is
# compiled in: the program finds the model (tools/densemllm/model_path.c) and, through its RPATH,
# the library relative to its own directory, so an installed prefix can be moved.
set(DMLLM_MODEL_DATADIR ${CMAKE_INSTALL_DATADIR}/densemllm/models/tiny)
file(RELATIVE_PATH DMLLM_MODEL_FROM_BINDIR ${CMAKE_INSTALL_FULL_BINDIR}
  ${CMAKE_INSTALL_PREFIX}/${DMLLM_MODEL_DATADIR})
file(RELATIVE_PATH DMLLM_LIBDIR_FROM_BINDIR ${CMAKE_INSTALL_FULL_BINDIR} ${CMAKE_INSTALL_FULL_LIBDIR})
# Uninstalled, the program in the build tree uses the source tree's models/tiny.
if(CMAKE_RUNTIME_OUTPUT_DIRECTORY)
  set(DMLLM_CLI_BUILD_DIR ${CMAKE_RUNTIME_OUTPUT_DIRECTORY})
else()
  set(DMLLM_CLI_BUILD_DIR ${PROJECT_BINARY_DIR})
endif()
file(RELATIVE_PATH DMLLM_SOURCE_MODEL_FROM_BUILD ${DMLLM_CLI_BUILD_DIR} ${PROJECT_SOURCE_DIR}/models/tiny)
target_compile_definitions(densemllm_cli PRIVATE DMLLM_MODEL_FROM_BINDIR="${DMLLM_MODEL_FROM_BINDIR}"
  DMLLM_SOURCE_MODEL_FROM_BUILD="${DMLLM_SOURCE_MODEL_FROM_BUILD}")
set_target_properties(densemllm_cli PROPERTIES INSTALL_RPATH "$ORIGIN/${DMLLM_LIBDIR_FROM_BINDIR}")
install(TARGETS densemllm_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/tiny/ DESTINATION ${DMLLM_MODEL_DATADIR})

# The Python package as a wheel that carries this build's libdensemllm.so, into build/python-dist:
#   cmake --build build --target python-wheel   (bindings/python/README.md)
add_custom_target(python-wheel
  COMMAND sh ${PROJECT_SOURCE_DIR}/scripts/python-wheel.sh $<TARGET_FILE:densemllm> ${PROJECT_BINARY_DIR}/python-dist
  VERBATIM)
add_dependencies(python-wheel densemllm)
