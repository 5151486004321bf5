#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""A small quantized CNN on Fashion-MNIST: float, uniform 6-bit and an AutoQ energy search.

Trains a float CNN (Conv2d(1,8,3)-ReLU-MaxPool-Conv2d(8,16,3)-ReLU-MaxPool-Flatten-Linear(400,10)),
converts it with heteroq.model_quantize to a uniform 6-bit model (fine-tuned from the float
weights), and runs an AutoQ search (Bayesian/TPE, energy goal) of per-layer quantizers starting
from the float weights; trials train on part of the training images and are scored on a
validation split of them. The test set is used only for the final table: test accuracy, energy
(heteroq.cost.energy, pJ per image) and model bits (heteroq.cost.model_size) of each model, then
the best configuration's per-layer quantizers. The data is Debian's dataset-fashion-mnist package
(the real images).

    PYTHONPATH=build/python /usr/bin/python3 examples/vision/fashion_mnist_autoq.py \
        [--train-limit 10000] [--epochs 2] [--trials 6] [--trial-epochs 1] [--json out.json]
"""
import argparse
import json
import re
import pathlib
import sys
import time
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F

import heteroq
import heteroq.autoq
import heteroq.cost
from heteroq import datasets

INPUT_SHAPE = (1, 1, 28, 28)

#: AutoQKeras's energy goal (as examples/jet_tagging.py): 8 % accuracy for 2x the energy.
ENERGY_GOAL = {"type": "energy", "params": {
    "delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, "stress": 1.0, "process": "horowitz",
    "parameters_on_memory": ["sram", "sram"], "activations_on_memory": ["sram", "sram"],
    "rd_wr_on_io": [False, False], "min_sram_size": [0, 0], "source_quantizers": ["int8"],
    "reference_internal": "int8", "reference_accumulator": "int32"}}
#: The memory model of the table's energies (the same as the goal's).
ENERGY_OPTIONS = {"weights_on_memory": "sram", "activations_on_memory": "sram",
                  "rd_wr_on_io": False, "min_sram_size": 0}

#: The search space (quantizer: bit cost) and at most 8 bits per layer.
SEARCH_CONFIG = {
    "kernel": {f"quantized_bits({b},0,1,alpha=1)": b for b in (2, 3, 4, 6, 8)},
    "bias": {f"quantized_bits({b},0,1,alpha=1)": b for b in (4, 6, 8)},
    "activation": {f"quantized_relu({b},{min(3, b - 1)})": b for b in (3, 4, 6, 8)},
}
SEARCH_LIMIT = {"Conv2D": [8, 8, 8], "Dense": [8, 8, 8], "Activation": [8]}

#: The uniform model: 6-bit weights, biases and activations (model_quantize config).
UNIFORM_BITS = 6
UNIFORM_CONFIG = {
    cls: {"kernel_quantizer": f"quantized_bits({UNIFORM_BITS},0,alpha=1)",
          "bias_quantizer": f"quantized_bits({UNIFORM_BITS},0,alpha=1)"}
    for cls in ("QConv2D", "QDense")}
UNIFORM_CONFIG["QActivation"] = {"relu": f"quantized_relu({UNIFORM_BITS},0)"}


def float_cnn() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 5 * 5, 10))


def load(data_dir: Optional[pathlib.Path], split: str, limit: Optional[int]):
    """The split as float32 (n, 1, 28, 28) images in [0, 1] and int64 labels."""
    x, y = datasets.load_fashion_mnist(split, data_dir, limit, as_tensors=True)
    return x.reshape(-1, 1, 28, 28).float(), y.long()


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
          batch_size: int = 128, lr: float = 2e-3, seed: int = 0, name: str = "") -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if name:
            print(f"  [{name}] epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}",
                  flush=True)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum())
                  for i in range(0, len(x), 1000))
    return correct / len(x)


def costs(model: torch.nn.Module, is_float: bool = False) -> Dict[str, float]:
    """Energy (pJ per image, 8-bit input) and model bits. A float model is priced in fp32
    (QTools would price float layers as 8-bit fixed point by default)."""
    layers = heteroq.cost.describe(model, INPUT_SHAPE)
    opts = {"keras_quantizer": "fp32", "keras_accumulator": "fp32"} if is_float else {}
    size = heteroq.cost.model_size(layers, **({"ref_bits": 32} if is_float else {}))
    return {"energy_pj": heteroq.cost.energy(layers, **ENERGY_OPTIONS, **opts).total,
            "bits": size.total_bits}


def layer_bits(model: torch.nn.Module) -> str:
    """The kernel bits of each weight layer and the bits of each activation, e.g. "w 6,6,6 a 6,6"
    (fp: a float layer)."""
    def bits(q) -> str:
        m = re.match(r"\w+\((\d+)", str(q)) if q is not None else None
        return m.group(1) if m else "fp"
    w, a = [], []
    for m in model.modules():
        if isinstance(m, (heteroq.nn.QConv2d, heteroq.nn.QLinear)):
            w.append(bits(getattr(m, "kernel_quantizer", None)))
        elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w.append("fp")
        elif isinstance(m, heteroq.nn.QActivation):
            a.append(bits(getattr(m, "quantizer", None)))
        elif isinstance(m, torch.nn.ReLU):
            a.append("fp")
    return f"w {','.join(w)} a {','.join(a)}"


def copy_float(model: torch.nn.Module) -> torch.nn.Module:
    m = float_cnn()
    m.load_state_dict(model.state_dict())
    return m


def run(*, train_limit: int = 10000, val_fraction: float = 0.1, epochs: int = 2,
        trials: int = 6, trial_epochs: int = 1, test_limit: Optional[int] = None, seed: int = 0,
        threads: int = 2, data_dir: Optional[pathlib.Path] = None,
        json_path: Optional[pathlib.Path] = None) -> Dict[str, object]:
    torch.set_num_threads(threads)
    start = time.time()
    x_train, y_train = load(data_dir, "train", train_limit or None)
    x_test, y_test = load(data_dir, "test", test_limit or None)
    n_val = max(1, int(len(x_train) * val_fraction))
    x_val, y_val, x_fit, y_fit = x_train[:n_val], y_train[:n_val], x_train[n_val:], y_train[n_val:]
    print(f"heteroq {heteroq.__version__}: Fashion-MNIST, the real data (Debian package "
          f"dataset-fashion-mnist): {len(x_train)} training images ({len(x_fit)} fit / {n_val} "
          f"validation for the search), {len(x_test)} test images; {threads} threads", flush=True)

    models: Dict[str, torch.nn.Module] = {}
    torch.manual_seed(seed)
    print(f"float CNN, {epochs} epochs")
    models["float (fp32)"] = float_cnn()
    train(models["float (fp32)"], x_train, y_train, epochs=epochs, seed=seed, name="float")

    print(f"uniform {UNIFORM_BITS}-bit (model_quantize, from the float weights), {epochs} epochs")
    uniform = heteroq.model_quantize(copy_float(models["float (fp32)"]), UNIFORM_CONFIG,
                                     activation_bits=UNIFORM_BITS, transfer_weights=True)
    train(uniform, x_train, y_train, epochs=epochs, seed=seed, name=f"q{UNIFORM_BITS}")
    models[f"uniform {UNIFORM_BITS}-bit"] = uniform

    print(f"AutoQ: energy goal, {trials} trials of {trial_epochs} epoch(s) (Bayesian/TPE), "
          f"starting from the float weights", flush=True)

    def train_trial(model: torch.nn.Module, n_epochs: int, trial) -> float:
        train(model, x_fit, y_fit, epochs=n_epochs, seed=seed)
        return accuracy(model, x_val, y_val)

    t0 = time.time()
    search = heteroq.autoq.AutoQ(
        copy_float(models["float (fp32)"]), INPUT_SHAPE, ENERGY_GOAL, strategy="bayesian",
        quantization_config=SEARCH_CONFIG, limit=SEARCH_LIMIT, max_trials=trials,
        epochs=trial_epochs, seed=seed, storage=None, study_name="fashion_mnist_energy",
        tpe={"startup_trials": max(2, trials // 3)}, progress=False)
    search.fit(train_trial)
    best = search.best_trial
    print(f"  best trial {best.number}: validation accuracy {best.metric:.4f}, energy "
          f"{best.cost:.1f} pJ (reference {search.reference_cost:.1f}), score {best.score:.4f}; "
          f"{time.time() - t0:.1f} s", flush=True)
    autoq_model = search.best_model(trained=False)
    train(autoq_model, x_train, y_train, epochs=epochs, seed=seed, name="autoq")
    models["AutoQ (energy)"] = autoq_model

    results = {name: {"test_accuracy": accuracy(m, x_test, y_test),
                      **costs(m, is_float=(name == "float (fp32)")), "layer_bits": layer_bits(m)}
               for name, m in models.items()}
    lines = [f"{'model':<18}{'test acc':>10}{'energy pJ':>12}{'bits':>10}  weight/act bits"]
    for name, r in results.items():
        lines.append(f"{name:<18}{r['test_accuracy']:>10.4f}{r['energy_pj']:>12.1f}"
                     f"{r['bits']:>10.0f}  {r['layer_bits']}")
    table = "\n".join(lines)
    print()
    print(table)
    config = search.best_config["quantizer_config"]
    print("\nAutoQ best configuration (per layer):")
    for layer, q in config.items():
        print(f"  {layer}: {q}")
    wall = time.time() - start
    print(f"\nwall time {wall:.1f} s")
    summary = {"data": "Fashion-MNIST (Debian dataset-fashion-mnist, real data)",
               "train_images": len(x_train), "validation_images": n_val,
               "test_images": len(x_test), "epochs": epochs, "trials": trials,
               "trial_epochs": trial_epochs, "seed": seed, "models": results,
               "autoq": {"best_config": search.best_config, "best_trial": best.number,
                         "validation_accuracy": best.metric, "cost": best.cost,
                         "reference_cost": search.reference_cost},
               "wall_time_s": wall}
    if json_path is not None:
        pathlib.Path(json_path).write_text(json.dumps(summary, indent=2, default=str))
        print(f"wrote {json_path}")
    return {"table": table, "models": models, "search": search, "summary": summary}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-limit", type=int, default=10000,
                   help="the first N training images (0: all 60,000)")
    p.add_argument("--test-limit", type=int, default=0, help="the first N test images (0: all)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="the part of the training images the search validates on")
    p.add_argument("--epochs", type=int, default=2, help="epochs of each final model")
    p.add_argument("--trials", type=int, default=6, help="AutoQ trials")
    p.add_argument("--trial-epochs", type=int, default=1, help="epochs per AutoQ trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", type=pathlib.Path, default=None,
                   help="the Fashion-MNIST IDX files (default: the Debian package's)")
    p.add_argument("--json", type=pathlib.Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    if (args.epochs < 1 or args.trials < 1 or args.trial_epochs < 1 or args.threads < 1
            or args.train_limit < 0 or args.test_limit < 0 or not 0 < args.val_fraction < 1):
        p.error("--epochs, --trials, --trial-epochs, --threads must be >= 1, limits >= 0, "
                "0 < --val-fraction < 1")
    try:
        run(train_limit=args.train_limit, val_fraction=args.val_fraction, epochs=args.epochs,
            trials=args.trials, trial_epochs=args.trial_epochs, test_limit=args.test_limit,
            seed=args.seed, threads=args.threads, data_dir=args.data_dir, json_path=args.json)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
