# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.deploy with the `fixed` quantizer (heteroq.hgq.FixedQuantizer): widths per tensor,
channel or element as weights (each weight shifted to its output channel's finest frac), uniform
widths as activations (integer step tables; WRAP, not monotonic, by full tables)."""
import pytest
import torch

from heteroq import deploy
from heteroq import nn as hnn
from heteroq.hgq import FixedQuantizer


def forward(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("round_mode", ["RND", "RND_CONV", "TRN"])
@pytest.mark.parametrize("overflow_mode", ["SAT", "SAT_SYM", "WRAP"])
def test_per_element_weights_and_uniform_activations(round_mode, overflow_mode):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    fc1 = hnn.QDense(16, 12)
    fc1.kernel_quantizer = FixedQuantizer.from_widths(
        torch.ones(12, 16), torch.randint(-1, 2, (12, 16), generator=g).float(),
        torch.randint(2, 7, (12, 16), generator=g).float(), round_mode, overflow_mode)
    fc1.bias_quantizer = FixedQuantizer(8, 2, round_mode=round_mode, overflow_mode=overflow_mode)
    fc2 = hnn.QDense(12, 4, bias=False)
    fc2.kernel_quantizer = FixedQuantizer.from_widths(
        1.0, torch.zeros(4, 1), torch.randint(3, 6, (4, 1), generator=g).float())  # per channel
    act = FixedQuantizer(6, 2, keep_negative=False, round_mode=round_mode,
                         overflow_mode="SAT" if overflow_mode == "SAT_SYM" else overflow_mode)
    model = torch.nn.Sequential(hnn.QActivation("quantized_bits(8,3,alpha=1)"), fc1,
                                hnn.QActivation(act), fc2).eval()
    engine = deploy.compile(model)
    assert engine.float32_exact
    x = torch.randn(1000, 16, generator=g) * 3
    assert torch.equal(engine(x), forward(model, x))


def test_fixed_equals_quantized_bits_in_the_engine():
    torch.manual_seed(2)
    a = hnn.QDense(8, 4, kernel_quantizer="quantized_bits(6,1,alpha=1)", bias=False)
    b = hnn.QDense(8, 4, bias=False)
    b.kernel_quantizer = FixedQuantizer(6, 1)
    with torch.no_grad():
        b.weight.copy_(a.weight)
    inp = "quantized_bits(8,3,alpha=1)"
    ea = deploy.compile(torch.nn.Sequential(hnn.QActivation(inp), a).eval())
    eb = deploy.compile(torch.nn.Sequential(hnn.QActivation(inp), b).eval())
    x = torch.randn(200, 8) * 3
    assert torch.equal(ea(x), eb(x))
