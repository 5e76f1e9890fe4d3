#!/usr/bin/env bash
# Coverage-guided fuzzing of the input parsers (tests/fuzz, libFuzzer with ASan and UBSan).
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 30 s for every target, one after another
#   scripts/fuzz.sh --smoke [TARGET...]       the CI check: 50,000 inputs per target from seed 1
# A timed run explores anew each time (use it to hunt, for minutes or hours); --smoke repeats the
# same inputs on every machine, so that a commit's test result does not depend on luck: what a hunt
# finds is fixed and its input goes to tests/fuzz/regressions.
# Builds the instrumented targets with clang into build-fuzz ($DMLLM_FUZZ_BUILD_DIR), runs each
# target for SECONDS on a scratch copy of tests/fuzz/corpus/<target> (the committed corpus is
# never written), prints its executions, coverage and findings, and exits non-zero when any target
# found a crash, a leak, a timeout (one input over 10 s) or an out-of-memory input. Crash inputs
# and logs stay in the work directory ($DMLLM_FUZZ_WORK_DIR, default build-fuzz/work).
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
limit=(-max_total_time="${1:-30}")
label="${1:-30} s"
if [ "${1:-}" = --smoke ]; then
    limit=(-seed=1 -runs=50000)
    label="50000 runs"
fi
shift || true
build=${DMLLM_FUZZ_BUILD_DIR:-$source_dir/build-fuzz}
work=${DMLLM_FUZZ_WORK_DIR:-$build/work}

# DMLLM_FUZZ_SKIP_BUILD=1 reuses the binaries already built, so that two runs in parallel do not
# build into the same directory at once.
if [ "${DMLLM_FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    command -v clang >/dev/null || { echo "fuzz.sh: clang is missing (scripts/install-deps.sh)" >&2; exit 1; }
    mkdir -p "$build"
    CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDMLLM_FUZZ=ON \
        -DDMLLM_BUILD_TESTS=OFF >"$build/fuzz-configure.log" 2>&1 ||
        { cat "$build/fuzz-configure.log"; exit 1; }
    cmake --build "$build" -j2 --target fuzzers >"$build/fuzz-build.log" 2>&1 ||
        { tail -50 "$build/fuzz-build.log"; exit 1; }
fi

targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    for src in tests/fuzz/fuzz_*.c; do
        name=$(basename "$src" .c)
        [ "$name" = fuzz_support ] || targets+=("${name#fuzz_}")
    done
fi

# Largest input per target: images and JSON files need room, short texts do not.
max_len() {
    case $1 in
        image | annotation | safetensors) echo 65536 ;;
        tokenizer_json | checkpoint_index) echo 32768 ;;
        *) echo 8192 ;;
    esac
}

failed=0
mkdir -p "$work"
for target in "${targets[@]}"; do
    binary=$build/tests/fuzz/fuzz_$target
    [ -x "$binary" ] || { echo "fuzz.sh: no target $target" >&2; exit 1; }
    corpus=$work/$target/corpus
    artifacts=$work/$target/findings
    rm -rf "$work/$target"
    mkdir -p "$corpus" "$artifacts"
    cp tests/fuzz/corpus/"$target"/* "$corpus"/
    dict=()
    dict_name=$target
    [ "$target" = annotation ] && dict_name=image # the same PNG chunk names
    [ -f tests/fuzz/dict/"$dict_name".dict ] && dict=(-dict=tests/fuzz/dict/"$dict_name".dict)
    log=$work/$target/fuzz.log
    status=0
    # OMP/BLAS single-threaded: the fuzzers measure parsing, not thread pools.
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 "$binary" "$corpus" \
        "${dict[@]}" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$target")" -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    # A target that crashes on a seed prints no cov: line at all.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corpus_size=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    findings=$(find "$artifacts" -type f | wc -l)
    printf 'fuzz %-18s %10s  execs %-10s cov %-6s corpus %-12s findings %s\n' "$target" \
        "$label" "${execs:-?}" "${coverage:-?}" "${corpus_size:-?}" "$findings"
    if [ "$status" != 0 ] || [ "$findings" != 0 ]; then
        failed=1
        echo "fuzz.sh: $target failed (exit $status); log $log, inputs in $artifacts:" >&2
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5 >&2 || true
        ls "$artifacts" >&2
    fi
done
exit $failed
