# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Builds heteroq._C (and libheteroq) with CMake, the single source of truth for the build.

Build with `pip install --no-build-isolation .`: the build must see the PyTorch the package will run
with (an isolated build would not), whose LibTorch CMake then finds through
torch.utils.cmake_prefix_path (pip's torch) or the system (Debian's libtorch-dev); CMake refuses a
LibTorch of another version. Offline on Debian 12 this uses Debian's setuptools, cmake and pybind11.
"""
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


def _torch():
    """The PyTorch the extension will run with; it must be importable while building."""
    try:
        import torch
        import torch.utils
    except ImportError as e:
        raise SystemExit(
            "heteroq: building needs PyTorch importable by this interpreter; install torch first, "
            "then build with `pip install --no-build-isolation .` so the build sees it "
            f"({e})") from e
    return torch


def _prefix_paths(torch):
    paths = []
    p = getattr(torch.utils, "cmake_prefix_path", None)
    if p and os.path.isdir(p):  # Debian's python3-torch does not ship it
        paths.append(p)
    try:
        import pybind11

        paths.append(os.path.dirname(os.path.dirname(pybind11.get_cmake_dir())))
    except (ImportError, AttributeError):
        pass
    return paths


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = os.path.abspath(os.path.dirname(self.get_ext_fullpath(ext.name)))
        os.makedirs(out_dir, exist_ok=True)
        for stale in os.listdir(out_dir):  # a previous build's libraries
            if stale.startswith(("libheteroq.so", "_C.")):
                os.remove(os.path.join(out_dir, stale))
        build_temp = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_temp, exist_ok=True)
        src = os.path.dirname(os.path.abspath(__file__))
        args = [
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPYTHON_EXECUTABLE={sys.executable}",
            "-DHETEROQ_BUILD_PYTHON=ON",
            "-DHETEROQ_BUILD_TESTS=OFF",
            "-DHETEROQ_BUILD_BENCHMARKS=OFF",
            "-DHETEROQ_BUILD_EXAMPLES=OFF",
            "-DHETEROQ_INSTALL=OFF",
            f"-DHETEROQ_PYTHON_OUTPUT_DIR={out_dir}",
        ]
        torch = _torch()
        # CMake checks that the LibTorch it finds is this PyTorch's (major.minor).
        args.append("-DHETEROQ_EXPECTED_TORCH_VERSION=" + ".".join(torch.__version__.split(".")[:2]))
        prefixes = _prefix_paths(torch)
        if prefixes:
            args.append("-DCMAKE_PREFIX_PATH=" + ";".join(prefixes))
        if shutil.which("ninja"):
            args += ["-G", "Ninja"]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "-S", src, "-B", build_temp, *args], check=True)
        subprocess.run(["cmake", "--build", build_temp, "--target", "heteroq_python", "-j", jobs],
                       check=True)


setup(
    ext_modules=[CMakeExtension("heteroq._C")],
    cmdclass={"build_ext": CMakeBuild},
    # Keep setuptools' build tree apart from the CMake development tree in ./build.
    options={"build": {"build_base": os.path.join("build", "pip")}},
)
