# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""heteroq.regularizers: total_ebops over modules with an ebops() method, the EBOPsRegularizer's
schedules (formulas), the penalty's gradient, the controller's convergence to a budget on a toy
problem, state save/restore, errors. tests/cpp/test_regularizer.cpp checks the same in C++."""
import math

import pytest
import torch

from heteroq.regularizers import EBOPsRegularizer, total_ebops


class Toy(torch.nn.Module):
    """Trainable widths b = softplus(raw) on n inputs of 8 bits: EBOPs = 8 sum(b)."""

    def __init__(self, n, init=2.0):
        super().__init__()
        self.raw = torch.nn.Parameter(torch.full((n,), math.log(math.expm1(init))))

    def widths(self):
        return torch.nn.functional.softplus(self.raw)

    def ebops(self):
        return 8.0 * self.widths().sum()


def test_total_ebops_sums_every_layer_once():
    a, b = Toy(4, 2.0), Toy(2, 3.0)
    model = torch.nn.Sequential(a, torch.nn.Sequential(b, torch.nn.ReLU()), torch.nn.Linear(2, 2),
                                b)
    e = total_ebops(model)
    assert e.dim() == 0
    assert e.item() == pytest.approx(8 * (4 * 2.0 + 2 * 3.0), rel=1e-6)
    e.backward()
    torch.testing.assert_close(a.raw.grad, 8 * torch.sigmoid(a.raw.detach()))
    assert total_ebops(a).item() == pytest.approx(64.0, rel=1e-6)
    assert total_ebops(torch.nn.Linear(2, 2)).item() == 0.0


def test_total_ebops_errors():
    class Bad(torch.nn.Module):
        def ebops(self):
            return torch.ones(3)

    with pytest.raises(ValueError, match=r"module '0'.*3 values"):
        total_ebops(torch.nn.Sequential(Bad()))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        total_ebops("model")


def test_schedules():
    c = EBOPsRegularizer.constant(2e-6)
    assert c.beta(0) == c.beta(100000) == 2e-6
    assert c.kind == "constant"

    lin = EBOPsRegularizer.ramp(1e-6, 3e-6, 100, 300, mode="linear")
    for step, beta in [(0, 1e-6), (100, 1e-6), (200, 2e-6), (250, 2.5e-6), (300, 3e-6),
                       (10000, 3e-6)]:
        assert lin.beta(step) == pytest.approx(beta, rel=1e-14)

    lg = EBOPsRegularizer.ramp(1e-6, 1e-2, 0, 400)  # log by default: a decade per 100 steps
    for k in range(5):
        assert lg.beta(100 * k) == pytest.approx(10.0 ** (k - 6), rel=1e-12)
    assert lg.beta(50) == pytest.approx(math.sqrt(1e-6 * 1e-5), rel=1e-12)
    assert repr(lg) == "EBOPsRegularizer.ramp(log, 1e-06@0 -> 0.01@400)"
    assert lg.knots == [(0, 1e-6), (400, 1e-2)]

    pw = EBOPsRegularizer.piecewise([(5000, 5e-7), (5001, 1e-6), (20000, 2e-3)], mode="log")
    assert pw.beta(10) == 5e-7
    assert pw.beta(5001) == pytest.approx(1e-6)
    assert pw.beta(20000) == pytest.approx(2e-3)
    assert 1e-6 < pw.beta(12000) < 2e-3


def test_penalty_is_beta_times_ebops_with_gradient():
    toy = Toy(3, 2.0)
    reg = EBOPsRegularizer.ramp(0.0, 1.0, 0, 10, mode="linear")
    p = reg(toy, 5)
    assert p.item() == pytest.approx(0.5 * 48.0, rel=1e-6)
    p.backward()
    torch.testing.assert_close(toy.raw.grad, 0.5 * 8 * torch.sigmoid(toy.raw.detach()))
    x = torch.ones(2, 2, requires_grad=True)
    assert torch.equal(reg.penalty(x, 10).detach(), torch.ones(2, 2))


def test_controller_converges_to_budget():
    """loss = sum(k / b) + beta 8 sum(b) has its minimum at b = sqrt(k / (8 beta)); the controller
    finds the beta at which the EBOPs meet the budget."""
    n = 16
    toy = Toy(n, 2.0)
    target = 8.0 * n * 4.0
    reg = EBOPsRegularizer.controller(target, 1e-4, gain=0.05, beta_min=1e-8, beta_max=10.0)
    opt = torch.optim.Adam(toy.parameters(), lr=0.05)
    k = torch.linspace(1.0, 4.0, n)
    for step in range(3000):
        opt.zero_grad()
        loss = (k / toy.widths()).sum() + reg(toy, step)
        loss.backward()
        opt.step()
    assert toy.ebops().item() / target == pytest.approx(1.0, abs=0.03), repr(reg)
    beta_eq = torch.sqrt(k).sum().item() ** 2 * 8.0 / target ** 2
    assert reg.beta(0) / beta_eq == pytest.approx(1.0, abs=0.1), repr(reg)


def test_controller_update_rule_and_state():
    reg = EBOPsRegularizer.controller(100.0, 1e-3, gain=0.5, beta_min=1e-6, beta_max=1e-1,
                                      interval=2)
    assert reg(torch.tensor(200.0), 0).item() == pytest.approx(0.2, rel=1e-6)
    assert reg.beta(0) == pytest.approx(1e-3 * math.exp(0.5), rel=1e-14)
    reg(torch.tensor(1000.0), 0)
    reg(torch.tensor(1000.0), 1)
    assert reg.beta(0) == pytest.approx(1e-3 * math.exp(0.5), rel=1e-14)
    reg(torch.tensor(50.0), 2)
    assert reg.beta(0) == pytest.approx(1e-3 * math.exp(0.25), rel=1e-14)
    reg(torch.tensor(1e12), 4)  # the exponent clipped at max_log_step = 1
    assert reg.beta(0) == pytest.approx(1e-3 * math.exp(1.25), rel=1e-14)
    for s in range(6, 40, 2):
        reg(torch.tensor(1e12), s)
    assert reg.beta(0) == 1e-1
    for s in range(40, 200, 2):
        reg(torch.tensor(0.0), s)
    assert reg.beta(0) == 1e-6

    reg(torch.tensor(300.0), 200)
    state = reg.state_dict()
    assert state["last_step"] == 200 and state["last_ebops"] == 300
    fresh = EBOPsRegularizer.controller(100.0, 1e-3, gain=0.5, beta_min=1e-6, beta_max=1e-1,
                                        interval=2)
    fresh.load_state_dict(state)
    assert fresh.beta(0) == reg.beta(0)
    for step in (201, 202):
        assert fresh(torch.tensor(80.0), step).item() == reg(torch.tensor(80.0), step).item()
    assert fresh.state_dict() == reg.state_dict()
    # torch.save-able with a checkpoint
    import io
    buffer = io.BytesIO()
    torch.save({"reg": reg.state_dict()}, buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer)["reg"])
    assert fresh.state_dict() == reg.state_dict()


def test_same_numbers_as_cpp_formula():
    """The controller's beta after a fixed EBOPs sequence, written out from the formula."""
    reg = EBOPsRegularizer.controller(1000.0, 1e-5, gain=0.2, beta_min=1e-9, beta_max=1.0)
    beta = 1e-5
    for step, e in enumerate([500.0, 1500.0, 4000.0, 900.0, 1000.0]):
        assert reg(torch.tensor(e), step).item() == pytest.approx(beta * e, rel=1e-6)
        beta = min(max(beta * math.exp(max(min(0.2 * (e / 1000.0 - 1), 1.0), -1.0)), 1e-9), 1.0)
        assert reg.beta(step) == pytest.approx(beta, rel=1e-14)


def test_errors():
    with pytest.raises(ValueError, match="`beta`"):
        EBOPsRegularizer.constant(-1.0)
    with pytest.raises(ValueError, match="`end_step`"):
        EBOPsRegularizer.ramp(1e-6, 1e-3, 10, 10)
    with pytest.raises(ValueError, match="logarithmic"):
        EBOPsRegularizer.ramp(0.0, 1e-3, 0, 10)
    with pytest.raises(ValueError, match="`mode`"):
        EBOPsRegularizer.ramp(1e-6, 1e-3, 0, 10, mode="cosine")
    with pytest.raises(TypeError, match="`step`"):
        EBOPsRegularizer.ramp(1e-6, 1e-3, 0.5, 10)
    with pytest.raises(ValueError, match="increase"):
        EBOPsRegularizer.piecewise([(5, 1.0), (5, 2.0)])
    with pytest.raises(ValueError, match="no knot"):
        EBOPsRegularizer.piecewise([])
    with pytest.raises(TypeError, match="pairs"):
        EBOPsRegularizer.piecewise([1, 2])
    with pytest.raises(ValueError, match="`target`"):
        EBOPsRegularizer.controller(0.0, 1e-3)
    with pytest.raises(ValueError, match="`beta0`"):
        EBOPsRegularizer.controller(10.0, 2.0)
    with pytest.raises(ValueError, match="`interval`"):
        EBOPsRegularizer.controller(10.0, 1e-3, interval=0)
    with pytest.raises(TypeError, match="build it"):
        EBOPsRegularizer(None)
    reg = EBOPsRegularizer.controller(10.0, 1e-3)
    with pytest.raises(ValueError, match="one EBOPs value"):
        reg(torch.ones(2), 0)
    with pytest.raises(ValueError, match=">= 0"):
        reg(torch.tensor(-1.0), 0)
    with pytest.raises(ValueError, match="finite"):
        reg(torch.tensor(float("nan")), 0)
    with pytest.raises(ValueError, match="`step`"):
        reg(torch.tensor(1.0), -1)
    with pytest.raises(TypeError, match="`step`"):
        reg(torch.tensor(1.0), True)
    with pytest.raises(ValueError, match="floating-point"):
        reg(torch.tensor(3), 0)
    with pytest.raises(TypeError, match="Module or a tensor"):
        reg(3.0, 0)
    with pytest.raises(ValueError, match="missing key"):
        reg.load_state_dict({"beta": 1e-3})
    with pytest.raises(ValueError, match="'beta'"):
        reg.load_state_dict({"beta": 5.0, "last_step": 0, "last_ebops": 0})
    with pytest.raises(ValueError, match="unknown key 'x'"):
        reg.load_state_dict({"beta": 1e-3, "last_step": 0, "last_ebops": 0, "x": 1})
    assert reg.beta(0) == 1e-3 and reg.state_dict()["last_step"] == -1


def test_h_layers_total_ebops_and_penalty_gradient():
    """heteroq.hgq's H layers have ebops(): total_ebops sums them, and the penalty's gradient
    reaches their bit widths (EBOPs.TotalOfHLayersAndPenaltyGradient in C++)."""
    from heteroq import hgq
    model = torch.nn.Sequential(hgq.HDense(4, 6), torch.nn.ReLU(), hgq.HDense(6, 3))
    model(torch.randn(16, 4))
    e = total_ebops(model)
    assert e.item() == pytest.approx((model[0].ebops() + model[2].ebops()).item())
    assert e.item() > 0
    EBOPsRegularizer.constant(1e-3)(model, 0).backward()
    grads = [p.grad for n, p in model.named_parameters() if "frac_bits" in n]
    assert grads and any(g is not None and float(g.abs().sum()) > 0 for g in grads)
