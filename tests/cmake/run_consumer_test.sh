#!/usr/bin/env bash
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#
# Installs heteroq from a configured build directory into a scratch prefix, then builds and runs
# three consumer projects against that prefix:
#   tests/cmake/find-package  (find_package(heteroq): a minimal consumer, which also compiles a
#                              model into an engine file; must exit 0)
#   tests/cmake/deploy-only   (find_package(heteroq COMPONENTS deploy) with Torch ruled out:
#                              links heteroq_deploy alone, loads and runs that engine file)
#   examples/cpp              (the demo, run as a smoke test: --epochs 1 --train-limit 2000)
# and checks that the full package cannot be found without Torch (the deploy component can).
#
# usage: bash tests/cmake/run_consumer_test.sh <build-dir> <scratch-dir>
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <build-dir> <scratch-dir>" >&2
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(cd "$1" && pwd) || { echo "error: build directory '$1' not found" >&2; exit 2; }
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  echo "error: $build is not a configured CMake build directory (no CMakeCache.txt)" >&2
  exit 2
fi
mkdir -p "$2"
scratch=$(cd "$2" && pwd)
prefix="$scratch/prefix"

step() { echo; echo "==> $*"; }
run() { echo "+ $*"; "$@"; }

# Only the directories this script owns are cleared (a stale cache could hide a failure).
rm -rf "$prefix" "$scratch/find-package-build" "$scratch/examples-build" \
  "$scratch/deploy-only-build" "$scratch/no-torch-build" "$scratch/deploy-data"

cmake_args=(-DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release)
if command -v ninja > /dev/null 2>&1; then
  cmake_args+=(-G Ninja)
fi
if command -v ccache > /dev/null 2>&1; then
  cmake_args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

step "build the library ($build)"
run cmake --build "$build" --target heteroq heteroq_deploy

step "install into $prefix"
run cmake --install "$build" --prefix "$prefix"

step "configure + build tests/cmake/find-package against $prefix"
run cmake -S "$repo/tests/cmake/find-package" -B "$scratch/find-package-build" "${cmake_args[@]}"
run cmake --build "$scratch/find-package-build"

step "configure + build examples/cpp against $prefix"
run cmake -S "$repo/examples/cpp" -B "$scratch/examples-build" "${cmake_args[@]}"
run cmake --build "$scratch/examples-build"

# The consumers must load the installed library, not the one in the build tree.
step "check that the consumers link the installed libheteroq"
for exe in "$scratch/find-package-build/heteroq_find_package_test" \
           "$scratch/examples-build/heteroq_demo"; do
  lib=$(ldd "$exe" | awk '/libheteroq\.so/ {print $3}')
  echo "$exe -> $lib"
  case "$lib" in
    "$prefix"/*) ;;
    *) echo "error: $exe does not load libheteroq from $prefix" >&2; exit 1 ;;
  esac
done

step "run the find-package consumer (it writes the engine file for the deploy-only consumer)"
mkdir -p "$scratch/deploy-data"
run "$scratch/find-package-build/heteroq_find_package_test" "$scratch/deploy-data"

step "configure + build tests/cmake/deploy-only against $prefix, Torch ruled out"
run cmake -S "$repo/tests/cmake/deploy-only" -B "$scratch/deploy-only-build" "${cmake_args[@]}" \
  -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON
run cmake --build "$scratch/deploy-only-build"

step "check that the deploy-only consumer loads libheteroq_deploy from $prefix and no LibTorch"
exe="$scratch/deploy-only-build/heteroq_deploy_only_test"
ldd "$exe"
lib=$(ldd "$exe" | awk '/libheteroq_deploy\.so/ {print $3}')
case "$lib" in
  "$prefix"/*) ;;
  *) echo "error: $exe does not load libheteroq_deploy from $prefix (got '$lib')" >&2; exit 1 ;;
esac
if ldd "$exe" | grep -E 'libtorch|libc10|libheteroq\.so'; then
  echo "error: $exe loads LibTorch or libheteroq (above); it must need heteroq_deploy only" >&2
  exit 1
fi

step "run the deploy-only consumer on the engine file"
run "$exe" "$scratch/deploy-data"

step "check that the full package is not found without Torch (the deploy component was)"
if cmake -S "$repo/tests/cmake/find-package" -B "$scratch/no-torch-build" "${cmake_args[@]}" \
     -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON > "$scratch/no-torch.log" 2>&1; then
  cat "$scratch/no-torch.log"
  echo "error: find_package(heteroq REQUIRED) succeeded with Torch disabled" >&2
  exit 1
fi
if ! grep -i "torch" "$scratch/no-torch.log"; then
  cat "$scratch/no-torch.log"
  echo "error: the configure failed, but not for want of Torch" >&2
  exit 1
fi

step "run the installed-consumer demo (smoke test)"
run "$scratch/examples-build/heteroq_demo" --epochs 1 --train-limit 2000

step "consumer test passed"
