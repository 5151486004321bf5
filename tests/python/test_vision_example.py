# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""examples/vision/fashion_mnist_autoq.py: a smoke run with a tiny budget (a few hundred real
Fashion-MNIST images, 1 epoch, 2 AutoQ trials) completes, prints the table and the best
configuration, and writes its JSON summary."""
import importlib.util
import json
import pathlib

import pytest

from heteroq import datasets

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "vision" / "fashion_mnist_autoq.py"


def load_script():
    spec = importlib.util.spec_from_file_location("fashion_mnist_autoq", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fashion_mnist_available() -> bool:
    try:
        datasets.load_fashion_mnist("test", limit=1)
    except (OSError, ValueError):
        return False
    return True


@pytest.mark.skipif(not fashion_mnist_available(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_smoke_run(tmp_path, capsys):
    script = load_script()
    out = tmp_path / "results.json"
    rc = script.main(["--train-limit", "300", "--test-limit", "200", "--epochs", "1",
                      "--trials", "2", "--trial-epochs", "1", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "the real data (Debian package dataset-fashion-mnist)" in text
    for row in ("float (fp32)", "uniform 6-bit", "AutoQ (energy)", "AutoQ best configuration"):
        assert row in text
    summary = json.loads(out.read_text())
    assert summary["train_images"] == 300 and summary["test_images"] == 200
    assert summary["trials"] == 2
    models = summary["models"]
    assert set(models) == {"float (fp32)", "uniform 6-bit", "AutoQ (energy)"}
    for r in models.values():
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["energy_pj"] > 0 and r["bits"] > 0
    # quantized models cost less energy than the fp32-priced float model
    assert models["uniform 6-bit"]["energy_pj"] < models["float (fp32)"]["energy_pj"]
    assert models["AutoQ (energy)"]["energy_pj"] < models["float (fp32)"]["energy_pj"]
    assert models["uniform 6-bit"]["layer_bits"] == "w 6,6,6 a 6,6"
    config = summary["autoq"]["best_config"]["quantizer_config"]
    assert {"0", "3", "7"} <= set(config)
    assert "kernel_quantizer" in config["0"]


def test_bad_arguments_exit():
    script = load_script()
    with pytest.raises(SystemExit):
        script.main(["--epochs", "0"])
