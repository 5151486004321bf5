# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The jet-tagging notebook (examples/jet_tagging.ipynb) executes headless and shows the study.

It runs the study's "small" budget on the surrogate data (a few minutes), through Debian's
nbclient and an IPython kernel of this interpreter, writing its outputs to a temporary directory.
HETEROQ_SKIP_NOTEBOOK=1 skips it (for quick local runs); CI runs it.
"""
import json
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "jet_tagging.ipynb"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


@pytest.mark.skipif(os.environ.get("HETEROQ_SKIP_NOTEBOOK") == "1",
                    reason="HETEROQ_SKIP_NOTEBOOK=1")
def test_jet_tagging_notebook_executes(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("HETEROQ_BUDGET", "small")
    monkeypatch.setenv("HETEROQ_OUT", str(out))
    monkeypatch.delenv("HETEROQ_JETS", raising=False)
    # The kernel is this interpreter (Debian's torch is importable only from it), with the same
    # PYTHONPATH (the build's package).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:  # no cell raised
        assert not [o for o in c.get("outputs", []) if o.get("output_type") == "error"], _text(c)
    everything = "\n".join(_text(c) for c in code)
    assert "surrogate (synthetic" in everything  # the data is labelled as not the real one
    table = next(_text(c) for c in code if "Jet tagging, 16-64-32-32-5 MLP" in _text(c))
    rows = {line.split()[0]: line.split() for line in table.splitlines()
            if line.split() and line.split()[0] in ("BF", "Q6", "QE", "QB")}
    assert set(rows) == {"BF", "Q6", "QE", "QB"}
    # images shown inline: ROC, Pareto fronts, bit widths, learned-precision fronts
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 4
    # the learned-precision comparison printed its three fronts and the dominance verdict
    for title in ("AutoQ alone:", "learned precision alone:", "combined:"):
        assert title in everything
    assert "combined front dominates AutoQ alone's (accuracy vs EBOPs):" in everything
    # qstats, energy and FPGA tables of QE
    assert "Number of operations in model" in everything or "Total Bits" in everything

    results = json.loads((out / "results.json").read_text())
    assert results["surrogate"] is True and results["budget"] == "small"
    models = results["models"]
    for name in ("BF", "Q6", "QE", "QB"):
        m = models[name]
        assert 0.55 < m["accuracy"] <= 1.0, (name, m["accuracy"])  # chance is 0.2
        assert all(0.5 < auc <= 1.0 for auc in m["auc"].values()), (name, m["auc"])
        assert m["costs"]["energy_pj"] > 0 and m["costs"]["bits"] > 0
    # the 6-bit model costs fewer bits than the float one (priced at 8 bits, as QTools does)
    assert models["Q6"]["costs"]["bits"] < models["BF"]["costs"]["bits"]
    for name in ("QE", "QB"):
        trials = results["searches"][name]["trials"]
        assert len(trials) == results["trials"]
    for f in ("roc.png", "pareto.png", "bits.png", "learned_precision.png", "studies.db", "q6.safetensors",
              "qe.safetensors", "qb.safetensors"):
        assert (out / f).stat().st_size > 0, f
