#!/bin/sh
# install_relocated.sh BUILD_DIR SOURCE_DIR CC: run by the install_relocated test
# (tests/install.cmake). Installs into a temporary prefix and then moves the prefix, so nothing
# can be found through a path compiled in: the moved densemllm command must find its library and
# the installed default model relative to itself, and examples/ must build as a project of its
# own against the moved CMake package and run on the installed model.
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
image=$src/examples/images/chelsea.png

fail() { echo "FAILED: $*"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
mv "$tmp/prefix" "$tmp/moved"
prefix=$tmp/moved
cli=$prefix/bin/densemllm
model=$prefix/share/densemllm/models/tiny
[ -x "$cli" ] || fail "not installed: bin/densemllm"
[ -f "$model/config.json" ] || fail "not installed: share/densemllm/models/tiny"
cmp -s "$model/config.json" "$src/models/tiny/config.json" || fail "installed model differs from models/tiny"
# Neither the checkout nor the build tree may be named inside the installed program (RPATH,
# default model): both would break when the checkout moves or is gone.
for dir in "$src" "$build"; do
    dir=$(cd "$dir" && pwd -P)
    if grep -F -q "$dir" "$cli"; then fail "bin/densemllm contains the path $dir"; fi
done
echo "ok: installed files, no path into the checkout"

# The moved command, without DMLLM_MODEL or LD_LIBRARY_PATH, run from an unrelated directory.
mkdir "$tmp/run"
cd "$tmp/run"
env -u DMLLM_MODEL -u LD_LIBRARY_PATH "$cli" segment --quiet --classes cat,grass,wall --out out "$image" \
    > "$tmp/segment.log" 2>&1 || { cat "$tmp/segment.log"; fail "densemllm segment with the default model"; }
[ -s out/chelsea.segment.json ] && [ -s out/chelsea.segment.labels.png ] || fail "densemllm segment wrote no results"
echo "ok: moved prefix, default model"
# DMLLM_MODEL still wins over the installed model.
if DMLLM_MODEL=$tmp/no-such-model "$cli" segment --quiet --classes cat --out out2 "$image" > "$tmp/env.log" 2>&1; then
    fail "DMLLM_MODEL=$tmp/no-such-model was ignored"
fi
grep -q "no-such-model" "$tmp/env.log" || { cat "$tmp/env.log"; fail "the error does not name DMLLM_MODEL's directory"; }
"$cli" segment --help | grep -q 'DMLLM_MODEL' || fail "--help does not document the default model"
echo "ok: DMLLM_MODEL"

# examples/ as a project of its own against the moved package.
cmake -S "$src/examples" -B "$tmp/examples" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
    > "$tmp/examples-configure.log" 2>&1 || { cat "$tmp/examples-configure.log"; fail "configure examples/"; }
cmake --build "$tmp/examples" > "$tmp/examples-build.log" 2>&1 || { cat "$tmp/examples-build.log"; fail "build examples/"; }
out=$("$tmp/examples/example_segment" "$model" "$image" cat,grass,wall "$tmp/segment.png") ||
    fail "example_segment exited with $?"
echo "$out" | grep -Eq "cat: [0-9.]+%" || fail "example_segment printed: $out"
[ -s "$tmp/segment.png" ] || fail "example_segment wrote no PNG"
echo "install_relocated: all passed"
