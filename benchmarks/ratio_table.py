#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Runs bench_quantizers and prints a Markdown table of times and ratios.

Usage: /usr/bin/python3 benchmarks/ratio_table.py build/benchmarks/bench_quantizers [ARGS...]

ARGS are passed to the benchmark binary (e.g. --benchmark_filter=qbits). For each thread count
and case the table gives the wall time per iteration (median of the repetitions), the nominal
throughput, and two ratios:

  vs fake  = time(at::fake_quantize_per_tensor_affine) / time(case), same kind; target >= 3 for
             heteroq's fused quantized_bits
  of bound = time(copy bound) / time(case): the bound is x.clone() for a forward and two clones
             (y and the gradient) for a forward + backward; target >= 0.7 for heteroq's fused
             quantized_bits, >= 0.35 for the fused quantized_bits(alpha='auto_po2') (which also
             finds a scale per row: 5 least-squares iterations on the cached row) and for the
             fused binary(alpha='auto_po2') and ternary(alpha='auto_po2'). An identity
             STE under torch::autograd::grad needs no second tensor, so it can exceed 1.

Kinds: fwd; fwd+bwd (x.grad) = y.backward(grad) into a leaf's x.grad, reset every iteration;
fwd+grad() = torch::autograd::grad({y}, {x}, {grad}), nothing accumulated.

Standard library only.
"""

import json
import re
import shlex
import statistics
import subprocess
import sys

FAKE_TARGET = 3.0
BOUND_TARGET = 0.7

# Operations measured for each kind (fwd, fwdbwd, fwdgrad) and the copy bounds of each kind.
_OPS = [
    ("qbits_fused", "heteroq quantized_bits, fused CPU kernel"),
    ("qbits_generic", "heteroq quantized_bits, generic ATen path"),
    ("fakequant", "at::fake_quantize_per_tensor_affine"),
    ("composite", "ATen round(x*s⁻¹).clamp()*s"),
    ("qrelu_fused", "heteroq quantized_relu, fused CPU kernel"),
    ("qrelu_generic", "heteroq quantized_relu, generic ATen path"),
    ("qtanh_fused", "heteroq quantized_tanh(6), fused CPU kernel"),
    ("qautopo2_fused", "heteroq quantized_bits(6,0,alpha='auto_po2'), per-row scales over a "
                       "(4096, 4096) view, fused CPU kernel"),
    ("qautopo2_generic", "heteroq quantized_bits(6,0,alpha='auto_po2'), per-row scales over a "
                         "(4096, 4096) view, generic ATen path"),
    ("qauto_fused", "heteroq quantized_bits(6,0,alpha='auto'), per-row scales over a "
                    "(4096, 4096) view, fused CPU kernel"),
    ("qauto_generic", "heteroq quantized_bits(6,0,alpha='auto'), per-row scales over a "
                      "(4096, 4096) view, generic ATen path"),
    ("qbinary_auto_fused", "heteroq binary(alpha='auto_po2'), per-row scales over a (4096, 4096) "
                           "view, fused CPU kernel"),
    ("qbinary_auto_generic", "heteroq binary(alpha='auto_po2'), per-row scales over a "
                             "(4096, 4096) view, generic ATen path"),
    ("qternary_auto_fused", "heteroq ternary(alpha='auto_po2'), per-row scales over a "
                            "(4096, 4096) view, 5 iterations, fused CPU kernel"),
    ("qternary_auto_generic", "heteroq ternary(alpha='auto_po2'), per-row scales over a "
                              "(4096, 4096) view, 5 iterations, generic ATen path"),
    ("qsigmoid_fused", "heteroq quantized_sigmoid(6), fused CPU kernel"),
    ("qpo2_fused", "heteroq quantized_po2(6), fused CPU kernel"),
    ("qrelupo2_fused", "heteroq quantized_relu_po2(6), fused CPU kernel"),
    ("qbinary_fused", "heteroq binary(alpha=1), fused CPU kernel"),
    ("qternary_fused", "heteroq ternary(alpha=1, threshold=0.5), fused CPU kernel"),
]
# Forward into a preallocated output (the out= variants), against out.copy_(x).
_OUT_OPS = [
    ("qbits_fused", "heteroq quantized_bits.out, fused CPU kernel"),
    ("qbits_generic", "heteroq quantized_bits.out, generic ATen path"),
    ("qrelu_fused", "heteroq quantized_relu.out, fused CPU kernel"),
]
_BOUNDS = {
    "fwd": [("copy_clone", "x.clone() (bound, fwd)")],
    "fwdbwd": [("copy_clone2", "x.clone() + grad.clone() (bound, fwd+bwd)")],
    "fwdgrad": [],
    "out": [("copy_into", "out.copy_(x), preallocated (bound, out=)")],
}
# (case, description, kind); kind picks the reference and the copy bound.
CASES = []
for _kind in ("fwd", "fwdbwd", "fwdgrad", "out"):
    CASES += [(f"{op}_{_kind}", desc, _kind) for op, desc in (_OUT_OPS if _kind == "out" else _OPS)]
    CASES += [(case, desc, _kind) for case, desc in _BOUNDS[_kind]]
KIND_NAME = {"fwd": "fwd", "fwdbwd": "fwd+bwd (x.grad)", "fwdgrad": "fwd+grad()", "out": "fwd, out="}
REFERENCE = {"fwd": "fakequant_fwd", "fwdbwd": "fakequant_fwdbwd", "fwdgrad": "fakequant_fwdgrad",
             "out": "fakequant_fwd"}
BOUND = {"fwd": "copy_clone", "fwdbwd": "copy_clone2", "fwdgrad": "copy_clone2", "out": "copy_into"}
TARGETED = {"qbits_fused_fwd", "qbits_fused_fwdbwd", "qbits_fused_fwdgrad", "qbits_fused_out"}
# Cases with a copy-bound target only (no fake_quantize equivalent): case -> minimum "of bound".
# The targets: every fixed-scale family >= 0.7 of the copy bound, auto-scale ones >= 0.35,
# forward and forward + gradient.
BOUND_ONLY_TARGETS = {f"{op}_{kind}": 0.7 for op in ("qrelu_fused", "qtanh_fused", "qsigmoid_fused",
                                                    "qpo2_fused", "qrelupo2_fused", "qbinary_fused",
                                                    "qternary_fused")
                      for kind in ("fwd", "fwdgrad")}
BOUND_ONLY_TARGETS.update({f"{op}_{kind}": 0.35 for op in ("qautopo2_fused", "qbinary_auto_fused",
                                                           "qternary_auto_fused")
                           for kind in ("fwd", "fwdgrad")})
NO_RATIOS = {"copy_clone", "copy_into", "copy_clone2"}

NAME_RE = re.compile(r"^BM_(?P<case>\w+)/threads:(?P<threads>\d+)")
UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def collect(report):
    """{(case, threads): {"ms": float, "gbps": float, "label": str}} from the JSON report."""
    medians = {}
    samples = {}
    for b in report.get("benchmarks", []):
        m = NAME_RE.match(b.get("run_name", b["name"]))
        if not m:
            continue
        key = (m["case"], int(m["threads"]))
        ms = b["real_time"] * UNIT_TO_MS[b.get("time_unit", "ns")]
        entry = {"ms": ms, "gbps": b.get("bytes_per_second", 0.0) / 1e9, "label": b.get("label", "")}
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[key] = entry
        else:
            samples.setdefault(key, []).append(entry)
    for key, runs in samples.items():  # without aggregates: the median of the repetitions
        if key not in medians:
            medians[key] = {
                "ms": statistics.median(r["ms"] for r in runs),
                "gbps": statistics.median(r["gbps"] for r in runs),
                "label": runs[0]["label"],
            }
    return medians


def fmt_ratio(num, den):
    return f"{num / den:.2f}" if num and den else "–"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = [argv[1], "--benchmark_format=json"] + argv[2:]
    print(f"Command: `{shlex.join(cmd)}`  ")
    print(f"CPU: {cpu_model()}  ")
    sys.stdout.flush()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        print(f"benchmark failed with exit status {proc.returncode}", file=sys.stderr)
        return proc.returncode
    report = json.loads(proc.stdout)
    ctx = report.get("context", {})
    print(
        f"Context: {ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
        f"load average {', '.join(f'{x:.2f}' for x in ctx.get('load_avg', []))}, "
        f"{ctx.get('elements', '?')} {ctx.get('dtype', '?')} elements, "
        f"{ctx.get('quantizer', '')}; forward values match: "
        f"{ctx.get('forward_values_match', '?')}; auto-scale fused == generic: "
        f"{ctx.get('auto_fused_matches_generic', '?')}; binary/ternary auto fused == generic: "
        f"{ctx.get('binary_auto_fused_matches_generic', '?')}  "
    )
    print(
        "Times: wall-clock median of the repetitions. GB/s: nominal traffic (fwd 8 B/element, "
        "fwd+bwd and fwd+grad() 16 B/element). vs fake = fake_quantize time / time (target "
        f">= {FAKE_TARGET:g} for fused quantized_bits). of bound = clone time / time (fwd: one "
        f"clone; fwd+bwd and fwd+grad(): two clones; target >= {BOUND_TARGET:g}). "
        "fwd+bwd (x.grad): y.backward(grad) into the leaf's x.grad, reset each iteration; "
        "fwd+grad(): torch::autograd::grad, nothing accumulated.\n"
    )

    res = collect(report)
    threads = sorted({t for (_, t) in res})
    print("| threads | case | kind | ms/iter | GB/s | vs fake | of bound | target | note |")
    print("|---:|---|---|---:|---:|---:|---:|---|---|")
    misses = []
    for t in threads:
        for case, desc, kind in CASES:
            r = res.get((case, t))
            if r is None:
                continue
            ref = res.get((REFERENCE[kind], t))
            bound = res.get((BOUND[kind], t))
            if case in NO_RATIOS:
                vs_fake, of_bound = "–", "–"
            else:
                vs_fake = fmt_ratio(ref["ms"] if ref else None, r["ms"])
                of_bound = fmt_ratio(bound["ms"] if bound else None, r["ms"])
            target = ""
            if case in TARGETED and ref and bound:
                ok_fake = ref["ms"] / r["ms"] >= FAKE_TARGET
                ok_bound = bound["ms"] / r["ms"] >= BOUND_TARGET
                target = ("✅" if ok_fake else "❌") + f" ≥{FAKE_TARGET:g}x, " + (
                    "✅" if ok_bound else "❌") + f" ≥{BOUND_TARGET:g}"
                if not ok_fake:
                    misses.append(f"{case} threads={t}: vs fake {ref['ms'] / r['ms']:.2f} < {FAKE_TARGET:g}")
                if not ok_bound:
                    misses.append(f"{case} threads={t}: of bound {bound['ms'] / r['ms']:.2f} < {BOUND_TARGET:g}")
            elif case in BOUND_ONLY_TARGETS and bound:
                want = BOUND_ONLY_TARGETS[case]
                ok_bound = bound["ms"] / r["ms"] >= want
                target = ("✅" if ok_bound else "❌") + f" ≥{want:g}"
                if not ok_bound:
                    misses.append(f"{case} threads={t}: of bound {bound['ms'] / r['ms']:.2f} < {want:g}")
            kind_s = KIND_NAME[kind]
            note = desc + (f"; {r['label']}" if r["label"] else "")
            print(f"| {t} | `{case}` | {kind_s} | {r['ms']:.2f} | {r['gbps']:.2f} | {vs_fake} | "
                  f"{of_bound} | {target} | {note} |")
    print()
    if misses:
        print("Targets missed:")
        for m in misses:
            print(f"- {m}")
    else:
        print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
