# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
import os
import pathlib
import shutil
import subprocess

import numpy as np
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


_HEADER_MAIN = """
#include <cstdio>
#include "{name}.h"
int main() {{
  float in[{name}::kInputSize];
  int64_t codes[{name}::kOutputSize];
  while (std::fread(in, sizeof(float), {name}::kInputSize, stdin) == (size_t){name}::kInputSize) {{
    if ({name}::infer(in, codes) != 0) return 3;
    std::fwrite(codes, sizeof(int64_t), {name}::kOutputSize, stdout);
  }}
  return 0;
}}
"""


@pytest.fixture
def header_codes(tmp_path):
    """run(engine, x, name) -> the output codes (N, output_size) of the engine's generated header
    `name`.h, compiled (-Wall -Werror) and run on the float32 inputs x (N, ...). Skips without a
    C++ compiler."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")

    def run(engine, x, name):
        engine.write_header(tmp_path / f"{name}.h", name)
        (tmp_path / f"{name}.cpp").write_text(_HEADER_MAIN.format(name=name))
        exe = tmp_path / name
        subprocess.run([cxx, "-std=c++17", "-O2", "-Wall", "-Werror", "-o", str(exe),
                        str(tmp_path / f"{name}.cpp")], check=True, cwd=tmp_path)
        data = np.ascontiguousarray(np.asarray(x, dtype=np.float32)).tobytes()
        out = subprocess.run([str(exe)], input=data, capture_output=True, check=True).stdout
        return np.frombuffer(out, dtype=np.int64).reshape(len(x), -1)

    return run
