# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The docs' plot script runs and writes one figure per quantizer family."""
import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_plot_script_writes_every_family(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_quantizers", REPO / "docs" / "plot_quantizers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["plot_quantizers.py", str(tmp_path)]) == 0
    for family in module.FAMILIES:
        png = tmp_path / f"{family}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
