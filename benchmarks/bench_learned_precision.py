# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""Issue 9's benchmark (not a timed test): the Pareto fronts (accuracy vs EBOPs, and vs the FPGA
LUT estimate) of three ways to spend the same training budget on the jet-tagging MLP:

- **AutoQ alone**: ``T`` trials of ``e`` epochs (budget ``T*e`` epochs);
- **learned precision alone**: the 8-bit model (``quantized_bits(8,0,alpha=1)`` weights,
  ``quantized_relu(8,3)`` activations) turned into H layers (``heteroq.hgq.from_quantized``) and
  trained ``T*e`` epochs under a log-ramped EBOPs regularizer, one checkpoint per epoch;
  in every refinement the bit widths have their own Adam (``--width-lr``);
- **combined** (``heteroq.autoq.refine``): ``T/2`` AutoQ trials, then its Pareto trials refined
  with the other half of the budget split between them (the remainder to the cheapest ones), each under a budget controller that
  steers its EBOPs to ``--refine-budget`` times its starting EBOPs (0: the log ramp instead).

Every point is a model with fixed quantizers, priced by ``heteroq.cost`` (EBOPs and
``fpga_estimate``'s LUTs) and scored on the test jets. It prints one table per method, whether
the combined front dominates AutoQ's (every AutoQ front point matched or beaten in both accuracy
and EBOPs by a combined point, one of them strictly), and writes a plot.

    PYTHONPATH=build/python /usr/bin/python3 benchmarks/bench_learned_precision.py \\
        --out docs/images/learned_precision_front.png

The data is the offline surrogate of the hls4ml jet dataset unless ``--data`` names the real
OpenML 42468 file (see docs/datasets.md); surrogate numbers say nothing about the real task.
"""
import argparse
import copy
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

import heteroq  # noqa: E402
from heteroq import autoq, cost, hgq, regularizers  # noqa: E402

import jet_tagging as jt  # noqa: E402  (the study's model, search space, data and training loop)


def front_dominates(a, b):
    """Whether front ``a`` dominates front ``b``: every point of b is matched or beaten by one of
    a in both coordinates (accuracy up, EBOPs down), and at least one strictly."""
    strict = False
    for q in b:
        better = [p for p in a if p[0] >= q[0] and p[1] <= q[1]]
        if not better:
            return False
        strict |= any(p[0] > q[0] or p[1] < q[1] for p in better)
    return strict


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="the real jet data (OpenML 42468 file); default: surrogate")
    ap.add_argument("--jets", type=int, default=60_000, help="jets of the surrogate (train + test)")
    ap.add_argument("--trials", type=int, default=8, help="AutoQ trials of the AutoQ-alone search (T)")
    ap.add_argument("--trial-epochs", type=int, default=2, help="epochs per AutoQ trial (e)")
    ap.add_argument("--beta", type=float, nargs=2, default=(1e-7, 2e-5), metavar=("BETA0", "BETA1"),
                    help="the EBOPs coefficient's log ramp over the refinement")
    ap.add_argument("--refine-budget", type=float, default=0.8,
                    help="combined: each refined model's EBOPs budget, a fraction of its starting EBOPs "
                         "(EBOPsRegularizer.controller from BETA1); 0: the log ramp of --beta")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--width-lr", type=float, default=0.02,
                    help="the bit widths' own Adam learning rate in every refinement (make_refiner's "
                         "width_lr); 0: --lr, one optimizer for all parameters")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="the plot (PNG); none without it")
    ap.add_argument("--csv", default=None, help="the combined pipeline's points (Refinement.to_csv)")
    args = ap.parse_args(argv)
    if args.trials < 2 or args.trial_epochs < 1:
        ap.error("--trials must be >= 2 and --trial-epochs >= 1")
    if args.refine_budget < 0 or args.width_lr < 0:
        ap.error("--refine-budget and --width-lr must be >= 0")
    torch.set_num_threads(args.threads)
    start = time.time()

    jets, x_train, y_train = jt.load_split(data=args.data, seed=args.seed,
                                           data_limit=None if args.data else args.jets)
    n_val = len(x_train) // 10
    x_fit, y_fit, x_val, y_val = x_train[n_val:], y_train[n_val:], x_train[:n_val], y_train[:n_val]
    x_test, y_test = jets.x_test.float(), jets.y_test
    budget = args.trials * args.trial_epochs
    print(f"data: {jets.description}")
    print(f"{len(x_fit)} fitting jets, {n_val} validation, {len(x_test)} test; budget {budget} epochs "
          f"per method; {args.threads} threads")

    def batches():
        g = torch.Generator().manual_seed(args.seed)
        perm = torch.randperm(len(x_fit), generator=g)
        return [(x_fit[perm[i:i + 1024]], y_fit[perm[i:i + 1024]]) for i in range(0, len(x_fit), 1024)]

    fit_batches = batches()
    val = [(x_val, y_val)]
    steps_per_epoch = len(fit_batches)

    def refiner(epochs, budget_fraction=0.0):
        reg = regularizers.EBOPsRegularizer.ramp(args.beta[0], args.beta[1], 0, epochs * steps_per_epoch)
        if budget_fraction > 0:
            def reg(hmodel):  # noqa: F811  (one controller per model, from its starting EBOPs)
                target = budget_fraction * float(regularizers.total_ebops(hmodel))
                return regularizers.EBOPsRegularizer.controller(target, args.beta[1], gain=0.1)
        return autoq.make_refiner(fit_batches, val, torch.nn.functional.cross_entropy, regularizer=reg,
                                  epochs=epochs, input_shape=(1, 16), width_lr=args.width_lr or None,
                                  optimizer=lambda p: torch.optim.Adam(p, lr=args.lr))

    def run_search(trials, name):
        torch.manual_seed(args.seed)
        s = autoq.AutoQ(jt.float_mlp(), (1, 16), jt.BITS_GOAL, strategy="bayesian",
                        quantization_config=jt.SEARCH_CONFIG, limit=jt.SEARCH_LIMIT, tune_filters="layer",
                        tune_filters_exceptions="^6$", max_trials=trials, epochs=args.trial_epochs,
                        seed=args.seed, tpe={"startup_trials": max(3, trials // 4)}, progress=False,
                        keep_models="all", study_name=name)

        def train_trial(model, n_epochs, trial):
            jt.train(model, x_fit, y_fit, epochs=n_epochs, seed=args.seed, verbose=False, lr=args.lr)
            return jt.accuracy(model, x_val, y_val)

        return s.fit(train_trial)

    def scored(models):
        """(test accuracy, EBOPs, LUT) of each model."""
        rows = []
        for m in models:
            m.eval()
            c = cost.estimate(m, (1, 16))
            rows.append((jt.accuracy(m, x_test, y_test), c.ebops, c.lut))
        return rows

    # AutoQ alone: T trials
    alone = run_search(args.trials, "autoq_alone")
    autoq_models = [alone.trained_model(t) for t in alone.trials if t.status == "complete"]
    results = {"AutoQ alone": scored(autoq_models)}

    # learned precision alone, from the 8-bit model
    torch.manual_seed(args.seed)
    q8 = heteroq.model_quantize(jt.float_mlp(), {
        "QDense": {"kernel_quantizer": "quantized_bits(8,0,alpha=1)",
                   "bias_quantizer": "quantized_bits(8,3,alpha=1)"},
        "QActivation": {"relu": "quantized_relu(8,3)"}}, activation_bits=8)
    points = refiner(budget)(hgq.from_quantized(q8))
    results["learned precision alone"] = scored([p.model for p in points])

    # combined: T/2 trials, then refine their Pareto front with the other half of the budget
    half = run_search(args.trials // 2, "autoq_half")
    chosen = half.pareto_front()
    # the rest of the budget split between them, the remainder to the first (the cheapest) ones
    rest = budget - (args.trials // 2) * args.trial_epochs
    epochs = [max(1, rest // len(chosen) + (1 if i < rest % len(chosen) else 0)) for i in range(len(chosen))]
    combined = autoq.Refinement([
        p for t, e in zip(chosen, epochs)
        for p in autoq.refine(half, refiner(e, args.refine_budget), trials=[t.number]).points])
    results["combined"] = scored([p.model for p in combined.points])
    if args.csv:
        combined.to_csv(args.csv)
    how = (f"EBOPs budget {args.refine_budget:g} x the starting EBOPs" if args.refine_budget > 0
           else f"beta ramp {args.beta[0]:g} -> {args.beta[1]:g}")
    print(f"combined: {len(chosen)} AutoQ Pareto trials refined {', '.join(map(str, epochs))} epochs ({how})")

    fronts = {}
    for name, rows in results.items():
        idx = heteroq._C._autoq_pareto_front([r[0] for r in rows], [r[1] for r in rows])
        fronts[name] = [rows[i] for i in idx]
        print(f"\n{name}: {len(rows)} models, front (test accuracy, EBOPs, LUT):")
        print("| accuracy | EBOPs | LUT |\n|---|---|---|")
        for acc, e, lut in fronts[name]:
            print(f"| {acc:.4f} | {e:.0f} | {lut} |")
    dom = front_dominates(fronts["combined"], fronts["AutoQ alone"])
    print(f"\ncombined front dominates AutoQ alone's (accuracy vs EBOPs): {dom}")
    print(f"total time {time.time() - start:.0f} s")

    if args.out:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for name, rows in results.items():
            for ax, k, label in ((axes[0], 1, "EBOPs"), (axes[1], 2, "LUT (fpga_estimate)")):
                pts = sorted(rows, key=lambda r: r[k])
                ax.scatter([r[k] for r in pts], [r[0] for r in pts], s=10, alpha=0.35)
                idx = heteroq._C._autoq_pareto_front([r[0] for r in rows], [float(r[k]) for r in rows])
                fr = sorted((rows[i] for i in idx), key=lambda r: r[k])
                ax.step([r[k] for r in fr], [r[0] for r in fr], where="post", label=name)
                ax.set_xscale("log")
                ax.set_xlabel(label)
                ax.set_ylabel("test accuracy")
        axes[0].legend()
        fig.suptitle(f"jet tagging ({'surrogate data' if not args.data else 'OpenML 42468'}), "
                     f"{budget} epochs per method")
        fig.tight_layout()
        tmp = args.out + ".tmp.png"
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
