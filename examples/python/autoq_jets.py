# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""AutoQ on the jet-tagging task (the benchmark of issue 6; not a timed test).

Searches the jet MLP (16-64-32-32-5) with AutoQKeras's "energy" goal (the paper notebook's params)
for a fixed budget of trials, with the Bayesian (TPE) strategy and with random search, and compares
with the 6-bit homogeneous model: accuracy, QTools energy, trials, wall time, the engine's overhead
per trial, and both Pareto fronts (a plot). Without --data it runs on heteroq's offline surrogate of
the jet data (NOT the real data; every line of output says so).

    PYTHONPATH=build/python /usr/bin/python3 examples/python/autoq_jets.py --trials 20 --epochs 4 --out autoq_out
"""
import argparse
import json
import os
import sys
import time

import torch

import heteroq
from heteroq import autoq, cost, datasets

ENERGY_GOAL = {"type": "energy", "params": {
    "delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, "stress": 1.0, "process": "horowitz",
    "parameters_on_memory": ["sram", "sram"], "activations_on_memory": ["sram", "sram"],
    "rd_wr_on_io": [False, False], "min_sram_size": [0, 0], "source_quantizers": ["int8"],
    "reference_internal": "int8", "reference_accumulator": "int32"}}

# heteroq-trainable kernel/bias/activation quantizers from 2 to 8 bits (AutoQKeras's notebook adds
# alpha=1 to the kernel quantized_bits)
CONFIG = {
    "kernel": {f"quantized_bits({b},0,1,alpha=1)": b for b in (2, 3, 4, 5, 6, 8)},
    "bias": {f"quantized_bits({b},0,1,alpha=1)": b for b in (4, 6, 8)},
    "activation": {f"quantized_relu({b},{min(3, b - 1)})": b for b in (3, 4, 6, 8)},
}
LIMIT = {"Dense": [8, 8, 8], "Activation": [8]}
SHAPE = (1, 16)


def jet_mlp(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="the hls4ml jet data (see heteroq.datasets.load_jets); default: the surrogate")
    ap.add_argument("--limit", type=int, default=30000, help="jets used (train + test)")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune-filters", default="none", choices=("none", "layer", "block"),
                    help="also search the layer widths (AutoQKeras's tune_filters; the output layer excepted)")
    ap.add_argument("--out", default="autoq_jets_out")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    jets = datasets.load_jets(args.data, surrogate=args.data is None, limit=args.limit, as_tensors=True)
    tag = "SURROGATE data (not the real jets)" if jets.is_surrogate else f"data {jets.source}"
    x_tr, y_tr = jets.x_train.float(), jets.y_train
    train_batches = list(zip(x_tr.split(256), y_tr.split(256)))
    val_batches = [(jets.x_test.float(), jets.y_test)]

    def trainer():
        g = torch.Generator().manual_seed(args.seed)

        def shuffled():
            perm = torch.randperm(len(x_tr), generator=g)
            return list(zip(x_tr[perm].split(256), y_tr[perm].split(256)))

        class Batches:
            def __iter__(self):
                return iter(shuffled())
        return autoq.make_trainer(Batches(), val_batches, torch.nn.functional.cross_entropy,
                                  optimizer=lambda p: torch.optim.Adam(p, lr=3e-3), progress=False)

    float_model = jet_mlp(args.seed)
    # a float warm start: every trial transfers these weights
    trainer()(float_model, args.epochs, None)
    goal = autoq.named_goal(ENERGY_GOAL, SHAPE)
    reference = goal.reference(float_model)

    # the 6-bit homogeneous model
    q6 = {"QDense": {"kernel_quantizer": "quantized_bits(6,0,1,alpha=1)",
                     "bias_quantizer": "quantized_bits(6,0,1,alpha=1)"},
          "QActivation": "quantized_relu(6,3)"}
    m6 = heteroq.model_quantize(float_model, q6, 6, transfer_weights=True)
    acc6 = trainer()(m6, args.epochs, None)
    e6 = goal.cost(m6)
    print(f"[{tag}] 6-bit homogeneous: accuracy {acc6:.4f}, energy {e6:.0f} pJ (reference int8 {reference:.0f} pJ)")

    results = {}
    for strategy in ("bayesian", "random"):
        search = autoq.AutoQ(float_model, SHAPE, ENERGY_GOAL, strategy=strategy, quantization_config=CONFIG,
                             limit=LIMIT, tune_filters=args.tune_filters, tune_filters_exceptions="^6$",
                             max_trials=args.trials, epochs=args.epochs, seed=args.seed,
                             storage=os.path.join(args.out, "studies.db"), study_name=strategy, overwrite=True,
                             tpe={"startup_trials": max(3, args.trials // 4)}, progress=False)
        t0 = time.perf_counter()
        search.fit(trainer())
        wall = time.perf_counter() - t0
        ts = [t for t in search.trials if t.status == "complete"]
        duration = sum(t.duration for t in ts)
        overhead = sum(t.overhead for t in ts)
        good = [t for t in ts if t.metric >= acc6 - 0.01 and t.cost <= e6 / 3]
        best = search.best_trial
        results[strategy] = dict(search=search, wall=wall, good=good)
        print(f"[{tag}] {strategy}: {len(search.trials)} trials ({len(ts)} complete) in {wall:.1f} s; engine "
              f"overhead {overhead / len(ts) * 1e3:.2f} ms/trial = {100 * overhead / duration:.2f}% of trial time "
              f"(claim, score, record; the model build, cost and training are the trial's)")
        print(f"[{tag}] {strategy}: best score {best.score:.4f}: accuracy {best.metric:.4f}, energy {best.cost:.0f} pJ "
              f"({best.cost / e6:.2f} x the 6-bit model's)")
        print(f"[{tag}] {strategy}: trials within 1% of the 6-bit accuracy at <= 1/3 of its energy: {len(good)}"
              + (f" (best: accuracy {max(good, key=lambda t: t.metric).metric:.4f}, energy "
                 f"{max(good, key=lambda t: t.metric).cost:.0f} pJ)" if good else ""))
        front = search.pareto_front()
        print(f"[{tag}] {strategy}: Pareto front (energy pJ, accuracy): "
              + ", ".join(f"({t.cost:.0f}, {t.metric:.4f})" for t in front))
        search.to_csv(os.path.join(args.out, f"trials_{strategy}.csv"))
    bay, rnd = results["bayesian"]["search"], results["random"]["search"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        fig = bay.plot_pareto(None, others=rnd.trials, label="bayesian", others_label="random")
        ax = fig.axes[0]
        ax.scatter([e6], [acc6], marker="*", s=120, color="k", label="6-bit homogeneous")
        ax.axvline(e6 / 3, color="gray", ls=":", lw=0.8)
        ax.axhline(acc6 - 0.01, color="gray", ls=":", lw=0.8)
        ax.legend()
        ax.set_title(f"AutoQ energy goal, {args.trials} trials ({'surrogate' if jets.is_surrogate else 'jets'})")
        fig.savefig(os.path.join(args.out, "pareto.png"))
        bay.plot_history(os.path.join(args.out, "history_bayesian.png"))
        bay.plot_bits(os.path.join(args.out, "bits_bayesian.png"))
    except ImportError:
        print("matplotlib not installed: no plots")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"data": tag, "trials": args.trials, "epochs": args.epochs, "accuracy_6bit": acc6,
                   "energy_6bit": e6, "reference": reference,
                   **{s: {"wall_s": r["wall"], "meets_target": len(r["good"]),
                          "best": {"accuracy": r["search"].best_trial.metric, "energy": r["search"].best_trial.cost}}
                      for s, r in results.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
