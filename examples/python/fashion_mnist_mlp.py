#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The first end-to-end slice: a float MLP and a 6-bit quantized MLP on Fashion-MNIST.

Trains the same 784-64-32-10 network twice, once with torch.nn.Linear + ReLU and once with
heteroq's QDense (quantized_bits(6,0,alpha=1) weights and biases) + QActivation(quantized_relu(6,0)),
then prints both test accuracies and each layer's quantizers. The data is Debian's
dataset-fashion-mnist package (real images; 60,000 training and 10,000 test).

    /usr/bin/python3 examples/python/fashion_mnist_mlp.py [--epochs 2] [--train-limit N]
"""
import argparse
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

import heteroq
from heteroq import datasets

DEFAULT_DIR = pathlib.Path(datasets.FASHION_MNIST_DIR)
CLASSES = list(datasets.FASHION_MNIST_CLASSES)


def load(data_dir: pathlib.Path, split: str, limit: int = 0):
    """The split as float32 (n, 784) images in [0, 1] and int64 labels (heteroq.datasets)."""
    return datasets.load_fashion_mnist(split, data_dir, limit or None, as_tensors=True)


def float_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32),
                               torch.nn.ReLU(), torch.nn.Linear(32, 10))


def quantized_mlp() -> torch.nn.Module:
    q = "quantized_bits(6,0,alpha=1)"
    return torch.nn.Sequential(
        heteroq.nn.QDense(784, 64, kernel_quantizer=q, bias_quantizer=q),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(64, 32, kernel_quantizer=q, bias_quantizer=q),
        heteroq.nn.QActivation("quantized_relu(6,0)"),
        heteroq.nn.QDense(32, 10, kernel_quantizer=q, bias_quantizer=q),
    )


def train(model, x, y, epochs: int, batch: int, lr: float, name: str):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"  [{name}] epoch {epoch + 1}/{epochs}: train loss {total / len(x):.4f}", flush=True)


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def describe_quantizers(model) -> None:
    for name, m in model.named_children():
        if isinstance(m, heteroq.nn.QLinear):
            print(f"  layer {name} QDense({m.in_features}->{m.out_features}): "
                  f"kernel_quantizer={m.kernel_quantizer}, bias_quantizer={m.bias_quantizer}")
        elif isinstance(m, heteroq.nn.QActivation):
            print(f"  layer {name} QActivation: {m.quantizer}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=0, help="use the first N training images (0: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=pathlib.Path, default=DEFAULT_DIR)
    args = p.parse_args(argv)
    if args.epochs < 1 or args.train_limit < 0 or args.batch_size < 1 or args.threads < 1:
        p.error("--epochs, --batch-size and --threads must be >= 1, --train-limit >= 0")

    torch.set_num_threads(args.threads)
    start = time.time()
    try:
        x_train, y_train = load(args.data_dir, "train", args.train_limit)
        x_test, y_test = load(args.data_dir, "test")
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"heteroq {heteroq.__version__}: Fashion-MNIST (Debian dataset-fashion-mnist, real data), "
          f"{len(x_train)} training / {len(x_test)} test images, {args.threads} threads")

    results = {}
    for name, build in [("float", float_mlp), ("quantized", quantized_mlp)]:
        torch.manual_seed(args.seed)
        model = build()
        train(model, x_train, y_train, args.epochs, args.batch_size, args.lr, name)
        results[name] = accuracy(model, x_test, y_test)
        if name == "quantized":
            print("quantizers of the quantized model:")
            describe_quantizers(model)

    print(f"test accuracy: float {results['float']:.4f}, quantized (6-bit) {results['quantized']:.4f}")
    print(f"wall time: {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
