# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Exports of pruned models (issue 9): torch.nn.utils.prune leaves ``weight = weight_orig *
weight_mask``; the QONNX graph carries exact zeros where the mask is 0 and computes the pruned
model exactly, and hls4ml_config's accumulators are those of the remaining weights."""
import copy
from collections import OrderedDict

import numpy as np
import onnx
import torch
from torch.nn.utils import prune

import heteroq
from heteroq import export as E
from heteroq import nn as qnn

import qonnx_reference as R

Q6 = "quantized_bits(6,0,alpha=1)"
IN_Q = "quantized_bits(8,3,alpha=1)"


def _model():
    torch.manual_seed(5)
    return torch.nn.Sequential(OrderedDict([
        ("conv", qnn.QConv2d(2, 6, 3, padding=1, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("act1", qnn.QActivation("quantized_relu(6,2)")),
        ("flat", torch.nn.Flatten()),
        ("fc1", qnn.QDense(6 * 5 * 5, 16, kernel_quantizer="quantized_bits(6,0,alpha='auto_po2')",
                           bias_quantizer=Q6)),
        ("act2", qnn.QActivation("quantized_relu(6,2)")),
        ("fc2", qnn.QDense(16, 4, kernel_quantizer=Q6, bias_quantizer=Q6)),
        ("out", qnn.QActivation("quantized_bits(10,4,alpha=1)")),
    ]))


def _pruned():
    model = _model()
    with torch.no_grad():
        model.fc1.weight.mul_(3)  # large weights, so that pruning changes the accumulators
    prune.l1_unstructured(model.conv, "weight", amount=0.5)
    prune.l1_unstructured(model.fc1, "weight", amount=0.9)
    prune.ln_structured(model.fc2, "weight", amount=0.5, n=1, dim=0)  # two whole outputs
    return model


def _materialized(pruned):
    """The same model with the masks applied and removed: plain parameters weight_orig * mask."""
    plain = copy.deepcopy(pruned)
    for m in (plain.conv, plain.fc1, plain.fc2):
        prune.remove(m, "weight")
    return plain


def test_pruned_model_exports_exact_zeros(tmp_path):
    model = _pruned().eval()
    assert hasattr(model.fc1, "weight_orig") and hasattr(model.fc1, "weight_mask")
    x = torch.randn(32, 2, 5, 5) * 3
    path = tmp_path / "pruned.onnx"
    E.to_qonnx(model, x, path, input_quantizer=IN_Q)
    loaded = E.load_qonnx(path)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    for name, layer, transpose in (("conv_weight", model.conv, False),
                                   ("fc1_weight", model.fc1, True),
                                   ("fc2_weight", model.fc2, True)):
        mask = layer.weight_mask.numpy()
        w = inits[name].T if transpose else inits[name]
        assert np.all(w[mask == 0] == 0.0), name  # exact zeros where pruned
        assert np.array_equal(w, layer.quantized_weight().detach().numpy()), name
        assert (mask == 0).mean() >= 0.45
    # The graph computes the pruned model exactly.
    with torch.no_grad():
        y = model(heteroq.get_quantizer(IN_Q)(x)).numpy()
    assert np.array_equal(R.run_model(loaded, x.numpy()), y)
    # The masks stay in place (the export does not touch the pruning reparametrization).
    assert hasattr(model.fc1, "weight_orig")


def test_pruned_model_accumulators_reflect_the_remaining_weights():
    pruned = _pruned().eval()
    shape = (1, 2, 5, 5)
    config = E.hls4ml_config(pruned, shape, IN_Q)
    # The same weights without the pruning machinery give the same configuration.
    assert config == E.hls4ml_config(_materialized(pruned).eval(), shape, IN_Q)
    dense = _model().eval()
    with torch.no_grad():
        dense.fc1.weight.mul_(3)
    full = E.hls4ml_config(dense, shape, IN_Q)
    narrower = 0
    for name in ("conv", "fc1", "fc2"):
        p, f = config["LayerName"][name]["Precision"], full["LayerName"][name]["Precision"]
        wp, wf = int(p["accum"].split("<")[1].split(",")[0]), \
            int(f["accum"].split("<")[1].split(",")[0])
        assert wp <= wf, name
        narrower += wp < wf
    assert narrower >= 1  # 90% of fc1's weights gone: its sums need fewer integer bits
    # And each pruned accumulator is qstats's for the pruned weights.
    stats = heteroq.cost.qstats(pruned, shape, IN_Q)
    for name in ("conv", "fc1", "fc2"):
        acc = stats.layer(name).accumulator
        integer = int(config["LayerName"][name]["Precision"]["accum"].split(",")[1].rstrip(">"))
        assert integer - 1 in (acc.bits, acc.bits + 1)
