#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""How long heteroq's cost models take on the jet-tagging model, from C++ and from Python.

Usage:
    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_cost.py build/benchmarks/bench_cost

The model is the jet-tagging MLP 16-64-32-32-5 at 6 bits (Q6: quantized_bits(6,0,alpha=1)
weights and biases, quantized_relu(6,0) activations). AutoQ calls the cost models for every
trial; issue 5's target is the whole cost (describe the model, then energy, size, BOPs/EBOPs and
the FPGA estimate) under 1 ms. Each row gives the median time per call over the repetitions and
two ratios: against the 1 ms target (< 1 meets it) and against the float model's batch-1 forward
pass measured in the same run (the baseline). One intra-op thread throughout.

C++ rows come from the Google Benchmark program (bench_cost.cpp); Python rows time the
heteroq.cost functions with time.perf_counter (each a median over repetitions of a loop).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

TARGET_US = 1000.0

CPP_CASES = [
    ("BM_FloatForwardBatch1", "float forward, batch 1 (baseline)"),
    ("BM_Describe", "describe_model (forward on zeros, quantized weights)"),
    ("BM_QStats", "qstats from the description"),
    ("BM_Energy", "energy from the description"),
    ("BM_Size", "model_size from the description"),
    ("BM_Bops", "bops (BOPs, EBOPs) from the description"),
    ("BM_Fpga", "fpga_estimate from the description"),
    ("BM_FullCost", "full cost: describe + energy + size + bops + fpga"),
]


def run_cpp(binary: str, repetitions: int):
    out = subprocess.run(
        [binary, "--benchmark_format=json", f"--benchmark_repetitions={repetitions}",
         "--benchmark_report_aggregates_only=true"], check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    times = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
            times[b["run_name"]] = b["real_time"] * scale
    return times, data["context"]


def median_us(fn, repetitions: int, number: int) -> float:
    fn()  # warm up
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def run_python(repetitions: int, number: int):
    import torch

    import heteroq
    from heteroq import cost

    torch.set_num_threads(1)
    torch.manual_seed(0)
    q = "quantized_bits(6,0,alpha=1)"
    q6 = torch.nn.Sequential(
        heteroq.nn.QDense(16, 64, kernel_quantizer=q, bias_quantizer=q),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(64, 32, kernel_quantizer=q, bias_quantizer=q),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(32, 32, kernel_quantizer=q, bias_quantizer=q),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(32, 5, kernel_quantizer=q, bias_quantizer=q))
    fl = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                             torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
                             torch.nn.Linear(32, 5)).eval()
    shape = (1, 16)
    x = torch.randn(shape)
    layers = cost.describe(q6, shape)

    def forward():
        with torch.no_grad():
            fl(x)

    def full():
        d = cost.describe(q6, shape)
        cost.energy(d)
        cost.model_size(d)
        cost.bops(d)
        cost.fpga_estimate(d)

    cases = [
        ("py_forward", "float forward, batch 1 (baseline)", forward),
        ("py_describe", "heteroq.cost.describe", lambda: cost.describe(q6, shape)),
        ("py_energy", "heteroq.cost.energy from the description", lambda: cost.energy(layers)),
        ("py_size", "heteroq.cost.model_size from the description",
         lambda: cost.model_size(layers)),
        ("py_bops", "heteroq.cost.bops from the description", lambda: cost.bops(layers)),
        ("py_fpga", "heteroq.cost.fpga_estimate from the description",
         lambda: cost.fpga_estimate(layers)),
        ("py_full", "full cost: describe + energy + size + bops + fpga", full),
    ]
    return [(key, desc, median_us(fn, repetitions, number)) for key, desc, fn in cases]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binary", help="build/benchmarks/bench_cost")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--number", type=int, default=200, help="calls per Python repetition")
    args = p.parse_args()

    cpp, context = run_cpp(args.binary, args.repetitions)
    py = run_python(args.repetitions, args.number)
    print(f"host: {context.get('num_cpus')} CPUs at {context.get('mhz_per_cpu')} MHz; one "
          f"intra-op thread; medians of {args.repetitions} repetitions")
    print()
    print("| language | case | time (µs) | time / 1 ms target | time / float forward |")
    print("|---|---|---:|---:|---:|")
    base = cpp["BM_FloatForwardBatch1"]
    for key, desc in CPP_CASES:
        t = cpp[key]
        print(f"| C++ | {desc} | {t:.1f} | {t / TARGET_US:.3f} | {t / base:.1f} |")
    base = py[0][2]
    for _, desc, t in py:
        print(f"| Python | {desc} | {t:.1f} | {t / TARGET_US:.3f} | {t / base:.1f} |")
    full_cpp = cpp["BM_FullCost"]
    full_py = py[-1][2]
    ok = full_cpp < TARGET_US and full_py < TARGET_US
    print()
    print(f"target (full cost < 1 ms): C++ {full_cpp:.0f} µs, Python {full_py:.0f} µs: "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
