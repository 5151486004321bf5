# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Tests of heteroq.autoq (the Python API over the C++ AutoQ engine)."""
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import heteroq
from heteroq import autoq

LIMIT = {"Dense": [8, 8, 8], "Activation": [8]}
# quantizers that train without QKeras's implicit alpha (qkeras_compatible=False)
TRAINABLE = {"kernel": {"quantized_bits(4,0,1)": 4, "quantized_bits(6,0,1)": 6, "quantized_po2(4,1)": 4},
             "bias": {"quantized_bits(8,3,1)": 8}, "activation": {"quantized_relu(4,2)": 4, "quantized_relu(8,2)": 8}}


def mlp(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))


def toy_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def bits_goal(**kw):
    return autoq.custom_goal(lambda m: autoq.model_bits(m), **kw)


# ---- forgiving factor, by hand ------------------------------------------------------------------
def test_forgiving_factor_by_hand():
    # 4x smaller than the reference: 2 halvings at +8% each
    assert autoq.forgiving_factor(0.9, 1000, 250) == pytest.approx(0.9 * 1.16, abs=1e-15)
    # 2x bigger: -8%
    assert autoq.forgiving_factor(0.9, 1000, 2000) == pytest.approx(0.9 * 0.92, abs=1e-15)
    # delta_p 10, delta_n 5, rate 4: 8x smaller = 1.5 steps of +10%
    assert autoq.forgiving_factor(0.5, 800, 100, delta_p=10, delta_n=5, rate=4) == pytest.approx(0.575, abs=1e-15)
    # stress 0.5 halves the reference: equal cost is 2x too big, -delta_n
    assert autoq.forgiving_factor(1.0, 1000, 1000, delta_n=3, stress=0.5) == pytest.approx(0.97, abs=1e-15)
    assert autoq.forgiving_factor(0.7, 300, 300) == 0.7
    with pytest.raises(ValueError, match="cost"):
        autoq.forgiving_factor(0.7, 300, 0)
    with pytest.raises(ValueError, match="rate"):
        autoq.forgiving_factor(0.7, 300, 30, rate=1.0)


def test_trial_scores_use_the_factor():
    x, y = toy_data()
    ref_model = mlp()
    search = autoq.AutoQ(ref_model, goal=bits_goal(delta_p=6, delta_n=4, rate=2), limit=LIMIT, max_trials=3,
                         progress=False)
    search.fit(lambda model, epochs, trial: 0.5)
    ref = autoq.model_bits(ref_model)
    assert search.reference_cost == ref
    for t in search.trials:
        assert t.status == "complete"
        d = (0.06 if t.cost < ref else 0.04) * math.log(ref / t.cost) / math.log(2)
        assert t.score == pytest.approx(0.5 * (1 + d), abs=1e-14)


# ---- space ---------------------------------------------------------------------------------------
def test_space_from_model_and_decode():
    space = autoq.SearchSpace(mlp(), limit={"Dense": [4, 8, 4], "Activation": [4]})
    names = [p["name"] for p in space.params]
    assert names == ["0_kernel_quantizer", "0_bias_quantizer", "1_activation_quantizer", "2_kernel_quantizer",
                     "2_bias_quantizer"]
    params = {p["name"]: p["choices"][-1] for p in space.params}
    d = space.decode(params)
    assert d["quantizer_config"]["0"] == {"kernel_quantizer": "quantized_po2(4,1)",
                                          "bias_quantizer": "quantized_po2(4,8)"}
    assert d["quantizer_config"]["1"] == "quantized_relu_po2(4,4)"
    assert d["bits"]["0/kernel"] == 4


def test_bit_ranges_and_tune_filters():
    space = autoq.SearchSpace(mlp(), bit_ranges={"kernel": (2, 4), "activation": (3, 3)}, tune_filters="layer",
                              tune_filters_exceptions="^2")
    names = [p["name"] for p in space.params]
    assert "network_filters_0" in names and "network_filters_2" not in names
    k = next(p for p in space.params if p["name"] == "0_kernel_quantizer")
    assert k["choices"] == ["quantized_bits(2,0,1,alpha=1)", "quantized_bits(3,0,1,alpha=1)",
                            "quantized_bits(4,0,1,alpha=1)"]
    m = autoq.scale_widths(mlp(), {"0": 0.5})
    assert m[0].out_features == 6 and m[2].in_features == 6
    assert m(torch.randn(2, 6)).shape == (2, 3)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="empty search space"):
        autoq.SearchSpace(mlp(), limit={"Conv2D": [4]})
    with pytest.raises(ValueError, match="below every quantizer"):
        autoq.SearchSpace(mlp(), limit={"Dense": [0, 8, 8]})
    with pytest.raises(ValueError, match="not in quantization_config"):
        autoq.SearchSpace(mlp(), limit={"Dense": [["quantized_bits(3,0,1)"], 8, 8]})
    with pytest.raises(ValueError, match="either quantization_config or bit_ranges"):
        autoq.SearchSpace(mlp(), quantization_config={}, bit_ranges={"kernel": (2, 4)})
    with pytest.raises(ValueError, match="unknown goal 'latency'"):
        autoq.AutoQ(mlp(), (6,), goal={"type": "latency"}, limit=LIMIT)
    with pytest.raises(ValueError, match="strategy"):
        autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, strategy="grid")
    with pytest.raises(ValueError, match="train_fn must be callable"):
        autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, progress=False).fit(3)


# ---- search ---------------------------------------------------------------------------------------
def test_failing_and_nan_trials_are_recorded():
    calls = []

    def train(model, epochs, trial):
        calls.append(trial.number)
        if trial.number == 1:
            raise RuntimeError("boom in training")
        if trial.number == 2:
            return float("nan")
        trial.attrs["note"] = trial.number
        return 0.75

    search = autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, max_trials=4, progress=False)
    search.fit(train)
    ts = search.trials
    assert [t.status for t in ts] == ["complete", "failed", "failed", "complete"]
    assert "boom in training" in ts[1].error
    assert "nan" in ts[2].error.lower()
    assert ts[0].user_attrs == {"note": 0}
    assert search.best_trial.status == "complete"


def test_search_trains_and_saves_best(tmp_path):
    x, y = toy_data()
    data = [(x[i:i + 32], y[i:i + 32]) for i in range(0, len(x), 32)]
    train = autoq.make_trainer(data, data, torch.nn.functional.cross_entropy, progress=False)
    search = autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, quantization_config=TRAINABLE, max_trials=3, epochs=2,
                         seed=1, progress=False)
    search.fit(train)
    assert all(t.status == "complete" for t in search.trials), [t.error for t in search.trials]
    best = search.best_trial
    assert best is not None and 0.0 <= best.metric <= 1.0
    model = search.best_model()
    assert isinstance(model[0], heteroq.nn.QDense)
    info = search.save_best(tmp_path / "best.safetensors")
    assert "0" in info
    saved = json.loads((tmp_path / "best.safetensors.json").read_text())
    assert saved["trial"]["number"] == best.number
    csv_text = search.to_csv(tmp_path / "h.csv")
    assert csv_text.splitlines()[0].startswith("number,")
    assert "hp:0_kernel_quantizer" in csv_text.splitlines()[0]
    assert len(json.loads(search.to_json(tmp_path / "h.json"))) == 3
    front = search.pareto_front()
    assert front and all(t.status == "complete" for t in front)
    import matplotlib
    matplotlib.use("Agg")
    search.plot_history(tmp_path / "history.png")
    search.plot_pareto(tmp_path / "pareto.png", others=search.trials)
    search.plot_bits(tmp_path / "bits.png")
    for f in ("history.png", "pareto.png", "bits.png"):
        assert (tmp_path / f).stat().st_size > 1000


def test_hyperband_continues_parents():
    seen = []

    def train(model, epochs, trial):
        seen.append((trial.number, trial.parent, trial.epochs, epochs))
        return 0.1 * trial.epochs

    search = autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, strategy="hyperband", max_trials=50,
                         hyperband={"max_epochs": 3, "eta": 3}, progress=False)
    search.fit(train)
    # brackets: s=1 (3 at 1 epoch, 1 promoted to 3) and s=0 (2 at 3 epochs)
    assert len(seen) == 6
    promoted = [s for s in seen if s[1] >= 0]
    assert promoted and all(s[3] == s[2] - 1 for s in promoted)  # 2 more epochs on the parent's model


def test_study_exists_is_not_overwritten(tmp_path):
    db = tmp_path / "s.db"
    autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, max_trials=2, storage=db, progress=False).fit(
        lambda m, e, t: 0.5)
    with pytest.raises(ValueError, match="overwrite"):
        autoq.AutoQ(mlp(), goal=bits_goal(delta_p=2), limit=LIMIT, max_trials=2, storage=db, progress=False)
    s = autoq.AutoQ(mlp(), goal=bits_goal(delta_p=2), limit=LIMIT, max_trials=2, storage=db, overwrite=True,
                    progress=False)
    assert s.trials == []
    # resuming the same study with a larger budget adds trials
    r = autoq.AutoQ(mlp(), goal=bits_goal(delta_p=2), limit=LIMIT, max_trials=3, storage=db, progress=False)
    r.fit(lambda m, e, t: 0.5)
    assert len(r.trials) == 3


def test_corrupted_study_file(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not sqlite" * 300)
    with pytest.raises(ValueError, match="not a readable AutoQ study"):
        autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, storage=db, progress=False)


WORKER = textwrap.dedent("""
    import json, os, sys, time, torch
    from heteroq import autoq
    db, max_trials, sleep, marker = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    def train(m, epochs, trial):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()} start {trial.number}\\n")
        time.sleep(sleep)
        with open(marker, "a") as f:
            f.write(f"{os.getpid()} end {trial.number}\\n")
        return 0.5 + 0.001 * trial.number
    s = autoq.AutoQ(model, goal=autoq.custom_goal(lambda m: autoq.model_bits(m)),
                    limit={"Dense": [8, 8, 8], "Activation": [8]}, max_trials=max_trials, storage=db,
                    seed=7, progress=False)
    go = os.environ.get("AUTOQ_TEST_GO")
    if go:  # a start barrier: every worker is ready before any trial runs
        open(go + "." + str(os.getpid()), "w").close()
        while not os.path.exists(go):
            time.sleep(0.01)
    s.fit(train)
""")


def _worker(tmp_path, db, max_trials, sleep, marker, go=None):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if go is not None:
        env["AUTOQ_TEST_GO"] = str(go)
    return subprocess.Popen([sys.executable, str(script), str(db), str(max_trials), str(sleep), str(marker)],
                            env=env)


def test_resume_after_sigkill(tmp_path):
    db, marker = tmp_path / "kill.db", tmp_path / "log.txt"
    p = _worker(tmp_path, db, 6, 0.4, marker)
    # kill it in the middle of a trial (after trial 2 started)
    deadline = time.time() + 60
    while time.time() < deadline:
        if marker.exists() and " start 2" in marker.read_text():
            break
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    rows = sqlite3.connect(db).execute("SELECT number, status FROM autoq_trials ORDER BY number").fetchall()
    assert (2, "running") in rows and all(s in ("complete", "running") for _, s in rows)
    q = _worker(tmp_path, db, 6, 0.0, marker)
    assert q.wait(timeout=120) == 0
    rows = sqlite3.connect(db).execute(
        "SELECT number, status, attempts, params FROM autoq_trials ORDER BY number").fetchall()
    assert [r[0] for r in rows] == list(range(6))
    assert all(r[1] == "complete" for r in rows)
    assert rows[2][2] == 2  # the killed trial ran again, under its number and params
    assert len({r[3] for r in rows}) == 6
    ends = [line.split()[2] for line in marker.read_text().splitlines() if " end " in line]
    assert sorted(ends, key=int) == [str(i) for i in range(6)]  # each trial finished exactly once


def test_concurrent_workers_share_a_study(tmp_path):
    db, marker = tmp_path / "shared.db", tmp_path / "log.txt"
    # create the study first (same meta for every worker)
    autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, max_trials=8, storage=db, seed=7, progress=False)
    go = tmp_path / "go"
    procs = [_worker(tmp_path, db, 8, 0.3, marker, go) for _ in range(3)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go.*"))) < 3 and time.time() < deadline:
        assert all(p.poll() is None for p in procs)
        time.sleep(0.02)
    go.touch()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = sqlite3.connect(db).execute("SELECT number, status, params, pid FROM autoq_trials").fetchall()
    assert sorted(r[0] for r in rows) == list(range(8))
    assert all(r[1] == "complete" for r in rows)
    assert len({r[2] for r in rows}) == 8
    starts = [line.split()[2] for line in marker.read_text().splitlines() if " start " in line]
    assert sorted(starts, key=int) == [str(i) for i in range(8)]  # no trial ran twice
    assert len({r[3] for r in rows}) >= 2  # the work was shared


def test_keyboard_interrupt_requeues(tmp_path):
    db = tmp_path / "ki.db"

    def train(model, epochs, trial):
        if trial.number == 1:
            raise KeyboardInterrupt
        return 0.5

    s = autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, max_trials=3, storage=db, progress=False)
    with pytest.raises(KeyboardInterrupt):
        s.fit(train)
    assert [t.status for t in s.trials] == ["complete", "pending"]
    s.fit(lambda m, e, t: 0.5)
    assert [t.status for t in s.trials] == ["complete"] * 3


def test_cpp_and_python_drive_the_same_engine():
    # The same space, seed and objective give the same trials as the C++ test's engine would: the
    # sequence of params is a function of the engine only (checked against a second Python run and
    # the decoded configs of the C++ SearchSpace).
    def run(strategy):
        s = autoq.AutoQ(mlp(), goal=bits_goal(), limit=LIMIT, max_trials=6, seed=11, strategy=strategy,
                        progress=False, tpe={"startup_trials": 2})
        s.fit(lambda m, e, t: 0.4 + 0.01 * len(t.quantizer_config))
        return [t.params for t in s.trials]

    for strategy in ("random", "bayesian"):
        a, b = run(strategy), run(strategy)
        assert a == b and len({json.dumps(p, sort_keys=True) for p in a}) == 6


def test_scheduler_blocks(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(6, 40), torch.nn.ReLU(), torch.nn.Linear(40, 12), torch.nn.ReLU(),
                                torch.nn.Linear(12, 3))
    kw = dict(goal=bits_goal(), limit={"Dense": [8, 8, 8], "Activation": [8]}, max_trials=30, progress=False,
              storage=tmp_path / "blocks.db")
    # blocks: layers 0-1 (cost 280*8 bits) and 2-4 (531*8); by cost, the second block goes first
    sched = autoq.AutoQScheduler(model, blocks=["^[01]$", "^[234]$"], schedule_block="cost", **kw)
    assert [b["layers"] for b in sched.plan] == [["2", "3", "4"], ["0", "1"]]
    total = 8.0 * sum(p.numel() for p in model.parameters())
    assert [b["max_trials"] for b in sched.plan] == [int(max(10, 30 * 8 * 531 / total)), 10]
    assert json.loads(sched.plan[1]["limit"]) == {"^(0)$": [8, 8, 8], "^(1)$": [8]}
    seen = []
    sched.fit(lambda m, e, t: (seen.append(dict(t.quantizer_config)), 0.5)[1])
    first, second = sched.searches
    assert len(first.trials) == sched.plan[0]["max_trials"] and len(second.trials) == 10
    # block 1 searched only layers 2-4; block 2 kept block 1's best and searched 0-1
    assert set(seen[0]) == {"2", "3", "4"}
    best_first = first.best_config["quantizer_config"]
    for cfg in seen[len(first.trials):]:
        assert {k: cfg[k] for k in ("2", "3", "4")} == {k: best_first[k] for k in ("2", "3", "4")}
        assert {"0", "1"} <= set(cfg)
    assert set(sched.best_config) == {"0", "1", "2", "3", "4"}
    # resuming runs nothing again
    again = autoq.AutoQScheduler(model, blocks=["^[01]$", "^[234]$"], schedule_block="cost", **kw)
    calls = []
    again.fit(lambda m, e, t: (calls.append(1), 0.5)[1])
    assert calls == [] and again.best_config == sched.best_config
    with pytest.raises(ValueError, match="matches no layer"):
        autoq.AutoQScheduler(model, blocks=["^x"], **kw)


def test_docs_worked_example(capsys):
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "autoq.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    namespace = {}
    exec(compile(code, "docs/autoq.md", "exec"), namespace)  # noqa: S102  (our own docs)
    out = capsys.readouterr().out
    assert "best trial" in out and "kernel_quantizer" in out
    search = namespace["search"]
    assert len(search.trials) == 6 and all(t.status == "complete" for t in search.trials)
    assert search.best_trial.cost < search.reference_cost
    # the table of forgiving-factor values in the docs
    rows = {(0.9, 1000, 250): 1.044, (0.9, 1000, 2000): 0.828, (0.9, 1000, 1000): 0.9}
    for (m, r, t), v in rows.items():
        assert autoq.forgiving_factor(m, r, t) == pytest.approx(v, abs=1e-12)
    assert autoq.forgiving_factor(0.91, 3, 1) == pytest.approx(0.91 * (1 + 0.08 * math.log2(3)), abs=1e-12)


NOTEBOOK_ENERGY = {"type": "energy", "params": {
    "delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, "stress": 1.0, "process": "horowitz",
    "parameters_on_memory": ["sram", "sram"], "activations_on_memory": ["sram", "sram"],
    "rd_wr_on_io": [False, False], "min_sram_size": [0, 0], "source_quantizers": ["int8"],
    "reference_internal": "int8", "reference_accumulator": "int32"}}


def test_named_goals_use_the_cost_models():
    from heteroq import cost
    model = mlp()
    shape = (1, 6)
    qtools = dict(process="horowitz", weights_on_memory="sram", activations_on_memory="sram", rd_wr_on_io=False,
                  min_sram_size=0, reference_internal="int8", reference_accumulator="int32",
                  keras_quantizer="int8", keras_accumulator="int32")
    s = autoq.AutoQ(model, shape, NOTEBOOK_ENERGY, limit=LIMIT, quantization_config=TRAINABLE, max_trials=3,
                    progress=False)
    ref = cost.energy(model, shape, for_reference=True, source_quantizer="int8", **qtools).total
    assert s.reference_cost == pytest.approx(ref, rel=1e-12)
    s.fit(lambda m, e, t: 0.8)
    for t in s.trials:
        trial_model = s.build_model(t)
        e = cost.energy(trial_model, shape, source_quantizer="int8", **qtools).total
        assert t.cost == pytest.approx(e, rel=1e-12)
        assert t.score == pytest.approx(autoq.forgiving_factor(0.8, ref, e), rel=1e-12)
        assert t.cost < ref
    # bits: QTools model_size, reference at ref_bits
    b = autoq.AutoQ(model, shape, {"type": "bits", "params": {"ref_bits": 8}}, limit=LIMIT,
                    quantization_config=TRAINABLE, max_trials=2, progress=False)
    assert b.reference_cost == cost.model_size(model, shape).reference_total_bits
    b.fit(lambda m, e, t: 0.8)
    assert all(t.cost == cost.model_size(b.build_model(t), shape).total_bits for t in b.trials)
    for name, value in (("ebops", lambda m: cost.bops(m, shape).ebops),
                        ("fpga", lambda m: cost.fpga_estimate(m, shape).lut + cost.fpga_estimate(m, shape).dsp)):
        g = autoq.AutoQ(model, shape, name, limit=LIMIT, quantization_config=TRAINABLE, max_trials=1,
                        progress=False)
        assert g.reference_cost == value(model)
        g.fit(lambda m, e, t: 0.8)
        assert g.trials[0].cost == value(g.build_model(g.trials[0]))
    with pytest.raises(ValueError, match="unknown param"):
        autoq.AutoQ(model, shape, {"type": "energy", "params": {"parameters_in_memory": "sram"}}, limit=LIMIT)
    with pytest.raises(ValueError, match="input_shape"):
        autoq.AutoQ(model, (), "energy", limit=LIMIT)


def _cross_metric(trial):
    return 0.3 + 0.001 * (sum(json.dumps(trial.params, separators=(",", ":")).encode()) % 97)


def test_cpp_resumes_a_python_study(tmp_path, build_dir):
    exe = build_dir / "tests" / "cpp" / "heteroq_tests"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build the target heteroq_tests")
    db = tmp_path / "cross.db"
    kw = dict(goal=bits_goal(), limit=LIMIT, quantization_config=TRAINABLE, strategy="bayesian", seed=11,
              tpe={"startup_trials": 2}, progress=False)
    # the params text the engine stores is compact JSON; the metric hashes it the same way in C++
    py = autoq.AutoQ(mlp(), max_trials=3, storage=db, **kw)
    py.fit(lambda m, e, t: _cross_metric(t))
    env = dict(os.environ, HETEROQ_AUTOQ_STUDY=str(db), HETEROQ_AUTOQ_REFERENCE=repr(py.reference_cost))
    r = subprocess.run([str(exe), "--gtest_filter=AutoQCross.ResumesAPythonStudy"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "1 test" in r.stdout and "SKIPPED" not in r.stdout, r.stdout + r.stderr
    resumed = autoq.AutoQ(mlp(), max_trials=6, storage=db, **kw)
    cross = resumed.trials
    assert [t.status for t in cross] == ["complete"] * 6
    assert {t.worker.split(":")[1] for t in cross[3:]} != {str(os.getpid())}  # run by the C++ process
    # a Python-only run of 6 trials: the same trials, metrics, costs and scores
    alone = autoq.AutoQ(mlp(), max_trials=6, **kw)
    alone.fit(lambda m, e, t: _cross_metric(t))
    for a, b in zip(alone.trials, cross):
        assert a.params == b.params
        assert (a.metric, a.cost) == (b.metric, b.cost)
        assert a.score == pytest.approx(b.score, abs=1e-15)
