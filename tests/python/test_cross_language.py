# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""C++ and Python give identical outputs: compares with tests/cpp/golden.cpp's printout."""
import json
import subprocess

import pytest
import torch

import heteroq

SPECS = ["quantized_bits(6,0,alpha=1)", "quantized_bits(4,2,1)", "quantized_bits(5,1,alpha=0.3)",
         "quantized_bits(1,0)", "quantized_relu(6,0)", "quantized_relu(4,0,0,0.25)", "quantized_relu(5,1,1)",
         # options; the stochastic ones differ between forward and training mode
         "quantized_bits(6,0,alpha=1,use_stochastic_rounding=1,use_ste=0)",
         "quantized_bits(4,1,alpha='auto_po2',elements_per_scale=2,min_po2_exponent=-3,max_po2_exponent=0)",
         "quantized_relu(4,1,relu_upper_bound=1.5,is_quantized_clip=0,use_stochastic_rounding=1)",
         "quantized_relu(4,1,0,0.5,enable_fast_inference=1)",
         "quantized_po2(4,None,1)", "quantized_relu_po2(4,None,0.5,1)", "quantized_tanh(4,1)",
         "quantized_sigmoid(4,0,0,1)", "binary(alpha='auto_po2',use_stochastic_rounding=1)",
         "binary(use_stochastic_rounding=1)", "ternary(alpha='auto',use_stochastic_rounding=1)",
         "quantized_hswish(4,1,use_stochastic_rounding=1)"]


@pytest.fixture(scope="module")
def golden(build_dir):
    exe = build_dir / "tests" / "cpp" / "heteroq_golden"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_golden")
    out = subprocess.run([str(exe), *SPECS], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def as_bits(t: torch.Tensor):
    return t.detach().contiguous().view(torch.int32).flatten().tolist()


def to_unsigned(values):
    return [v & 0xFFFFFFFF for v in values]


@pytest.mark.parametrize("spec", SPECS)
def test_quantizer_outputs_identical(golden, spec):
    x = torch.linspace(-5, 5, 2001)
    assert to_unsigned(as_bits(heteroq.get_quantizer(spec).eval()(x))) == golden["quantizers"][spec]


@pytest.mark.parametrize("spec", SPECS)
def test_qlinear_outputs_identical(golden, spec):
    fc = heteroq.nn.QLinear(6, 4, kernel_quantizer=spec, bias_quantizer=spec).eval()
    with torch.no_grad():
        fc.weight.copy_(torch.linspace(-1.3, 1.1, 24).view(4, 6))
        fc.bias.copy_(torch.linspace(-0.7, 0.4, 4))
    y = fc(torch.linspace(-2, 2, 30).view(5, 6))
    assert to_unsigned(as_bits(y)) == golden["qlinear"][spec]


@pytest.mark.parametrize("spec", SPECS)
def test_training_outputs_identical(golden, spec):
    # The same seed gives the same noise in both languages (the global CPU generator).
    q = heteroq.get_quantizer(spec).train()
    torch.manual_seed(0)
    y = q(torch.linspace(-5, 5, 2001))
    assert to_unsigned(as_bits(y)) == golden["train"][spec]
