#!/usr/bin/env bash
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#
# Installs what heteroq needs from Debian's packages (only what is missing), then configures and
# builds the CMake tree in ./build (or $HETEROQ_BUILD_DIR). Idempotent; prints what it does.
# Sourced by scripts/main.sh and scripts/test.sh; can be run alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HETEROQ_BUILD_DIR=${HETEROQ_BUILD_DIR:-$PWD/build}
# Debian's torch is importable only by Debian's interpreter.
PYTHON=/usr/bin/python3

PACKAGES=(
  cmake g++ ninja-build ccache pkg-config
  libtorch-dev python3-torch libopenblas0-pthread
  pybind11-dev python3-dev libeigen3-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libbenchmark-dev libsqlite3-dev zlib1g-dev
  python3-numpy python3-pytest python3-setuptools python3-wheel python3-pip python3-venv
  python3-matplotlib python3-tqdm python3-onnx python3-nbclient python3-ipykernel
  dataset-fashion-mnist
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== setup: installing missing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "== setup: all ${#PACKAGES[@]} Debian packages present"
fi

# LibTorch falls back to reference BLAS without OpenBLAS (measured 28x slower matmul).
if ! ls /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 /usr/lib/*/openblas-pthread/libblas.so.3 >/dev/null 2>&1; then
  echo "setup: warning: libopenblas0-pthread's BLAS was not found; LibTorch may use reference BLAS" >&2
fi

echo "== setup: configuring $HETEROQ_BUILD_DIR"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ -f $HETEROQ_BUILD_DIR/CMakeCache.txt ]]; then generator=(); fi
cmake -S . -B "$HETEROQ_BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPYTHON_EXECUTABLE=$PYTHON >/dev/null
echo "== setup: building (${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} jobs)"
cmake --build "$HETEROQ_BUILD_DIR" -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
echo "== setup: done. Use the Python package with: PYTHONPATH=$HETEROQ_BUILD_DIR/python $PYTHON"
