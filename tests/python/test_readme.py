# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The README's Python usage block runs as written and prints what its comments say."""
import pathlib
import re

import torch

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_readme_python_usage_runs():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python block"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    q, r = namespace["q"], namespace["r"]
    assert q(torch.tensor([0.3, -1.2, 0.99])).tolist() == [0.25, -1.0, 0.875]
    assert r(torch.tensor([-1.0, 0.6, 9.0])).tolist() == [0.0, 0.5, 3.75]
    assert (q.bits, q.min(), q.max(), q.to_string()) == (4, -1.0, 1.0, "quantized_bits(4,0,0,alpha=1.0)")
    qcnn = namespace["qcnn"]
    assert [type(m).__name__ for m in qcnn] == ["QConv2dBatchNorm", "Identity", "QActivation",
                                               "Flatten", "QLinear"]
