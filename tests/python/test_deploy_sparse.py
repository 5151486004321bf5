# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy: pruned models. Dense layers whose weights are mostly zero run a sparse kernel
over the nonzero weights only; the outputs are those of the dense kernel and of the model."""
import numpy as np
import pytest
import torch

from heteroq import deploy
from heteroq import nn as hnn

Q6 = "quantized_bits(6,0,alpha=1)"


def pruned_jet_model(sparsity, kernel=Q6, seed=0):
    """The jet MLP 16-64-32-32-5 with each layer's smallest-magnitude weights set to zero."""
    torch.manual_seed(seed)
    layers = [hnn.QActivation("quantized_bits(8,3,alpha=1)")]
    sizes = [16, 64, 32, 32, 5]
    for i in range(4):
        fc = hnn.QDense(sizes[i], sizes[i + 1], kernel_quantizer=kernel, bias_quantizer=Q6)
        with torch.no_grad():
            w = fc.weight
            k = int(round(sparsity * w.numel()))
            if k:
                cut = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= cut] = 0.0
        layers.append(fc)
        if i < 3:
            layers.append(hnn.QActivation("quantized_relu(6,0)"))
    return torch.nn.Sequential(*layers).eval()


def forward(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
@pytest.mark.parametrize("kernel", [Q6, "quantized_bits(12,0,alpha=1)", "quantized_po2(4)"])
def test_pruned_models_are_exact_with_either_kernel(sparsity, kernel):
    model = pruned_jet_model(sparsity, kernel)
    default = deploy.compile(model)
    assert all(s["kernel"] == "dense" for s in default.stage_info() if s["kind"] == "dense")
    engine = default.with_options(sparse_min_zero_fraction=0.75)
    info = [s for s in engine.stage_info() if s["kind"] == "dense"]
    quantized = [m.kernel_quantizer(m.weight) for m in model if isinstance(m, hnn.QDense)]
    for s, w in zip(info, quantized):
        assert s["nonzero_weights"] == int((w != 0).sum())
        zeros = 1 - s["nonzero_weights"] / w.numel()
        assert s["kernel"] == ("sparse" if zeros >= 0.75 else "dense")
    # (quantized_po2 has no zero: sign(0) 2^e_min, so its pruned layers stay dense)
    assert any(s["kernel"] == "sparse" for s in info) == (sparsity == 0.9 and "po2" not in kernel)
    sparse = engine.with_options(sparse_min_zero_fraction=0.0)
    dense = engine.with_options(sparse_min_zero_fraction=2.0)
    assert all(s["kernel"] == "sparse" for s in sparse.stage_info() if s["kind"] == "dense")
    assert all(s["kernel"] == "dense" for s in dense.stage_info() if s["kind"] == "dense")
    g = torch.Generator().manual_seed(1)
    for batch in [1, 3, 4, 7, 64]:
        x = torch.randn(batch, 16, generator=g) * 3
        ref = forward(model, x)
        for e in (engine, sparse, dense):
            assert torch.equal(e(x), ref)
        assert np.array_equal(sparse.run_codes(x), dense.run_codes(x))


def test_wide_sparse_layers_are_exact():
    """int64 accumulators (weights beyond int16) through the sparse kernel."""
    model = pruned_jet_model(0.9, kernel="quantized_bits(20,0,alpha=1)")
    engine = deploy.compile(model).with_options(sparse_min_zero_fraction=0.0)
    assert any(s["storage"] == "int32" for s in engine.stage_info())
    x = torch.randn(33, 16) * 3
    assert torch.equal(engine(x), forward(model, x))


def test_options_are_checked():
    engine = deploy.compile(pruned_jet_model(0.5))
    with pytest.raises(ValueError, match="sparse_min_zero_fraction must be >= 0"):
        engine.with_options(sparse_min_zero_fraction=-1.0)
    with pytest.raises(ValueError, match="gemm_min_batch must be >= 0"):
        engine.with_options(gemm_min_batch=-3)
