# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""docs/deployment.md: its example runs and prints what the page shows."""
import contextlib
import io
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_deployment_example_prints_the_documented_output(tmp_path, monkeypatch):
    text = (REPO / "docs" / "deployment.md").read_text()
    example = text[text.index("## Example"):text.index("## 1. QONNX export")]
    code = re.search(r"```python\n(.*?)```", example, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", example, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "deployment.md", "exec"), {"__name__": "deployment_example"})
    assert out.getvalue() == shown
    assert (tmp_path / "jet.onnx").exists()
