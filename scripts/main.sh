#!/usr/bin/env bash
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
#
# The main job (quick-start command 1): sets up and builds, then runs the jet-tagging study
# (examples/jet_tagging.py: float, 6-bit and AutoQ energy/bits models, their accuracies, ROC AUCs
# and costs beside the published figures; small budget by default, on the surrogate data unless
# --data names the real file), then the C++ demo (a 6-bit MLP on Fashion-MNIST, linking
# heteroq::heteroq). Extra arguments go to the study (e.g. --budget full, --data FILE).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
HETEROQ_BUILD_DIR=${HETEROQ_BUILD_DIR:-$PWD/build}

echo "== main: the jet-tagging study (examples/jet_tagging.py)"
PYTHONPATH=$HETEROQ_BUILD_DIR/python /usr/bin/python3 examples/jet_tagging.py "$@"
echo "== main: C++ demo (examples/cpp/demo.cpp, linking heteroq::heteroq)"
"$HETEROQ_BUILD_DIR/examples/cpp/heteroq_demo"
