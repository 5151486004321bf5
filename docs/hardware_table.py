# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The numbers of docs/hardware.md: BOPs/EBOPs and the FPGA estimate of the jet-tagging MLP
16-64-32-32-5 (float, uniform 6-bit Q6, Q6 with the tutorial's 75% pruning, a heterogeneous
model), trained a few epochs on heteroq's surrogate jets, against the published synthesis results.

    PYTHONPATH=build/python /usr/bin/python3 docs/hardware_table.py [--epochs 6] [--calibrate]

Deterministic for a seed (one intra-op thread). ``--calibrate`` also prints the scan of the
calibrated constants (the DSP rule's weight span and the adder level delay) against the published
Q6 numbers.
"""
import argparse
import sys
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

import heteroq
from heteroq import cost, datasets
from heteroq.nn import QActivation, QDense

W6 = "quantized_bits(6,0,alpha=1)"
HLS4ML_INPUT = "quantized_bits(16,5)"  # hls4ml's default input type ap_fixed<16,6>
SIZES = [(16, 64), (64, 32), (32, 32), (32, 5)]

# Published results (../shared/reference/benchmarks.md §2.3, §3): LUT, DSP, FF, cycles.
PUBLISHED = {
    "Q6 (Coelho et al. 2021, VU9P, 200 MHz)": (39782, 124, 8128, 11),
    "Q6 + pruned (hls4ml tutorial 2024, Vitis HLS csynth, xcu250)": (42160, 34, 3199, 12),
}


def mlp(kernels: Sequence[Optional[str]], biases: Sequence[Optional[str]],
        activations: Sequence[Optional[str]]) -> torch.nn.Sequential:
    layers: List[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(SIZES):
        if kernels[i] is None:
            layers.append(torch.nn.Linear(n_in, n_out))
        else:
            layers.append(QDense(n_in, n_out, kernel_quantizer=kernels[i],
                                 bias_quantizer=biases[i]))
        if i + 1 < len(SIZES):
            act = activations[i]
            layers.append(QActivation(act) if act is not None else torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def float_model() -> torch.nn.Sequential:
    return mlp([None] * 4, [None] * 4, [None] * 3)


def q6_model() -> torch.nn.Sequential:
    return mlp([W6] * 4, [W6] * 4, ["quantized_relu(6,0)"] * 3)


def heterogeneous_model() -> torch.nn.Sequential:
    return mlp(["quantized_bits(8,0,alpha=1)", "quantized_po2(4,1)", "ternary(alpha=1)",
                "quantized_bits(4,0,alpha=1)"],
               ["quantized_bits(8,3,alpha=1)", "quantized_bits(6,2,alpha=1)",
                "quantized_bits(6,2,alpha=1)", "quantized_bits(6,2,alpha=1)"],
               ["quantized_relu(6,0)", "quantized_relu(4,0)", "quantized_relu(4,0)"])


def prune_masks(model: torch.nn.Module, sparsity: float) -> Dict[str, torch.Tensor]:
    """Per weight matrix, the mask keeping the (1 - sparsity) largest magnitudes
    (tfmot's ConstantSparsity, as the tutorial)."""
    masks = {}
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() == 2:
            k = int(round(p.numel() * sparsity))
            threshold = p.detach().abs().flatten().kthvalue(k).values
            masks[name] = (p.detach().abs() > threshold).float()
    return masks


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
          prune_from: Optional[int] = None, sparsity: float = 0.75) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    params = dict(model.named_parameters())
    masks: Dict[str, torch.Tensor] = {}
    for epoch in range(epochs):
        if prune_from is not None and epoch == prune_from:
            masks = prune_masks(model, sparsity)
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 1024):
            idx = perm[i:i + 1024]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].mul_(mask)
    model.eval()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def sparsity_of(model: torch.nn.Module) -> float:
    layers = cost.describe(model, (1, 16))
    total = zeros = 0
    for layer in layers:
        for group, values in layer.get("values", []):
            if group == "weights":
                total += values.size
                zeros += int((values == 0).sum())
    return zeros / total


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train-limit", type=int, default=200000)
    p.add_argument("--calibrate", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    jets = datasets.load_jets(surrogate=True, surrogate_seed=0).as_tensors()
    x, y = jets.x_train[:args.train_limit], jets.y_train[:args.train_limit]
    print(f"data: {jets.description}; {len(x)} training jets, {args.epochs} epochs per model")

    models = {}
    for name, build, prune in [("float", float_model, None), ("Q6", q6_model, None),
                               ("Q6 pruned 75%", q6_model, args.epochs // 3),
                               ("heterogeneous", heterogeneous_model, None)]:
        torch.manual_seed(0)
        m = build()
        train(m, x, y, args.epochs, prune_from=prune)
        models[name] = m
        print(f"{name}: test accuracy {accuracy(m, jets.x_test, jets.y_test):.4f}, "
              f"weight sparsity {sparsity_of(m):.3f}")

    print("\n## BOPs / EBOPs (input quantized_relu(8,0), QKeras's default)\n")
    print("| model | multiplications | BOPs | EBOPs |")
    print("|---|---|---|---|")
    for name, m in models.items():
        r = cost.bops(m, (1, 16))
        print(f"| {name} | {r.multiplications} | {r.bops} | {r.ebops:.1f} |")

    print(f"\n## FPGA estimate (input {HLS4ML_INPUT} = ap_fixed<16,6>, 200 MHz)\n")
    print("| model | LUT | DSP | FF | cycles | ns | LUT + 55 DSP | EBOPs (same input) |")
    print("|---|---|---|---|---|---|---|---|")
    estimates = {}
    for name, m in models.items():
        e = cost.fpga_estimate(m, (1, 16), input_quantizer=HLS4ML_INPUT)
        r = cost.bops(m, (1, 16), input_quantizer=HLS4ML_INPUT)
        estimates[name] = e
        print(f"| {name} | {e.lut} | {e.dsp} | {e.ff} | {e.latency_cycles} | {e.latency_ns:g} | "
              f"{e.lut_equivalent} | {r.ebops:.1f} |")

    print("\n## Against the published synthesis results\n")
    print("| model | source | LUT | DSP | FF | cycles |")
    print("|---|---|---|---|---|---|")
    for (label, (lut, dsp, ff, cc)), ours in zip(
            PUBLISHED.items(), [estimates["Q6"], estimates["Q6 pruned 75%"]]):
        print(f"| {label.split(' (')[0]} | published: {label.split(' (')[1][:-1]} | {lut} | {dsp} "
              f"| {ff} | {cc} |")
        print(f"| | heteroq estimate | {ours.lut} | {ours.dsp} | {ours.ff} | "
              f"{ours.latency_cycles} |")

        def err(a: int, b: int) -> str:
            return f"{100.0 * (a - b) / b:+.0f}%"
        print(f"| | error | {err(ours.lut, lut)} | {err(ours.dsp, dsp)} | {err(ours.ff, ff)} | "
              f"{ours.latency_cycles - cc:+d} cc |")

    print("\n## The Q6 model, per layer\n")
    print("```")
    print(str(cost.bops(models["Q6"], (1, 16), input_quantizer=HLS4ML_INPUT)).strip("\n"))
    print(str(estimates["Q6"]).strip("\n"))
    print("```")

    if args.calibrate:
        print("\n## Calibration scan (Q6, unpruned; published: 124 DSP, 39782 LUT, 11 cc)\n")
        print("| dsp_min_weight_span | adder_level_ns | LUT | DSP | cycles |")
        print("|---|---|---|---|---|")
        for span in (3, 4, 5):
            for level in (0.5, 0.75, 1.0, 1.25, 1.5):
                e = cost.fpga_estimate(models["Q6"], (1, 16), input_quantizer=HLS4ML_INPUT,
                                       dsp_min_weight_span=span, adder_level_ns=level)
                print(f"| {span} | {level} | {e.lut} | {e.dsp} | {e.latency_cycles} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
