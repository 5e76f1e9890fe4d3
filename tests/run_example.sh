#!/bin/sh
# run_example.sh MODEL_DIR PATTERN PROGRAM ARGS...: runs a C example (tests/examples.cmake) and
# checks that it succeeds and that its output matches the extended regular expression PATTERN
# (newlines joined to spaces). Exits 77 (CTest skip) when MODEL_DIR holds no model yet.
model=$1 pattern=$2
shift 2
if [ ! -f "$model/config.json" ]; then
    echo "skipped: no model in $model yet"
    exit 77
fi
out=$("$@")
status=$?
echo "$out"
[ $status -eq 0 ] || { echo "FAILED: $1 exited with $status"; exit 1; }
echo "$out" | tr '\n' ' ' | grep -Eq "$pattern" || { echo "FAILED: the output does not match: $pattern"; exit 1; }
