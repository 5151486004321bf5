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


# -- rnn: the recurrent layers (tests/cpp/golden.cpp, rnn_golden) ---------------------------------

def _wave(shape, scale):
    n = 1
    for d in shape:
        n *= d
    return (torch.sin(torch.arange(n, dtype=torch.float32) * 0.37) * scale).view(shape)


def _fill_wave(m):
    with torch.no_grad():
        for _, p in m.named_parameters():
            p.copy_(_wave(p.shape, 0.6))
    return m


def test_rnn_identical_to_cpp(golden):
    qn = heteroq.nn
    kq, rq = "quantized_bits(6,0,alpha=1)", "quantized_bits(5,0,alpha=1)"
    bq, sq = "quantized_bits(8,2,alpha=1)", "quantized_bits(8,1,alpha=1)"
    outs = {}
    lstm = _fill_wave(qn.QLSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True,
                               kernel_quantizer=kq, recurrent_quantizer=rq, bias_quantizer=bq,
                               state_quantizer=sq)).eval()
    y, (h, c) = lstm(_wave((2, 6, 4), 1.5), (_wave((4, 2, 5), 0.5), _wave((4, 2, 5), 0.8)))
    outs["lstm"] = torch.cat([y.flatten(), h.flatten(), c.flatten()])
    (y.square().sum() + c.sum()).backward()
    outs["lstm_grad"] = torch.cat([p.grad.flatten() for p in lstm.parameters()])
    for reset_after, name in ((True, "gru"), (False, "gru_reset_before")):
        gru = _fill_wave(qn.QGRU(4, 5, num_layers=2, kernel_quantizer=kq, recurrent_quantizer=rq,
                                 bias_quantizer=bq, state_quantizer=sq,
                                 recurrent_activation="quantized_sigmoid(6)",
                                 reset_after=reset_after)).eval()
        y, h = gru(_wave((6, 2, 4), 1.5))
        outs[name] = torch.cat([y.flatten(), h.flatten()])
    rnn = _fill_wave(qn.QSimpleRNN(4, 5, bidirectional=True, kernel_quantizer=kq,
                                   recurrent_quantizer=rq, activation="quantized_relu(6,2)")).eval()
    y, h = rnn(_wave((6, 4), 1.5))
    outs["simple_rnn"] = torch.cat([y.flatten(), h.flatten()])
    # Training mode: stochastic rounding and dropout, same seed, same draws in the same order.
    train = _fill_wave(qn.QLSTM(4, 5, num_layers=2, dropout=0.4,
                                kernel_quantizer="quantized_bits(6,0,alpha=1,use_stochastic_rounding=1)",
                                state_quantizer="quantized_bits(8,1,alpha=1,use_stochastic_rounding=1)",
                                activation="quantized_tanh(6,use_stochastic_rounding=1)",
                                recurrent_activation="sigmoid")).train()
    torch.manual_seed(0)
    outs["lstm_train"] = train(_wave((6, 2, 4), 1.5))[0].flatten()
    assert set(outs) == set(golden["rnn"])
    for name, y in outs.items():
        assert to_unsigned(as_bits(y)) == golden["rnn"][name], name
    # The scripted modules give the same bits.
    scripted = torch.jit.script(gru)
    assert torch.equal(scripted(_wave((6, 2, 4), 1.5))[0], gru(_wave((6, 2, 4), 1.5))[0])
