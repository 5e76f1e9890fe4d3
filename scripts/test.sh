#!/usr/bin/env bash
# README command 2: set up a fresh machine, build, and run the whole test suite under CTest; then
# run the whole suite a second time on a build with AddressSanitizer, LeakSanitizer and
# UndefinedBehaviorSanitizer (build-asan). The script fails if either pass fails.
# DMLLM_SKIP_SANITIZE=1 runs the first pass only.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 1800)
echo "test.sh: normal pass took $((SECONDS - start)) s"
[ "${DMLLM_SKIP_SANITIZE:-0}" = 1 ] && exit 0

start=$SECONDS
# RelWithDebInfo (-O2 -g): readable stacks; the model tests need the optimiser under ASan.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDMLLM_SANITIZE=address,undefined
cmake --build build-asan -j"$(nproc)"
# Any finding fails its test: abort_on_error/halt_on_error make the process exit non-zero.
# allocator_may_return_null: the huge-size cases of test_bad_input must see malloc fail (and the
# library report DMLLM_ERR_OUT_OF_MEMORY) instead of ASan aborting on the request.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
ASAN_OPTIONS+=":strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --output-on-failure -j2 --timeout 1800)
echo "test.sh: sanitizer pass took $((SECONDS - start)) s"
