# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The README's Python usage block runs as written and prints what its comments say."""
import pathlib
import re

import torch

import heteroq

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_readme_python_usage_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the block writes model.safetensors
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python block"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    q, r = namespace["q"], namespace["r"]
    assert q(torch.tensor([0.3, -1.2, 0.99])).tolist() == [0.25, -1.0, 0.875]
    assert r(torch.tensor([-1.0, 0.6, 9.0])).tolist() == [0.0, 0.5, 3.75]
    assert (q.bits, q.min(), q.max(), q.to_string()) == (4, -1.0, 1.0, "quantized_bits(4,0,0,alpha=1.0)")
    assert "smult_6_8" in capsys.readouterr().out  # print_qstats printed QKeras's table
    stats = namespace["stats"]
    assert stats.layer("0").type == "QLinear"
    model, rebuilt = namespace["model"], namespace["rebuilt"]
    assert heteroq.to_config(rebuilt) == heteroq.to_config(model)
    assert (tmp_path / "model.safetensors").exists()
    out, h, c = namespace["out"], namespace["h"], namespace["c"]
    assert out.shape == (10, 4, 32) and h.shape == c.shape == (1, 4, 32)
    assert namespace["energy"].total > 0 and namespace["ebops"] > 0 and namespace["fpga"].lut > 0
    search = namespace["search"]
    assert len([t for t in search.trials if t.status == "complete"]) == 4
    x, engine = namespace["x"], namespace["engine"]
    inq = heteroq.get_quantizer("quantized_bits(8,3,alpha=1)")
    assert torch.equal(engine(x), model(inq(x)))
    assert (tmp_path / "model.onnx").exists()
    qcnn = namespace["qcnn"]
    assert [type(m).__name__ for m in qcnn] == ["QConv2dBatchNorm", "Identity", "QActivation",
                                               "Flatten", "QLinear"]
