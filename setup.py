# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Builds heteroq._C (and libheteroq) with CMake, the single source of truth for the build.

`pip install --no-build-isolation .` works offline with Debian's setuptools; with network access
pip's isolated build installs cmake and pybind11 from PyPI. A pip-installed PyTorch 2.x is found
through torch.utils.cmake_prefix_path.
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


def _prefix_paths():
    paths = []
    try:
        import torch.utils

        p = getattr(torch.utils, "cmake_prefix_path", None)
        if p and os.path.isdir(p):  # Debian's python3-torch does not ship it
            paths.append(p)
    except ImportError:
        pass
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
        prefixes = _prefix_paths()
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
