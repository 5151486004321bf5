# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Tests of the search-then-refine pipeline (heteroq.autoq.refine, make_refiner): AutoQ's Pareto
trials refined with learned precision (heteroq.hgq) under an EBOPs regularizer."""
import csv
import io

import pytest
import torch

import heteroq
from heteroq import autoq, hgq, regularizers

CONFIG = {"kernel": {"quantized_bits(3,0,1,alpha=1)": 3, "quantized_bits(6,0,1,alpha=1)": 6},
          "bias": {"quantized_bits(8,3,1,alpha=1)": 8},
          "activation": {"quantized_relu(3,1)": 3, "quantized_relu(6,2)": 6}}
LIMIT = {"Dense": [8, 8, 8], "Activation": [6]}


def data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return list(zip(x.split(64), y.split(64))), [(x, y)]


def fitted_search(keep_models="pareto", trials=4):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    train, val = data()
    trainer = autoq.make_trainer(train, val, torch.nn.functional.cross_entropy,
                                 optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), progress=False)
    s = autoq.AutoQ(model, input_shape=(1, 6), goal="bits", quantization_config=CONFIG, limit=LIMIT,
                    max_trials=trials, epochs=2, seed=3, progress=False, keep_models=keep_models)
    return s.fit(trainer)


def refiner(regularizer, epochs=3, lr=1e-2, **kw):
    train, val = data()
    return autoq.make_refiner(train, val, torch.nn.functional.cross_entropy, regularizer=regularizer,
                              epochs=epochs, input_shape=(1, 6),
                              optimizer=lambda p: torch.optim.Adam(p, lr=lr), **kw)


def test_refine_points_fronts_and_costs():
    s = fitted_search()
    front = s.pareto_front()
    r = autoq.refine(s, refiner(regularizers.EBOPsRegularizer.constant(1e-4)))
    autoq_pts = [p for p in r.points if p.stage == "autoq"]
    assert sorted(p.trial for p in autoq_pts) == sorted(t.number for t in front)
    for p in autoq_pts:
        assert p.metric == [t for t in front if t.number == p.trial][0].metric
    refined = [p for p in r.points if p.stage == "refine"]
    assert len(refined) == 3 * len(front)
    assert sorted({p.trial for p in refined}) == sorted(t.number for t in front)
    _, val = data()
    for p in r.points:
        # every point's EBOPs are the cost model's EBOPs of its (converted) model, and its metric
        # the model's accuracy
        assert p.ebops == heteroq.cost.bops(p.model, [1, 6]).ebops
        x, y = val[0]
        with torch.no_grad():
            acc = float((p.model.eval()(x).argmax(-1) == y).float().mean())
        assert abs(acc - p.metric) < 1e-6
    # refined models hold only fixed quantizers, which the integer engine accepts
    for p in refined:
        assert not any(isinstance(m, hgq._H_LAYERS) for m in p.model.modules())
    # the fronts: nothing on a front is dominated by any point of the set it is the front of
    for pts, fr in ((r.points, r.pareto_front()), ([p for p in r.points if p.stage == "autoq"],
                                                    r.stage_front("autoq"))):
        for f in fr:
            assert not any(q.metric >= f.metric and q.ebops <= f.ebops and
                           (q.metric > f.metric or q.ebops < f.ebops) for q in pts)
    rows = list(csv.DictReader(io.StringIO(r.to_csv())))
    assert len(rows) == len(r.points)
    assert sum(int(row["on_front"]) for row in rows) == len(r.pareto_front())


def test_penalty_lowers_ebops_against_no_penalty():
    s = fitted_search()
    # Adam moves a bit width by about lr per step: 6 epochs of 4 batches at lr 0.1 can cross
    # several integer widths
    free = autoq.refine(s, refiner(regularizers.EBOPsRegularizer.constant(0.0), epochs=6, lr=0.1),
                        trials="best")
    tight = autoq.refine(s, refiner(regularizers.EBOPsRegularizer.constant(3e-2), epochs=6, lr=0.1),
                         trials="best")
    last = lambda r: [p for p in r.points if p.stage == "refine"][-1]  # noqa: E731
    assert last(tight).ebops < last(free).ebops
    assert last(tight).beta == pytest.approx(3e-2)


def test_each_model_starts_from_the_regularizer_as_given():
    # a controller changes its beta while training; refining the same trial twice with one refiner
    # gives the same checkpoints (the second model does not inherit the first one's beta)
    s = fitted_search()
    best = s.best_trial.number
    reg = regularizers.EBOPsRegularizer.controller(1.0, 1e-4, gain=0.5)
    r = autoq.refine(s, refiner(reg, epochs=2), trials=[best, best])
    assert [p.stage for p in r.points] == ["autoq", "refine", "refine"] * 2
    assert r.points[2].beta != 1e-4  # the controller moved
    for a, b in zip(r.points[1:3], r.points[4:6]):
        assert (a.beta, a.ebops, a.metric) == (b.beta, b.ebops, b.metric)


def test_regularizer_made_per_model():
    # a budget of half each model's starting EBOPs, made for each model from the model
    s = fitted_search()
    targets = []

    def half(hmodel):
        assert any(isinstance(m, hgq._H_LAYERS) for m in hmodel.modules())
        targets.append(0.5 * float(regularizers.total_ebops(hmodel)))
        return regularizers.EBOPsRegularizer.controller(targets[-1], 1e-3, gain=0.5)

    r = autoq.refine(s, refiner(half, epochs=6, lr=0.1))
    assert len(targets) == len(s.pareto_front())
    start = {p.trial: p.ebops for p in r.points if p.stage == "autoq"}
    for p in r.points:
        if p.stage == "refine" and p.epoch == 6:
            assert p.ebops < start[p.trial], p.trial
    with pytest.raises(ValueError, match=r"regularizer\(hmodel\) must return"):
        autoq.refine(s, refiner(lambda m: 1.0), trials="best")


def test_width_learning_rate():
    # at a weight-sized learning rate the widths barely move in 2 epochs; their own Adam at 0.1
    # moves them under the same penalty
    s = fitted_search()
    reg = regularizers.EBOPsRegularizer.constant(3e-2)
    slow = autoq.refine(s, refiner(reg, epochs=2, lr=1e-3), trials="best")
    fast = autoq.refine(s, refiner(reg, epochs=2, lr=1e-3, width_lr=0.1), trials="best")
    assert fast.points[-1].ebops < slow.points[-1].ebops
    with pytest.raises(ValueError, match="width_lr must be > 0"):
        refiner(reg, width_lr=-1.0)


def test_refine_errors():
    s = fitted_search(keep_models="best")
    reg = regularizers.EBOPsRegularizer.constant(1e-4)
    others = [t.number for t in s.pareto_front() if t.number != s.best_trial.number]
    if others:
        with pytest.raises(ValueError, match="not in this process"):
            autoq.refine(s, refiner(reg), trials=others)
    with pytest.raises(ValueError, match="not a complete trial"):
        autoq.refine(s, refiner(reg), trials=[999])
    with pytest.raises(ValueError, match="trials must be"):
        autoq.refine(s, refiner(reg), trials="all")
    with pytest.raises(ValueError, match="search must be"):
        autoq.refine(object(), refiner(reg))
    with pytest.raises(ValueError, match="regularizer must have"):
        refiner(object())
    with pytest.raises(ValueError, match="epochs and eval_every"):
        refiner(reg, epochs=0)
    with pytest.raises(ValueError, match="keep_models"):
        autoq.AutoQ(torch.nn.Sequential(torch.nn.Linear(2, 2)), keep_models="some")
