#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Plots the transfer function q(x) of each quantizer family into docs/images/.

    PYTHONPATH=build/python /usr/bin/python3 docs/plot_quantizers.py [OUTPUT_DIR]

Each figure draws q(x) for a few specs over x in [-3, 3], as heteroq computes it (float32).
"""
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import heteroq  # noqa: E402

FAMILIES = {
    "fixed_point": ["quantized_bits(4,0)", "quantized_bits(4,1,1)", "quantized_relu(4,1)",
                    "quantized_relu(4,0,0,0.25)"],
    "activations": ["quantized_tanh(3)", "quantized_tanh(5)", "quantized_sigmoid(3)",
                    "quantized_relu(4,0,1)"],
    "po2": ["quantized_po2(4)", "quantized_po2(4,2.0)", "quantized_relu_po2(3)",
            "quantized_po2(4,quadratic_approximation=1)"],
    "binary_ternary": ["binary", "binary(use_01=1,alpha=0.5)", "ternary", "ternary(alpha=0.5,threshold=0.6)"],
}


def main(argv):
    out_dir = pathlib.Path(argv[1]) if len(argv) > 1 else pathlib.Path(__file__).parent / "images"
    out_dir.mkdir(parents=True, exist_ok=True)
    x = torch.linspace(-3, 3, 6001)
    for family, specs in FAMILIES.items():
        fig, axes = plt.subplots(1, len(specs), figsize=(3.2 * len(specs), 3), sharex=True)
        for ax, spec in zip(axes, specs):
            q = heteroq.get_quantizer(spec)
            ax.plot(x.numpy(), x.numpy(), color="0.8", linewidth=0.8, label="x")
            ax.step(x.numpy(), q(x).numpy(), where="mid", linewidth=1.4, label="q(x)")
            ax.set_title(q.to_string(), fontsize=8)
            ax.set_xlabel("x")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{family}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
