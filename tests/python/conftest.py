# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
import os
import pathlib

import pytest
import torch

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    """Every test starts from seed 0 and one intra-op thread, as the C++ programs the
    cross-language tests run (tests/cpp/golden.cpp): ATen's convolutions split their sums
    differently across thread counts (an ulp apart), and a test that changes the thread count
    (e.g. an example's main()) must not change the next test's arithmetic."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def build_dir() -> pathlib.Path:
    """The CMake build tree (HETEROQ_BUILD_DIR, else ./build), for tests that run C++ programs."""
    path = pathlib.Path(os.environ.get("HETEROQ_BUILD_DIR", REPO / "build"))
    if not (path / "CMakeCache.txt").exists():
        if "HETEROQ_BUILD_DIR" in os.environ:
            pytest.fail(f"HETEROQ_BUILD_DIR={path} is not a CMake build tree")
        pytest.skip(f"no CMake build tree at {path} (set HETEROQ_BUILD_DIR)")
    return path
