#!/bin/sh
# install_consumer.sh BUILD_DIR SOURCE_DIR VERSION LIBDIR CC: run by the install_consumer test
# (tests/install.cmake). Checks the installed file set, then builds and runs examples/external
# through find_package(densemllm) and through pkg-config; each binary must print the library
# version and the size of examples/images/chelsea.png.
set -eu
build=$1 src=$2 version=$3 libdir=$4 cc=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
image=$src/examples/images/chelsea.png
expected="densemllm $version: 451x300 image"
abi=${version%%.*}

fail() { echo "FAILED: $*"; exit 1; }

check_run() { # what, binary
    out=$("$2" "$image") || fail "$1: the consumer exited with $?"
    [ "$out" = "$expected" ] || fail "$1: printed '$out', expected '$expected'"
    echo "ok: $1"
}

cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }

# The file set: real library, SONAME and linker symlinks, archive, header, pkg-config, CMake package.
lib=$prefix/$libdir
[ -f "$lib/libdensemllm.so.$version" ] && [ ! -L "$lib/libdensemllm.so.$version" ] || fail "libdensemllm.so.$version"
[ "$(readlink "$lib/libdensemllm.so.$abi")" = "libdensemllm.so.$version" ] || fail "SONAME link libdensemllm.so.$abi"
[ "$(readlink "$lib/libdensemllm.so")" = "libdensemllm.so.$abi" ] || fail "linker link libdensemllm.so"
for f in "$lib/libdensemllm.a" "$prefix/include/densemllm.h" "$lib/pkgconfig/densemllm.pc" \
         "$lib/cmake/densemllm/densemllmConfig.cmake" "$lib/cmake/densemllm/densemllmConfigVersion.cmake"; do
    [ -f "$f" ] || fail "not installed: $f"
done
cmp -s "$prefix/include/densemllm.h" "$src/include/densemllm.h" || fail "installed header differs"
echo "ok: installed files"

# CMake package, shared and static. The imported targets give the build the library's full path,
# so CMake adds it to the binary's RPATH.
for kind in shared static; do
    static=OFF
    [ $kind = static ] && static=ON
    cmake -S "$src/examples/external" -B "$tmp/cmake-$kind" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
        -DUSE_STATIC=$static > "$tmp/cmake-$kind.log" 2>&1 || { cat "$tmp/cmake-$kind.log"; fail "configure ($kind)"; }
    cmake --build "$tmp/cmake-$kind" > "$tmp/build-$kind.log" 2>&1 || { cat "$tmp/build-$kind.log"; fail "build ($kind)"; }
    check_run "find_package ($kind)" "$tmp/cmake-$kind/consumer"
done
# The static build must not need the shared library.
if LC_ALL=C readelf -d "$tmp/cmake-static/consumer" | grep -q 'libdensemllm\.so'; then fail "static consumer needs libdensemllm.so"; fi

# pkg-config, shared: the .pc file finds its prefix from its own location.
export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion densemllm)" = "$version" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046 # the flags are meant to split
"$cc" -o "$tmp/pc-shared" "$src/examples/external/main.c" $(pkg-config --cflags --libs densemllm) || fail "cc (pkg-config)"
LD_LIBRARY_PATH=$lib check_run "pkg-config (shared)" "$tmp/pc-shared"
# pkg-config --static: Libs.private and Requires.private must be enough to link the archive.
# shellcheck disable=SC2046
"$cc" -o "$tmp/pc-static" "$src/examples/external/main.c" \
    $(pkg-config --static --cflags --libs densemllm | sed 's/-ldensemllm\b/-l:libdensemllm.a/') || fail "cc (pkg-config --static)"
check_run "pkg-config (static)" "$tmp/pc-static"
echo "install_consumer: all passed"
