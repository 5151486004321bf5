#!/usr/bin/env bash
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#
# The main job (quick-start command 1): sets up and builds, then trains a float and a 6-bit
# quantized MLP on Fashion-MNIST in Python and in C++, printing accuracies and quantizers.
# Extra arguments go to both programs (e.g. --epochs 1 --train-limit 5000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
HETEROQ_BUILD_DIR=${HETEROQ_BUILD_DIR:-$PWD/build}

echo "== main: Python demo (examples/python/fashion_mnist_mlp.py)"
PYTHONPATH=$HETEROQ_BUILD_DIR/python /usr/bin/python3 examples/python/fashion_mnist_mlp.py "$@"
echo "== main: C++ demo (examples/cpp/demo.cpp, linking heteroq::heteroq)"
"$HETEROQ_BUILD_DIR/examples/cpp/heteroq_demo" "$@"
