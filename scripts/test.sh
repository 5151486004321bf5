#!/usr/bin/env bash
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#
# Every test (quick-start command 2): sets up and builds, then runs the C++ tests (ctest), the
# consumer-project test against the installed package, the Python tests against the build tree,
# the Python tests against a `pip install --no-build-isolation .` of the checkout, and the demos
# as smoke tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
HETEROQ_BUILD_DIR=${HETEROQ_BUILD_DIR:-$PWD/build}
export HETEROQ_BUILD_DIR
PYTHON=/usr/bin/python3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== test: C++ tests (ctest)"
ctest --test-dir "$HETEROQ_BUILD_DIR" --output-on-failure -j "$(nproc)"

echo "== test: installed package consumed by an outside CMake project"
bash tests/cmake/run_consumer_test.sh "$HETEROQ_BUILD_DIR" "$scratch/consumer"

echo "== test: Python tests against the build tree"
# pytest exits 5 when it collects no test: that is a failure here, like any non-zero exit.
PYTHONPATH=$HETEROQ_BUILD_DIR/python $PYTHON -m pytest -q tests/python

echo "== test: pip install --no-build-isolation . into a venv, then the Python tests against it (the notebook ran above)"
$PYTHON -m venv --system-site-packages "$scratch/venv"
# The README's command (the torch requirement is met by Debian's python3-torch: nothing to fetch).
"$scratch/venv/bin/python" -m pip install -q --no-build-isolation .
repo=$PWD
(cd "$scratch" && "$scratch/venv/bin/python" -c "import heteroq; \
  assert 'site-packages' in heteroq.__file__, heteroq.__file__; print('installed:', heteroq.__file__)" \
  && HETEROQ_SKIP_NOTEBOOK=1 "$scratch/venv/bin/python" -m pytest -q -c "$repo/pyproject.toml" --rootdir "$repo" "$repo/tests/python")

echo "== test: demos (smoke: 1 epoch on 3000 images)"
PYTHONPATH=$HETEROQ_BUILD_DIR/python $PYTHON examples/python/fashion_mnist_mlp.py --epochs 1 --train-limit 3000
"$HETEROQ_BUILD_DIR/examples/cpp/heteroq_demo" --epochs 1 --train-limit 3000

echo "== test: all passed"
