#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""QAT training throughput: heteroq vs the same float model vs PyTorch's own QAT (torch.ao).

Usage (from the repository root, with the build's Python package on the path)::

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_qat.py [--threads 1,2]
        [--models mlp,cnn] [--repeats 15] [--warmup 20] [--min-time 0.25] [--clock wall|cpu]
        [--ao-backend NAME] [--markdown]
    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_qat.py --quick   # smoke test

Models (each in three versions with the same initial weights and the same data):

* ``mlp``: the hls4ml jet-tagging MLP 16-64-32-32-5 with ReLU, batch 1024.
* ``cnn``: conv(1->16, 3x3, pad 1)-ReLU-maxpool(2)-conv(16->32, 3x3, pad 1)-ReLU-maxpool(2)-
  linear(32*7*7 -> 10) on 1x28x28 inputs, batch 128.

Versions:

* ``float``: the plain ``torch.nn`` model.
* ``heteroq``: ``heteroq.model_quantize(float_model, config, transfer_weights=True)`` with the
  paper's 6-bit config: kernel and bias ``quantized_bits(6,0,alpha=1)``, activations
  ``quantized_relu(6,0)`` (Coelho et al. 2021's Q6 jet model; the same config for the CNN).
* ``torch.ao``: eager-mode QAT, the documented recipe: ``QuantStub``/``DeQuantStub`` around the
  float model, ``fuse_modules_qat`` of each (Linear|Conv2d, ReLU) pair,
  ``get_default_qat_qconfig(backend)`` (the first of fbgemm, x86, onednn, qnnpack that this
  build supports; ``FusedMovingAvgObsFakeQuantize`` activations, 8-bit weight fake-quant),
  ``prepare_qat``.

One training step = ``zero_grad`` + forward + cross-entropy loss + backward + ``Adam.step``.
For each thread count every version is warmed up, then timed in ``--repeats`` rounds; in each
round the three versions each run one block of steps back to back, in an order that rotates
from round to round, so that machine load falls on them alike. A block is as many steps as
take about ``--min-time`` seconds (calibrated per model and thread count on the float version).
Times are wall-clock (``--clock cpu``: the process's CPU time, for a loaded machine at 1 thread).
The data are ``--batches`` fixed batches cycled, labelled by a noisy random teacher so that the
loss stays in a realistic range (~0.7 for the MLP) instead of collapsing. Reported:
the median ms/step over the rounds and the spread (the interquartile range as ± half of it,
in % of the median); the ratios are the medians of the per-round ratios (the paired blocks of a
round ran under the same load). Targets (the issue): heteroq/float <= 1.3, heteroq/torch.ao < 1.

Checks (the script exits with status 1 if one fails): before timing, each version trains
``--check-steps`` steps from the same initial weights and every loss must be finite; after
timing, every loss again, the weights must have changed, heteroq's quantized weights and biases
must lie on the quantized_bits(6,0) grid (multiples of 1/32 in [-1, 31/32]) while the float
weights behind them do not, every heteroq activation output (caught with forward hooks) on the
quantized_relu(6,0) grid (multiples of 1/64 in [0, 63/64]), and torch.ao's fake-quantizers
must have observed data (scales moved off their initial value). The losses are printed.

Torch threads are set explicitly for each measurement (``torch.set_num_threads``), and so are
OpenBLAS's (``openblas_set_num_threads`` through ctypes; ``--blas-threads``, default 1): on
Debian torch's matmuls run in OpenBLAS's own pthread pool, which ``torch.set_num_threads`` does
not reach. Left at its default (one thread per core, spinning after each call) next to 2 torch
(libgomp) threads, the two pools oversubscribe a 2-core machine: a float MLP step took 42 ms
instead of 2 ms. The plain table's ``thr`` column is "torch/OpenBLAS" threads. The command
line, the versions, the CPU and the load average (at start and end) are printed with the
table.
Standard library and torch only.
"""
import argparse
import copy
import ctypes
import math
import os
import platform
import shlex
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

import heteroq

VERSIONS = ("float", "heteroq", "torch.ao")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
FLOAT_TARGET = 1.3   # heteroq step / float step <= 1.3
AO_TARGET = 1.0      # heteroq step / torch.ao step < 1

# The paper's 6-bit model (Coelho et al. 2021, Q6): kernel and bias quantized_bits(6,0,alpha=1),
# activations quantized_relu(6,0).
WEIGHT_Q = "quantized_bits(6,0,alpha=1)"
ACT_Q = "quantized_relu(6,0)"
HETEROQ_CONFIG = {
    "QDense": {"kernel_quantizer": WEIGHT_Q, "bias_quantizer": WEIGHT_Q},
    "QConv2D": {"kernel_quantizer": WEIGHT_Q, "bias_quantizer": WEIGHT_Q},
    "QActivation": {"relu": ACT_Q},
}
WEIGHT_STEP, WEIGHT_LO, WEIGHT_HI = 2.0 ** -5, -32, 31   # codes of quantized_bits(6,0,alpha=1)
ACT_STEP, ACT_LO, ACT_HI = 2.0 ** -6, 0, 63              # codes of quantized_relu(6,0)


class CheckError(AssertionError):
    """A sanity check failed (the script exits with status 1)."""


# ------------------------------------------------------------------------------------------------
# Models and data

TEACHER_SHARPNESS = 3.0


class ModelSpec:
    """A float model factory, its fusable (layer, relu) name pairs, and its synthetic data."""

    def __init__(self, name: str, description: str, batch: int,
                 build: Callable[[], torch.nn.Sequential], fuse: List[List[str]],
                 input_shape: Tuple[int, ...], classes: int) -> None:
        self.name = name
        self.description = description
        self.batch = batch
        self.build = build
        self.fuse = fuse
        self.input_shape = input_shape
        self.classes = classes


def _mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 5))


def _cnn() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 10))


SPECS = {
    "mlp": ModelSpec("mlp", "jet MLP 16-64-32-32-5, batch 1024", 1024, _mlp,
                     [["0", "1"], ["2", "3"], ["4", "5"]], (16,), 5),
    "cnn": ModelSpec("cnn", "CNN 1x28x28 conv16-pool-conv32-pool-fc10, batch 128", 128, _cnn,
                     [["0", "1"], ["3", "4"]], (1, 28, 28), 10),
}


def make_data(spec: ModelSpec, n_batches: int,
              seed: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Inputs, and labels drawn from a fixed random teacher's softmax (so that the loss can fall,
    but not to zero: a loss near zero makes Adam's second moments denormal, which slows any
    version that gets there and would distort the comparison), fixed seed."""
    g = torch.Generator().manual_seed(seed + 1)
    features = int(torch.tensor(spec.input_shape).prod())
    teacher = torch.randn(features, spec.classes, generator=g) / math.sqrt(features)
    data = []
    for _ in range(n_batches):
        if len(spec.input_shape) == 1:
            x = torch.randn(spec.batch, *spec.input_shape, generator=g)   # standardized features
        else:
            x = torch.rand(spec.batch, *spec.input_shape, generator=g)    # pixel intensities
        centred = x.reshape(spec.batch, -1) - x.reshape(spec.batch, -1).mean(1, keepdim=True)
        probs = torch.softmax(centred @ teacher * TEACHER_SHARPNESS, dim=1)
        y = torch.multinomial(probs, 1, generator=g).squeeze(1)
        data.append((x.contiguous(), y))
    return data


def available_ao_backend() -> str:
    engines = torch.backends.quantized.supported_engines
    for backend in ("fbgemm", "x86", "onednn", "qnnpack"):
        if backend in engines:
            return backend
    raise RuntimeError(f"no quantized engine in this torch build ({engines})")


class _AoWrapper(torch.nn.Module):
    def __init__(self, body: torch.nn.Sequential) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.body = body
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.body(self.quant(x)))


def build_versions(spec: ModelSpec, seed: int, ao_backend: str) -> Dict[str, torch.nn.Module]:
    """The three versions, with the same initial weights."""
    torch.manual_seed(seed)
    fmodel = spec.build()
    qmodel = heteroq.model_quantize(fmodel, HETEROQ_CONFIG, activation_bits=6,
                                    transfer_weights=True)
    body = copy.deepcopy(fmodel)
    body.train()
    body = torch.ao.quantization.fuse_modules_qat(body, spec.fuse)
    aomodel = _AoWrapper(body)
    aomodel.qconfig = torch.ao.quantization.get_default_qat_qconfig(ao_backend)
    torch.backends.quantized.engine = ao_backend
    aomodel = torch.ao.quantization.prepare_qat(aomodel.train())
    models = {"float": fmodel.train(), "heteroq": qmodel.train(), "torch.ao": aomodel.train()}
    _check_structure(models)
    return models


def _check_structure(models: Dict[str, torch.nn.Module]) -> None:
    """Every layer of the heteroq version is converted with the paper's quantizers; the torch.ao
    version has fake-quantizers."""
    q = models["heteroq"]
    for name, m in q.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.ReLU)) or (
                type(m) is torch.nn.Conv2d):  # noqa: E721  (QConv2d subclasses Conv2d)
            raise CheckError(f"heteroq version: layer {name} ({type(m).__name__}) not converted")
        if isinstance(m, (heteroq.nn.QLinear, heteroq.nn.QConv2d)):
            for slot in ("kernel_quantizer", "bias_quantizer"):
                qz = getattr(m, slot)
                if qz is None or not qz.to_string().startswith("quantized_bits(6,0,"):
                    raise CheckError(f"heteroq version: layer {name}: {slot} is {qz}")
        if isinstance(m, heteroq.nn.QActivation) and not m.quantizer.to_string().startswith(
                "quantized_relu(6,0"):
            raise CheckError(f"heteroq version: activation {name} is {m.quantizer}")
    if not any(isinstance(m, torch.ao.quantization.FakeQuantizeBase)
               for m in models["torch.ao"].modules()):
        raise CheckError("torch.ao version: no fake-quantizers")


class Trainer:
    """One version's model, Adam optimizer and data cycle."""

    def __init__(self, model: torch.nn.Module, data, lr: float = 1e-3,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.model = model
        self.clock = clock
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.data = data
        self.i = 0
        self.last_loss: Optional[torch.Tensor] = None

    def step(self) -> torch.Tensor:
        x, y = self.data[self.i]
        self.i = (self.i + 1) % len(self.data)
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def run(self, steps: int) -> float:
        """Runs `steps` training steps; returns the time in seconds (wall, or this process's CPU
        time with --clock cpu)."""
        step, clock = self.step, self.clock
        t0 = clock()
        for _ in range(steps):
            loss = step()
        t1 = clock()
        self.last_loss = loss.detach()
        return t1 - t0


# ------------------------------------------------------------------------------------------------
# BLAS threads

_BLAS = None


def openblas() -> Optional[Tuple[str, ctypes.CDLL]]:
    """The OpenBLAS library this process loaded (Debian's torch links libblas.so.3, which is
    OpenBLAS with libopenblas0-pthread), or None. torch.set_num_threads does not reach it
    (BLAS_INFO=generic): left alone it runs its own pthreads, as many as cores, which spin after
    each call and compete with torch's OpenMP threads."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ("", None)
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1]})
        except OSError:
            paths = []
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_num_threads.restype = ctypes.c_int
                lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            except (OSError, AttributeError):
                continue
            _BLAS = (path, lib)
            break
    return None if _BLAS[1] is None else _BLAS


def blas_threads() -> Optional[int]:
    b = openblas()
    return None if b is None else int(b[1].openblas_get_num_threads())


def set_threads(threads: int, blas: str) -> None:
    """torch's threads, and OpenBLAS's as --blas-threads says (a count, "match": the torch
    threads, "leave": untouched)."""
    torch.set_num_threads(threads)
    b = openblas()
    if b is not None and blas != "leave":
        b[1].openblas_set_num_threads(threads if blas == "match" else int(blas))


# ------------------------------------------------------------------------------------------------
# Checks


def _on_grid(t: torch.Tensor, step: float, lo: int, hi: int) -> bool:
    codes = t.detach().double() / step
    return bool(torch.all(codes == codes.round()) and codes.min() >= lo and codes.max() <= hi)


def check_training(spec: ModelSpec, seed: int, ao_backend: str,
                   steps: int) -> Dict[str, List[float]]:
    """Trains each version `steps` steps from the same weights; every loss must be finite."""
    models = build_versions(spec, seed, ao_backend)
    data = make_data(spec, 4, seed)
    losses = {}
    for v in VERSIONS:
        t = Trainer(models[v], data)
        losses[v] = [t.step().item() for _ in range(steps)]
        if not all(math.isfinite(l) for l in losses[v]):
            raise CheckError(f"{spec.name}/{v}: non-finite loss in {losses[v]}")
    return losses


def check_heteroq_grid(name: str, model: torch.nn.Module, x: torch.Tensor) -> int:
    """heteroq's quantized weights/biases and activation outputs lie on their grids; returns the
    number of tensors checked."""
    checked = 0
    for lname, m in model.named_modules():
        if isinstance(m, (heteroq.nn.QLinear, heteroq.nn.QConv2d)):
            for what, t, raw in (("weight", m.quantized_weight(), m.weight),
                                 ("bias", m.quantized_bias(), m.bias)):
                if not _on_grid(t, WEIGHT_STEP, WEIGHT_LO, WEIGHT_HI):
                    raise CheckError(f"{name}: layer {lname}: quantized {what} off the 6-bit grid")
                if _on_grid(raw, WEIGHT_STEP, WEIGHT_LO, WEIGHT_HI):
                    raise CheckError(f"{name}: layer {lname}: the float {what} is itself on the "
                                     f"grid (the check would prove nothing)")
                checked += 1
    outputs = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: outputs.append((inp[0], out)))
             for m in model.modules() if isinstance(m, heteroq.nn.QActivation)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if not outputs:
        raise CheckError(f"{name}: no QActivation ran")
    for i, (inp, out) in enumerate(outputs):
        if not _on_grid(out, ACT_STEP, ACT_LO, ACT_HI):
            raise CheckError(f"{name}: activation {i}: output off the quantized_relu(6,0) grid")
        if _on_grid(inp, ACT_STEP, ACT_LO, ACT_HI):
            raise CheckError(f"{name}: activation {i}: input already on the grid")
        checked += 1
    return checked


def check_after_timing(spec: ModelSpec, models, initial, trainers, data) -> str:
    for v in VERSIONS:
        loss = trainers[v].last_loss
        if loss is None or not torch.isfinite(loss):
            raise CheckError(f"{spec.name}/{v}: non-finite loss after timing: {loss}")
        now = dict(models[v].named_parameters())
        if all(torch.equal(now[k], initial[v][k]) for k in now):
            raise CheckError(f"{spec.name}/{v}: the parameters did not change")
    n = check_heteroq_grid(f"{spec.name}/heteroq", models["heteroq"], data[0][0])
    moved = [m for m in models["torch.ao"].modules()
             if isinstance(m, torch.ao.quantization.FakeQuantizeBase)
             and not torch.all(m.scale == 1.0)]
    total = [m for m in models["torch.ao"].modules()
             if isinstance(m, torch.ao.quantization.FakeQuantizeBase)]
    if len(moved) != len(total):
        raise CheckError(f"{spec.name}/torch.ao: {len(total) - len(moved)} of {len(total)} "
                         f"fake-quantizers never observed data")
    return (f"{n} heteroq tensors on their grids, {len(total)} torch.ao fake-quantizers observed, "
            "last losses " + ", ".join(f"{v} {trainers[v].last_loss.item():.4f}"
                                        for v in VERSIONS))


# ------------------------------------------------------------------------------------------------
# Timing


def _iqr(xs: Sequence[float]) -> float:
    if len(xs) < 4:
        return max(xs) - min(xs)
    q = statistics.quantiles(xs, n=4)
    return q[2] - q[0]


def calibrate(trainer: Trainer, min_time: float) -> int:
    """Steps per block so that a block of the float version takes about `min_time` seconds (the
    fastest of three trial runs, so that a burst of load does not shrink the blocks)."""
    steps = 1
    while True:
        dt = min(trainer.run(steps) for _ in range(3))
        if dt >= min_time / 4 or steps >= 1 << 16:
            return max(1, int(math.ceil(steps * min_time / max(dt, 1e-9))))
        steps *= 2


def time_model(spec: ModelSpec, threads: int, args) -> Dict[str, object]:
    set_threads(threads, args.blas_threads)
    models = build_versions(spec, args.seed, args.ao_backend)
    data = make_data(spec, args.batches, args.seed)
    initial = {v: {k: p.detach().clone() for k, p in models[v].named_parameters()}
               for v in VERSIONS}
    clock = CLOCKS[args.clock]
    trainers = {v: Trainer(models[v], data, clock=clock) for v in VERSIONS}
    for v in VERSIONS:
        trainers[v].run(args.warmup)
    steps = args.steps or calibrate(trainers["float"], args.min_time)
    per_step = {v: [] for v in VERSIONS}
    for r in range(args.repeats):
        order = VERSIONS[r % 3:] + VERSIONS[:r % 3]
        for v in order:
            per_step[v].append(trainers[v].run(steps) / steps * 1e3)
    check = check_after_timing(spec, models, initial, trainers, data)
    hq, fl, ao = per_step["heteroq"], per_step["float"], per_step["torch.ao"]
    r_float = [h / f for h, f in zip(hq, fl)]
    r_ao = [h / a for h, a in zip(hq, ao)]
    return {
        "threads": threads, "blas_threads": blas_threads(), "model": spec.name, "steps": steps,
        "ms": {v: statistics.median(per_step[v]) for v in VERSIONS},
        "spread": {v: _iqr(per_step[v]) / 2 / statistics.median(per_step[v]) * 100
                   for v in VERSIONS},
        "r_float": statistics.median(r_float), "r_float_iqr": _iqr(r_float),
        "r_ao": statistics.median(r_ao), "r_ao_iqr": _iqr(r_ao),
        "check": check,
    }


# ------------------------------------------------------------------------------------------------
# Output


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def environment_lines(args) -> List[str]:
    cmd = " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    return [
        f"command: {cmd}",
        f"torch {torch.__version__}, heteroq {heteroq.__version__}, python "
        f"{platform.python_version()}, torch.ao backend {args.ao_backend} "
        f"(supported: {', '.join(torch.backends.quantized.supported_engines)})",
        f"cpu: {_cpu_name()}, {os.cpu_count()} logical cores; torch threads set per row: "
        f"{', '.join(map(str, args.threads))} (default here was {args.default_threads})",
        f"BLAS: {openblas()[0] if openblas() else 'not OpenBLAS (threads not controlled)'}; "
        f"OpenBLAS threads: " + (f"{args.default_blas_threads} by default, " + (
            {"match": "set to the torch threads", "leave": "left alone"}.get(
                args.blas_threads, f"set to {args.blas_threads}")) if openblas() else "-")
        + f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
        f"repeats {args.repeats} (interleaved, rotating order), warm-up {args.warmup} steps, "
        f"block {'%d steps' % args.steps if args.steps else '~%.2f s' % args.min_time}, "
        f"seed {args.seed}, Adam lr 1e-3, cross-entropy, {args.clock} clock",
    ]


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_table(rows, markdown: bool) -> None:
    if markdown:
        print("| threads | model | float ms/step | heteroq ms/step | torch.ao ms/step | "
              "heteroq/float | target ≤1.3 | heteroq/torch.ao | target <1 |")
        print("|---:|---|---:|---:|---:|---:|---|---:|---|")
        for r in rows:
            ms, sp = r["ms"], r["spread"]
            thr = str(r["threads"])
            if r["blas_threads"] and r["blas_threads"] != r["threads"]:
                thr += f" (OpenBLAS {r['blas_threads']})"
            cells = [thr, SPECS[r["model"]].description]
            cells += [f"{ms[v]:.3f} ±{sp[v]:.0f}%" for v in VERSIONS]
            cells += [f"{r['r_float']:.2f}", ("✅ " if r["r_float"] <= FLOAT_TARGET else "❌ ")
                      + _mark(r["r_float"] <= FLOAT_TARGET),
                      f"{r['r_ao']:.2f}", ("✅ " if r["r_ao"] < AO_TARGET else "❌ ")
                      + _mark(r["r_ao"] < AO_TARGET)]
            print("| " + " | ".join(cells) + " |")
        return
    header = (f"{'thr':>3}  {'model':<5} {'steps':>6}  {'float ms':>15} {'heteroq ms':>15} "
              f"{'torch.ao ms':>15}  {'hq/float':>13} {'(<=1.3)':<8} {'hq/ao':>13} {'(<1)':<8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        ms, sp = r["ms"], r["spread"]
        cells = "".join(f" {ms[v]:>8.3f} ±{sp[v]:>3.0f}% " for v in VERSIONS)
        thr = f"{r['threads']}/{r['blas_threads']}" if r["blas_threads"] else str(r["threads"])
        print(f"{thr:>3}  {r['model']:<5} {r['steps']:>6} {cells} "
              f"{r['r_float']:>6.3f} ±{r['r_float_iqr'] / 2:.3f} "
              f"{_mark(r['r_float'] <= FLOAT_TARGET):<8} "
              f"{r['r_ao']:>6.3f} ±{r['r_ao_iqr'] / 2:.3f} {_mark(r['r_ao'] < AO_TARGET):<8}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2",
                   help="comma-separated torch thread counts (default 1,2)")
    p.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn (default both)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up steps per version (default 20)")
    p.add_argument("--min-time", type=float, default=0.25,
                   help="seconds per timed block, calibrated on float (default 0.25)")
    p.add_argument("--steps", type=int, default=0,
                   help="steps per timed block (overrides --min-time)")
    p.add_argument("--batches", type=int, default=32,
                   help="distinct data batches cycled (default 32)")
    p.add_argument("--check-steps", type=int, default=30,
                   help="steps of the pre-timing training check (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ao-backend", default=None,
                   help="torch.ao qconfig backend (default: first supported of fbgemm, x86, "
                        "onednn, qnnpack)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: wall-clock time (default, what the README reports); cpu: this "
                        "process's CPU time, less sensitive to other processes on a loaded "
                        "machine at 1 thread (at 2+ threads it adds the threads' times, spin-waits "
                        "included, so it is not a wall time)")
    p.add_argument("--blas-threads", default="1",
                   help="OpenBLAS's threads (torch.set_num_threads does not set them): a count "
                        "(default 1), match (the torch threads of each row) or leave (its own "
                        "default, one per core). With 2 torch threads and 2 OpenBLAS threads "
                        "libgomp's spinning workers and OpenBLAS's oversubscribe 2 cores (a "
                        "20x slower MLP step measured here) unless OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3 repeats, 3 warm-up steps, 0.02 s blocks, 5 check steps")
    args = p.parse_args(argv)
    args.default_threads = torch.get_num_threads()
    args.default_blas_threads = blas_threads()
    if args.blas_threads not in ("match", "leave") and not (
            args.blas_threads.isdigit() and int(args.blas_threads) >= 1):
        p.error("--blas-threads: a count >= 1, match or leave")
    args.threads = [int(t) for t in args.threads.split(",") if t]
    args.models = [m for m in args.models.split(",") if m]
    for m in args.models:
        if m not in SPECS:
            p.error(f"unknown model {m!r} (choose from {', '.join(SPECS)})")
    if any(t < 1 for t in args.threads):
        p.error("--threads: counts must be >= 1")
    if args.quick:
        args.repeats, args.warmup, args.min_time, args.check_steps = 3, 3, 0.02, 5
    if args.repeats < 1 or args.warmup < 0 or args.batches < 1 or args.check_steps < 1:
        p.error("--repeats, --batches, --check-steps must be >= 1 and --warmup >= 0")
    args.ao_backend = args.ao_backend or available_ao_backend()
    if args.ao_backend not in torch.backends.quantized.supported_engines:
        p.error(f"--ao-backend {args.ao_backend}: not supported by this build "
                f"({torch.backends.quantized.supported_engines})")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for line in environment_lines(args):
        print(line)
    print(f"load average at start: {_load()}")
    try:
        set_threads(args.threads[0], args.blas_threads)
        for name in args.models:
            losses = check_training(SPECS[name], args.seed, args.ao_backend, args.check_steps)
            print(f"check {name}: {args.check_steps} steps from the same weights, loss first -> "
                  f"last: " + ", ".join(f"{v} {losses[v][0]:.4f} -> {losses[v][-1]:.4f}"
                                        for v in VERSIONS))
        rows = []
        for threads in args.threads:
            for name in args.models:
                row = time_model(SPECS[name], threads, args)
                print(f"check {name}, {threads} thread(s): {row['check']}", flush=True)
                rows.append(row)
    except CheckError as e:
        print(f"CHECK FAILED: {e}")
        return 1
    print(f"load average at end: {_load()}")
    print()
    print_table(rows, args.markdown)
    print()
    print(("" if args.markdown else "thr: torch/OpenBLAS threads; ") +
          f"ms/step ({args.clock} clock): median over the rounds, ± half the interquartile range "
          "in % of the median; ratios: median of the per-round ratios"
          + ("." if args.markdown else " (± half their IQR)."))
    missed = [r for r in rows if not (r["r_float"] <= FLOAT_TARGET and r["r_ao"] < AO_TARGET)]
    print("All targets met." if not missed else
          f"Targets missed in {len(missed)} of {len(rows)} rows.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
