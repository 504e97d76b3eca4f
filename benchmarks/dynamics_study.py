"""Study: dynamics of membership privacy (after Chen et al. 2025, arXiv:2507.23291; privaudit's definitions)
across dataset complexity (digits / MNIST / CIFAR-10 subsets with the same MLP), architecture (MLP vs
CNN on MNIST; a CIFAR-10 CNN is optional: ``--only cifar10_cnn_adam``) and optimizer (Adam vs SGD on
digits; SGD vs Adam vs SAM, which the trainer implements as ``training.optimizer: sam``, on a CIFAR-10
WRN is ``benchmarks/reproduce/dynamics.py``), with checkpointed populations small enough for a shared
2-core CPU.

    nice -n 10 python benchmarks/dynamics_study.py            # all conditions (resumes finished work)
    nice -n 10 python benchmarks/dynamics_study.py --only digits_mlp_adam,mnist_cnn_adam

Every condition: the same pool size (``--n`` samples), the same number of models (``--models``, balanced
50 % design, all models are targets, leave-one-model-out) and the same checkpoint epochs, so the
dynamics metrics (which depend on the per-sample rate resolution 1 / #targets) are comparable.
Writes ``benchmarks/results/dynamics_study.json`` (also printed) and PNGs
``benchmarks/results/dynamics_<condition>_{trajectories,early_prediction}.png``,
``dynamics_early_prediction_all.png`` and ``dynamics_hv_recall_all.png``. Run directories go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from privaudit.config import parse_config
from privaudit.report.plots import line_plot
from privaudit.runtime.run import Layout, Run
from privaudit.stages.evaluate import evaluate
from privaudit.stages.prepare import prepare
from privaudit.stages.query import query
from privaudit.stages.train import train
from privaudit.studies.dynamics import NAME
from privaudit.studies.dynamics.analysis import MIN_HV
from privaudit.studies.dynamics.stage import run_dynamics

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
EPOCHS = 40
CHECKPOINTS = [1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35]      # + the final epoch 40

DATASETS = {"digits": {"name": "digits"},
            "mnist": {"name": "mnist", "root": str(DATA / "mnist")},
            "cifar10": {"name": "cifar10", "root": str(DATA / "cifar10_jpeg")}}
MLP = {"arch": "mlp", "hidden": [256]}
CNN = {"arch": "cnn", "width": 16}
ADAM = {"optimizer": "adam", "lr": 0.002}
ADAM_CNN = {"optimizer": "adam", "lr": 0.005}     # at 0.002 the CNN reaches only ~65-87 % train accuracy
SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}
# name -> (dataset, model, optimizer); the factor each pair isolates is in FACTORS
CONDITIONS = {
    "digits_mlp_adam": ("digits", MLP, ADAM),
    "digits_mlp_sgd": ("digits", MLP, SGD),
    "mnist_mlp_adam": ("mnist", MLP, ADAM),
    "mnist_cnn_adam": ("mnist", CNN, ADAM_CNN),
    "cifar10_mlp_adam": ("cifar10", MLP, ADAM),
    "cifar10_cnn_adam": ("cifar10", CNN, ADAM_CNN),
}
# cifar10_cnn_adam is not in the default set: with this CPU budget (40 epochs, 500 samples per model) the
# CNN reaches only ~50 % training accuracy on CIFAR-10, so it says more about under-fitting than architecture.
DEFAULT = [c for c in CONDITIONS if c != "cifar10_cnn_adam"]
FACTORS = {"dataset complexity (MLP, Adam)": ["digits_mlp_adam", "mnist_mlp_adam", "cifar10_mlp_adam"],
           "architecture (MNIST, Adam)": ["mnist_mlp_adam", "mnist_cnn_adam"],
           "optimizer (digits, MLP)": ["digits_mlp_adam", "digits_mlp_sgd"]}


def config(name: str, work: Path, n: int, models: int):
    data, model, opt = CONDITIONS[name]
    return parse_config({
        "name": name, "seed": 0, "out": str(work), "data": DATASETS[data] | {"n": n},
        "population": {"n_models": models, "models_per_group": models, "design": "balanced"},
        "model": model,
        "training": {"epochs": EPOCHS, "batch_size": 64, "schedule": "cosine", "workers": 1,
                     "checkpoints": CHECKPOINTS, **opt},
        "attacks": ["lira_online"], "evaluation": {"targets": models - 1, "bootstrap": 50},
    }, f"dynamics_study:{name}")


def accuracy(run: Run, epoch: int) -> dict[str, float]:
    """Mean accuracy of the models on their members (train) and non-members (held out)."""
    keep, y = run.keep(), run.labels()
    correct = np.asarray(run.load_npy(Layout.signal("logits", epoch), mmap=True)[:, :, 0]).argmax(-1) == y[None]
    return {"train_acc": float(correct[keep].mean()), "heldout_acc": float(correct[~keep].mean())}


def run_condition(name: str, work: Path, n: int, models: int, n_boot: int) -> dict:
    cfg = config(name, work, n, models)
    run = Run(cfg.run_dir)
    t0 = time.perf_counter()
    with run.writer():
        prepare(run, cfg)
        train(run, cfg)
        t_train = time.perf_counter() - t0
        query(run, cfg)
        evaluate(run, cfg)                 # the final epoch's metrics (evaluation.targets = models - 1)
        t_sig = time.perf_counter() - t0 - t_train
        out = run_dynamics(run, cfg, attack="lira_online", fpr=0.01, top_frac=0.1, n_boot=n_boot)
    t_dyn = time.perf_counter() - t0 - t_train - t_sig
    doc = out.doc
    final_metrics = run.load_json(Layout.metrics)["attacks"]["lira_online"]["summary"]
    for kind in ("trajectories", "early_prediction"):
        shutil.copyfile(run.path(Layout.study(NAME, f"{kind}.png")), RESULTS / f"dynamics_{name}_{kind}.png")
    return {
        "condition": name, "dataset": cfg.data.name, "arch": cfg.model.arch, "optimizer": cfg.training.optimizer,
        "n_samples": doc["n_samples"], "n_models": models, "epochs": doc["epochs"],
        "seconds": {"train_and_prepare": t_train, "signals": t_sig, "dynamics": t_dyn},
        **accuracy(run, EPOCHS),
        "final_auc": final_metrics["auc"], "final_tpr@0.01": final_metrics["tpr@0.01"],
        **dynamics_summary(doc),
    }


def dynamics_summary(doc: dict) -> dict:
    """The dynamics numbers of one run's ``dynamics.json`` (:func:`run_dynamics`'s document) that the
    tables quote: centre of mass, speed, entropy, entry into the highly-vulnerable region, early
    prediction (same models, cross-model, highly-vulnerable recall), correlations and findings."""
    ep, cross = doc["early_prediction"], doc["early_prediction_cross_model"]
    return {
        "com_displacement_pp": doc["com_displacement"]["displacement_pp"],
        "com_path_length_pp": doc["com_displacement"]["path_length_pp"],
        "com_first_last_pp": [[100 * v for v in doc["center_of_mass"][i]] for i in (0, -1)],
        "encoding_speed": doc["encoding_speed"], "speed_per_step": doc["speed_per_step"],
        "entropy": doc["entropy"], "entropy_change": doc["entropy_change"],
        "entry_probability": doc["entry_probability"], "peak_entry_probability": doc["peak_entry_probability"],
        "n_highly_vulnerable_final": doc["n_highly_vulnerable_final"],
        "early_prediction": {k: ep[k] for k in ("k", "chance", "precision", "precision_lo", "precision_hi",
                                                "spearman", "spearman_lo", "spearman_hi")},
        "early_identification_hv": {k: doc["early_identification_hv"].get(k) for k in
                                    ("n_final", "recall", "recall_lo", "recall_hi", "chance")},
        "early_prediction_cross_model": {k: cross.get(k) for k in ("precision", "precision_lo", "precision_hi",
                                                                   "spearman", "reliability_spearman_brown")},
        "correlations": {k: {m: v.get(m) for m in ("rho", "lo", "hi", "p_value", "n")}
                         for k, v in doc["correlations"].items()},
        "findings": [{k: f[k] for k in ("question", "measure", "value", "ci", "answer")} for f in doc["findings"]],
        "forgetting_resolution": doc["forgetting_resolution"],
    }


def combined_plots(rows: list[dict]) -> list[Path]:
    """Early-prediction precision (top 10 %) and recall of the final highly-vulnerable set, all conditions."""
    def curve(block: dict, key: str):
        y = np.array([np.nan if v is None else v for v in block[key]], dtype=float)
        lo = np.array([np.nan if v is None else v for v in block[key + "_lo"]], dtype=float)
        hi = np.array([np.nan if v is None else v for v in block[key + "_hi"]], dtype=float)
        return y, np.clip(np.nan_to_num(np.stack([y - lo, hi - y])), 0, None)

    chance = (np.full(len(rows[0]["epochs"]), rows[0]["early_prediction"]["chance"]), None)
    prec = {r["condition"]: curve(r["early_prediction"], "precision") for r in rows} | {"chance": chance}
    hv = {f"{r['condition']} ({r['early_identification_hv']['n_final']})": curve(r["early_identification_hv"], "recall")
          for r in rows if (r["early_identification_hv"].get("recall") or [])
          and r["early_identification_hv"]["n_final"] >= MIN_HV}
    return [line_plot(rows[0]["epochs"], prec, RESULTS / "dynamics_early_prediction_all.png", xlabel="epoch",
                      ylabel="precision of top-10% vs final top-10%",
                      title="early prediction (same models, LiRA online, FPR 1%)"),
            line_plot(rows[0]["epochs"], hv, RESULTS / "dynamics_hv_recall_all.png", xlabel="epoch",
                      ylabel="share of final highly-vulnerable already in region",
                      title=f"early identification of the final highly-vulnerable set (n >= {MIN_HV})")]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(DEFAULT), help=f"comma list of conditions ({', '.join(CONDITIONS)})")
    ap.add_argument("--work", default="/tmp/privaudit_dynamics_study", help="folder of the run directories")
    ap.add_argument("--n", type=int, default=1000, help="pool size of every dataset")
    ap.add_argument("--models", type=int, default=16, help="models per population (all are targets)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    ap.add_argument("--json", default=str(RESULTS / "dynamics_study.json"))
    ap.add_argument("--replot", action="store_true", help="only redraw the combined plots from --json")
    args = ap.parse_args(argv)
    if args.replot:
        print("\n".join(map(str, combined_plots(json.loads(Path(args.json).read_text())["conditions"]))))
        return
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        rows.append(run_condition(name, Path(args.work), args.n, args.models, args.bootstrap))
        print(f"{name}: {time.perf_counter() - t0:.0f} s so far", file=sys.stderr, flush=True)
    doc = {"study": "dynamics of membership privacy (after Chen et al. 2025; privaudit's definitions)",
           "command": "nice -n 10 python benchmarks/dynamics_study.py "
                      + " ".join(argv if argv is not None else sys.argv[1:]),
           "attack": "lira_online, leave-one-model-out, every model a target", "fpr": 0.01, "top_frac": 0.1,
           "factors": FACTORS, "total_seconds": time.perf_counter() - t0, "conditions": rows}
    if rows:
        doc["plots"] = [str(p.relative_to(REPO)) for p in combined_plots(rows)]
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
