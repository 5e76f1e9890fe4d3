#!/usr/bin/env bash
# Installs every Debian package that the build, the tests and the tools need.
# Safe to run more than once; needs root (or sudo) and Debian 12. clang with its sanitizer and
# libFuzzer runtimes (libclang-rt), its OpenMP (libomp) and llvm-symbolizer (llvm) serve
# scripts/fuzz.sh only; the build itself uses gcc.
#   --torch  also Debian's python3-torch, for retraining the tiny model (scripts/train-tiny.sh)
#            and regenerating the PyTorch reference goldens; the build and tests do not need it.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
    build-essential cmake pkg-config git \
    libdnnl-dev ocl-icd-opencl-dev opencl-c-headers \
    libopenblas-dev libopenblas0-openmp \
    libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libcjson-dev \
    libwebp-dev libtiff-dev libgdk-pixbuf-2.0-dev \
    python3 python3-numpy python3-pil python3-pytest \
    python3-pip python3-setuptools python3-wheel python3-venv \
    unicode-data \
    clang libclang-rt-14-dev libomp-dev llvm
if [ "${1:-}" = --torch ]; then $SUDO apt-get install -y --no-install-recommends python3-torch; fi

# The Rust bindings (bindings/rust) use edition 2024, i.e. Rust >= 1.85. Debian 12's cargo/rustc
# packages are 1.63-era; its cargo-web/rustc-web packages (kept current for the browsers) are new
# enough. A cargo already on PATH (e.g. rustup's) is kept when it is recent enough.
cargo_ok() {
    command -v cargo >/dev/null &&
        cargo --version | awk '{ split($2, v, "."); ok = v[1] > 1 || (v[1] == 1 && v[2] >= 85) } END { exit !ok }'
}
if ! cargo_ok; then $SUDO apt-get install -y --no-install-recommends cargo-web; fi

# The independent tokenizer / chat-template oracle of the tests comes from the npm registry.
if ! command -v npm >/dev/null; then $SUDO apt-get install -y --no-install-recommends nodejs npm; fi
(cd "$(dirname "$0")/../tests/tokenizer_oracle" && npm ci --no-audit --no-fund --loglevel=error)
