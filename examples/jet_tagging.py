#!/usr/bin/env python3
# Copyright 2026 The heteroq Authors. SPDX-License-Identifier: Apache-2.0
"""The jet-tagging study of Coelho et al. (2021), end to end: the project's main job.

The LHC jet-tagging MLP (16 features, 5 classes, 16-64-32-32-5, ReLU) trained as

* BF: the float baseline,
* Q6: uniform 6 bits (``quantized_bits(6,0,alpha=1)`` weights and biases,
  ``quantized_relu(6,0)`` activations, as the hls4ml tutorial's QKeras model),
* QE and QB: AutoQ searches (heteroq.autoq, Bayesian/TPE) for per-layer quantizers (and layer
  widths) that minimize AutoQKeras's energy goal (the paper notebook's parameters) and bits goal,

and compared on accuracy, per-class ROC AUC (one class against the rest), QTools energy, model
bits, BOPs/EBOPs and the estimated FPGA resources, beside the published figures. The searches
score trials on a validation part of the training data; the test set is used only for the final
table.

The data: the real hls4ml jets (OpenML 42468) from ``--data FILE`` (ARFF, CSV, parquet or the
tutorial's .npy directory); without it, heteroq's synthetic surrogate with the same schema, which
every output labels as such (it is not the real data).

    /usr/bin/python3 examples/jet_tagging.py                    # small budget (a few minutes)
    /usr/bin/python3 examples/jet_tagging.py --budget full      # the whole data set, more epochs
    /usr/bin/python3 examples/jet_tagging.py --data hls4ml_lhc_jets_hlf.arff

Writes ``--out`` (default ``jet_tagging_out/``): ``results.json``, ``roc.png``, ``pareto.png``
(the searches' trials), ``bits.png`` (QE's per-layer bit widths), the AutoQ study
(``studies.db``, resumable) and the quantized models' weights (``q6/qe/qb.safetensors``). The
notebook ``examples/jet_tagging.ipynb`` runs the same study through :func:`run_study`.

The C++ program ``examples/cpp/jet_tagging.cpp`` (``heteroq_jet_tagging``) runs the same study on
the same data: ``--export-data FILE`` writes the exact split this script trains and tests on (a
tensor file, :func:`export_data`) and exits; ``heteroq_jet_tagging --data FILE`` reads it
(docs/jet_tagging.md).
"""
import argparse
import json
import os
import pathlib
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import heteroq
from heteroq import datasets

#: Published results on the real data (../shared/reference/benchmarks.md: Coelho et al. 2021
#: Table via HGQ's Table I and FINNAS Table II; VU9P at 200 MHz).
PUBLISHED = {
    "BF": {"accuracy": 0.744, "latency_ns": 45, "lut": 48321, "dsp": None, "ff": None},
    "Q6": {"accuracy": 0.748, "latency_ns": 55, "lut": 39782, "dsp": 124, "ff": 8128},
    "QE": {"accuracy": 0.723, "latency_ns": 55, "lut": 9149, "dsp": 66, "ff": 1781},
    "QB": {"accuracy": 0.719, "latency_ns": 70, "lut": None, "dsp": None, "ff": None},
}

#: The budgets: training jets (None: the whole training part), epochs per model, AutoQ trials per
#: search and epochs per trial. "small" is the main job's and the notebook test's (minutes on 2
#: cores); "full" is the study at scale.
BUDGETS = {
    "small": {"train_limit": 100_000, "epochs": 5, "trials": 8, "trial_epochs": 2},
    "full": {"train_limit": None, "epochs": 30, "trials": 60, "trial_epochs": 10},
}

#: AutoQKeras's goals as the paper's notebook sets them (benchmarks.md §3).
ENERGY_GOAL = {"type": "energy", "params": {
    "delta_p": 8.0, "delta_n": 8.0, "rate": 2.0, "stress": 1.0, "process": "horowitz",
    "parameters_on_memory": ["sram", "sram"], "activations_on_memory": ["sram", "sram"],
    "rd_wr_on_io": [False, False], "min_sram_size": [0, 0], "source_quantizers": ["int8"],
    "reference_internal": "int8", "reference_accumulator": "int32"}}
BITS_GOAL = {"type": "bits", "params": {"delta_p": 8.0, "delta_n": 8.0, "rate": 2.0,
                                        "stress": 1.0}}
#: The energy options of the table (the same memory model as the energy goal).
ENERGY_OPTIONS = {"weights_on_memory": "sram", "activations_on_memory": "sram",
                  "rd_wr_on_io": False, "min_sram_size": 0}

#: The search space: kernel, bias and activation quantizers with their bit costs (AutoQKeras's
#: quantization_config), at most 8 bits per layer; the widths of the hidden layers are searched
#: too (tune_filters="layer"), the output layer's are not.
SEARCH_CONFIG = {
    "kernel": {f"quantized_bits({b},0,1,alpha=1)": b for b in (2, 3, 4, 5, 6, 8)},
    "bias": {f"quantized_bits({b},0,1,alpha=1)": b for b in (4, 6, 8)},
    "activation": {f"quantized_relu({b},{min(3, b - 1)})": b for b in (3, 4, 6, 8)},
}
SEARCH_LIMIT = {"Dense": [8, 8, 8], "Activation": [8]}

HIDDEN = (64, 32, 32)
Q6_CONFIG = {
    "QDense": {"kernel_quantizer": "quantized_bits(6,0,alpha=1)",
               "bias_quantizer": "quantized_bits(6,0,alpha=1)"},
    "QActivation": {"relu": "quantized_relu(6,0)"},
}


def float_mlp() -> torch.nn.Sequential:
    layers: List[torch.nn.Module] = []
    width = 16
    for h in HIDDEN:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 5))
    return torch.nn.Sequential(*layers)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
          batch_size: int = 1024, lr: float = 3e-3, seed: int = 0, name: str = "",
          verbose: bool = True) -> None:
    """Adam and cross-entropy, shuffled mini-batches; prints the loss per epoch."""
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
        if verbose:
            print(f"  {name} epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve of ``scores`` for the boolean labels ``positive`` (the
    Mann-Whitney statistic, ties counted half)."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, positive: np.ndarray):
    """False- and true-positive rates at every threshold (descending scores)."""
    order = np.argsort(-scores, kind="mergesort")
    p = positive[order]
    tpr = np.concatenate([[0.0], np.cumsum(p) / max(p.sum(), 1)])
    fpr = np.concatenate([[0.0], np.cumsum(~p) / max((~p).sum(), 1)])
    return fpr, tpr


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             class_names: Sequence[str]) -> Dict[str, object]:
    model.eval()
    with torch.no_grad():
        prob = torch.softmax(model(x), 1).numpy().astype(np.float64)
    labels = y.numpy()
    acc = float((prob.argmax(1) == labels).mean())
    auc = {c: roc_auc(prob[:, k], labels == k) for k, c in enumerate(class_names)}
    return {"accuracy": acc, "auc": auc, "prob": prob}


def costs(model: torch.nn.Module) -> Dict[str, float]:
    """The cost models of heteroq.cost for one input of 16 features (8-bit unsigned inputs, as
    QKeras's print_qstats assumes; the energy with the memory model of the energy goal)."""
    shape = (1, 16)
    layers = heteroq.cost.describe(model, shape)
    energy = heteroq.cost.energy(layers, **ENERGY_OPTIONS)
    size = heteroq.cost.model_size(layers)
    bops = heteroq.cost.bops(layers)
    fpga = heteroq.cost.fpga_estimate(layers)
    return {"energy_pj": energy.total, "bits": size.total_bits, "ebops": bops.ebops,
            "bops": bops.bops, "lut": fpga.lut, "dsp": fpga.dsp, "ff": fpga.ff,
            "latency_cycles": fpga.latency_cycles, "latency_ns": fpga.latency_ns}


def fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(results: Dict[str, Dict[str, object]], surrogate: bool) -> str:
    data = "surrogate (synthetic, NOT the real data)" if surrogate else "real hls4ml jets"
    lines = [f"Jet tagging, 16-64-32-32-5 MLP; data: {data}",
             f"{'model':<6}{'acc':>8}{'pub.acc':>9}{'mean AUC':>10}{'energy pJ':>12}{'bits':>9}"
             f"{'EBOPs':>9}{'LUT':>8}{'pub.LUT':>9}{'DSP':>6}{'pub.DSP':>8}{'FF':>8}"
             f"{'pub.FF':>8}{'lat cc':>8}"]
    for name, r in results.items():
        pub = PUBLISHED.get(name, {})
        c = r["costs"]
        lines.append(
            f"{name:<6}{r['accuracy']:>8.4f}{fmt(pub.get('accuracy'), '.3f'):>9}"
            f"{np.mean(list(r['auc'].values())):>10.4f}{c['energy_pj']:>12.1f}{c['bits']:>9d}"
            f"{c['ebops']:>9.0f}{c['lut']:>8.0f}{fmt(pub.get('lut'), 'd'):>9}{c['dsp']:>6.0f}"
            f"{fmt(pub.get('dsp'), 'd'):>8}{c['ff']:>8.0f}{fmt(pub.get('ff'), 'd'):>8}"
            f"{c['latency_cycles']:>8.0f}")
    lines.append("pub.: Coelho et al. 2021 on the real data (VU9P, 200 MHz), from "
                 "../shared/reference/benchmarks.md; ours: heteroq.cost estimates (no synthesis).")
    return "\n".join(lines)


def plot_roc(results: Dict[str, Dict[str, object]], y: np.ndarray, class_names: Sequence[str],
             path: pathlib.Path, surrogate: bool) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    styles = ["-", "--", ":", "-."]
    for (name, r), style in zip(results.items(), styles):
        for k, c in enumerate(class_names):
            fpr, tpr = roc_curve(r["prob"][:, k], y == k)
            ax.plot(tpr, fpr, style, color=f"C{k}",
                    label=f"{c} {name} (AUC {r['auc'][c]:.3f})")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1)
    ax.set_xlabel("signal efficiency (true-positive rate)")
    ax.set_ylabel("background efficiency (false-positive rate)")
    ax.set_title("jet tagging ROC" + (" (surrogate data)" if surrogate else ""))
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def search(name: str, goal: Dict[str, object], float_model: torch.nn.Module,
           x_fit: torch.Tensor, y_fit: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *,
           trials: int, epochs: int, seed: int, storage: pathlib.Path,
           progress: bool) -> "heteroq.autoq.AutoQ":
    """An AutoQ search (Bayesian/TPE) of the float model's quantizers and hidden widths for
    ``goal``; trials train on (x_fit, y_fit) and are scored on the validation part."""
    def train_trial(model: torch.nn.Module, n_epochs: int, trial) -> float:
        train(model, x_fit, y_fit, epochs=n_epochs, seed=seed, verbose=False)
        return accuracy(model, x_val, y_val)

    s = heteroq.autoq.AutoQ(
        float_model, (1, 16), goal, strategy="bayesian", quantization_config=SEARCH_CONFIG,
        limit=SEARCH_LIMIT, tune_filters="layer", tune_filters_exceptions="^6$",
        max_trials=trials, epochs=epochs, seed=seed, storage=storage, study_name=name,
        overwrite=True, tpe={"startup_trials": max(3, trials // 4)}, progress=progress)
    s.fit(train_trial)
    return s


def plot_searches(searches: Dict[str, "heteroq.autoq.AutoQ"], out: pathlib.Path,
                  surrogate: bool) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(searches), figsize=(5 * len(searches), 4))
    for ax, (name, s) in zip(np.atleast_1d(axes), searches.items()):
        done = [t for t in s.trials if t.status == "complete"]
        front = s.pareto_front()
        ax.scatter([t.cost for t in done], [t.metric for t in done], s=12, label="trials")
        ax.plot([t.cost for t in front], [t.metric for t in front], "r.-", label="Pareto front")
        best = s.best_trial
        ax.scatter([best.cost], [best.metric], marker="*", s=150, color="k",
                   label=f"best score ({name})")
        ax.set_xlabel(f"{s.goal.type} (trial cost)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"AutoQ {name}: {s.goal.type} goal" + (" (surrogate)" if surrogate else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)
    plt.close(fig)
    searches[next(iter(searches))].plot_bits(out / "bits.png")


#: The format tag of the split file :func:`export_data` writes (read by heteroq_jet_tagging).
SPLIT_FORMAT = "heteroq.jet_split"


def load_split(*, data: Optional[str] = None, train_limit: Optional[int] = None, seed: int = 0,
               data_limit: Optional[int] = None):
    """The data of the study: ``(jets, x_train, y_train)`` -- the jets as tensors (the real data
    from ``data``, else the surrogate of ``surrogate_seed=seed`` with ``data_limit`` jets) and
    the training part the models use (its first ``train_limit`` jets)."""
    jets = (datasets.load_jets(data, limit=data_limit) if data else
            datasets.load_jets(surrogate=True, surrogate_seed=seed, limit=data_limit)).as_tensors()
    x_train, y_train = jets.x_train, jets.y_train
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    return jets, x_train, y_train


def export_data(path: str, *, data: Optional[str] = None, budget: str = "small",
                train_limit: Optional[int] = None, seed: int = 0,
                data_limit: Optional[int] = None) -> Dict[str, object]:
    """Writes the exact split :func:`run_study` uses with the same arguments to ``path``, a
    tensor file (safetensors layout, heteroq.serialize.write_tensor_file): ``x_train`` (float32,
    [N, 16], standardized; the searches validate on its first N // 10 rows and fit on the rest),
    ``y_train`` (int64, [N]), ``x_test``, ``y_test``; metadata ``format`` (SPLIT_FORMAT),
    ``description``, ``surrogate`` ("true"/"false"), ``class_names`` (JSON list) and ``seed``.
    Returns the metadata."""
    if budget not in BUDGETS:
        raise ValueError(f"jet_tagging: unknown budget {budget!r}; choose from {sorted(BUDGETS)}")
    limit = BUDGETS[budget]["train_limit"] if train_limit is None else train_limit
    jets, x_train, y_train = load_split(data=data, train_limit=limit, seed=seed,
                                        data_limit=data_limit)
    meta = {"format": SPLIT_FORMAT, "description": jets.description,
            "surrogate": "true" if jets.is_surrogate else "false",
            "class_names": json.dumps(list(jets.class_names)), "seed": str(seed)}
    from heteroq.serialize import write_tensor_file
    write_tensor_file(path, {"x_train": x_train.float().contiguous(),
                             "y_train": y_train.long().contiguous(),
                             "x_test": jets.x_test.float().contiguous(),
                             "y_test": jets.y_test.long().contiguous()}, meta)
    print(f"wrote {path}: {len(x_train)} training jets, {len(jets.x_test)} test jets; "
          f"data: {jets.description}")
    return meta


def run_study(*, data: Optional[str] = None, budget: str = "small", epochs: Optional[int] = None,
              train_limit: Optional[int] = None, trials: Optional[int] = None,
              trial_epochs: Optional[int] = None, seed: int = 0, threads: int = 2,
              out: str = "jet_tagging_out", progress: bool = False,
              data_limit: Optional[int] = None, plots: bool = True) -> Dict[str, object]:
    """Runs the study and returns its results (what results.json holds, plus the models, the
    searches and the printed table): ``{"table", "models", "searches", "results", ...}``.
    ``data_limit``: only the first that many jets of the data (the surrogate: that many jets);
    ``plots=False`` skips the figures."""
    if budget not in BUDGETS:
        raise ValueError(f"jet_tagging: unknown budget {budget!r}; choose from {sorted(BUDGETS)}")
    b = dict(BUDGETS[budget])
    for key, value in (("epochs", epochs), ("train_limit", train_limit), ("trials", trials),
                       ("trial_epochs", trial_epochs)):
        if value is not None:
            if value < 1:
                raise ValueError(f"jet_tagging: {key} must be >= 1, got {value}")
            b[key] = value
    torch.set_num_threads(threads)
    out_dir = pathlib.Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()

    jets, x_train, y_train = load_split(data=data, train_limit=b["train_limit"], seed=seed,
                                        data_limit=data_limit)
    print(f"data: {jets.description}")
    n_val = len(x_train) // 10  # the searches' validation part (the test set stays unseen)
    x_fit, y_fit, x_val, y_val = x_train[n_val:], y_train[n_val:], x_train[:n_val], y_train[:n_val]
    print(f"budget {budget}: {len(x_train)} training jets ({n_val} of them validate the "
          f"searches), {b['epochs']} epochs per model, {b['trials']} AutoQ trials of "
          f"{b['trial_epochs']} epochs per search, {len(jets.x_test)} test jets, {threads} threads")

    models: Dict[str, torch.nn.Module] = {}
    torch.manual_seed(seed)
    models["BF"] = float_mlp()
    print("BF: float baseline")
    train(models["BF"], x_train, y_train, epochs=b["epochs"], seed=seed, name="BF")

    torch.manual_seed(seed)
    models["Q6"] = heteroq.model_quantize(float_mlp(), Q6_CONFIG, activation_bits=6)
    print("Q6: uniform 6-bit")
    train(models["Q6"], x_train, y_train, epochs=b["epochs"], seed=seed, name="Q6")

    searches = {}
    storage = out_dir / "studies.db"
    for name, goal in (("QE", ENERGY_GOAL), ("QB", BITS_GOAL)):
        print(f"{name}: AutoQ, {goal['type']} goal, {b['trials']} trials (Bayesian/TPE), "
              f"starting from BF's weights")
        t0 = time.time()
        s = search(name, goal, models["BF"], x_fit, y_fit, x_val, y_val, trials=b["trials"],
                   epochs=b["trial_epochs"], seed=seed, storage=storage, progress=progress)
        best = s.best_trial
        print(f"  {name}: best trial {best.number}: validation accuracy {best.metric:.4f}, "
              f"{goal['type']} {best.cost:.1f} (reference {s.reference_cost:.1f}), score "
              f"{best.score:.4f}; {time.time() - t0:.1f} s")
        # The chosen configuration, trained as long as the baselines (from BF's weights).
        model = s.best_model(trained=False)
        train(model, x_train, y_train, epochs=b["epochs"], seed=seed, name=name)
        models[name] = model
        searches[name] = s

    results: Dict[str, Dict[str, object]] = {}
    for name, model in models.items():
        results[name] = evaluate(model, jets.x_test, jets.y_test, jets.class_names)
        results[name]["costs"] = costs(model)
    text = table(results, jets.is_surrogate)
    print()
    print(text)
    for name in ("QE", "QB"):
        print(f"\n{name} quantizers (per layer):")
        for layer, q in searches[name].best_config["quantizer_config"].items():
            print(f"  {layer}: {q}")
        print(f"  widths: {searches[name].best_config.get('filters', {})}")

    for name in ("Q6", "QE", "QB"):
        heteroq.save_quantized_weights(models[name], str(out_dir / f"{name.lower()}.safetensors"))
    if plots:
        plot_roc(results, jets.y_test.numpy(), jets.class_names, out_dir / "roc.png",
                 jets.is_surrogate)
        plot_searches(searches, out_dir, jets.is_surrogate)
    summary = {"data": jets.description, "surrogate": jets.is_surrogate, "budget": budget,
               **{k: v for k, v in b.items()}, "train_jets": len(x_train),
               "models": {n: {"accuracy": r["accuracy"], "auc": r["auc"], "costs": r["costs"]}
                          for n, r in results.items()},
               "searches": {n: {"best_config": s.best_config, "reference_cost": s.reference_cost,
                                "trials": s.history()} for n, s in searches.items()},
               "published": PUBLISHED, "wall_time_s": time.time() - start}
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, out_dir / "results.json")
    figures = "roc.png, pareto.png, bits.png, " if plots else ""
    print(f"\nwrote {out_dir}/results.json, {figures}studies.db, "
          f"q6/qe/qb.safetensors; wall time {time.time() - start:.1f} s")
    return {"table": text, "models": models, "searches": searches, "results": results,
            "summary": summary, "out": out_dir}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="the real jet data (a file or the tutorial's .npy directory)")
    p.add_argument("--budget", choices=sorted(BUDGETS),
                   default=os.environ.get("HETEROQ_BUDGET", "small"),
                   help="small (minutes; default, or $HETEROQ_BUDGET) or full")
    p.add_argument("--epochs", type=int, help="epochs per model (default: the budget's)")
    p.add_argument("--train-limit", type=int, help="training jets (default: the budget's)")
    p.add_argument("--trials", type=int, help="AutoQ trials per search (default: the budget's)")
    p.add_argument("--trial-epochs", type=int, help="epochs per trial (default: the budget's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="jet_tagging_out", help="output directory")
    p.add_argument("--data-limit", type=int,
                   help="only the first N jets of the data (the surrogate: N jets)")
    p.add_argument("--export-data", metavar="FILE",
                   help="write the split the study would use (for heteroq_jet_tagging) and exit")
    args = p.parse_args(argv)
    try:
        if args.export_data:
            export_data(args.export_data, data=args.data, budget=args.budget,
                        train_limit=args.train_limit, seed=args.seed, data_limit=args.data_limit)
            return 0
        run_study(data=args.data, budget=args.budget, epochs=args.epochs,
                  train_limit=args.train_limit, trials=args.trials,
                  trial_epochs=args.trial_epochs, seed=args.seed, threads=args.threads,
                  out=args.out, data_limit=args.data_limit)
    except ValueError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
