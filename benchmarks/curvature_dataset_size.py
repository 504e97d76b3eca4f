"""Dataset-size experiment of Curvature Clues (Ravikumar et al. NeurIPS 2024, Fig. 8), small scale.

Protocol (the paper's dataset-size experiment): the *standard* shadow population of a
finished run (every model trained on a random half of the pool, e.g. ``configs/mnist_curvature.yaml``)
fits the per-example Gaussians; target models are trained with the run's recipe on the first
``m = fraction * n`` indices of a random permutation of the pool (members) and attacked on the
whole pool (the other ``n - m`` samples are the non-members). Fractions stop at 0.9 as in the paper
(m <= 45,000 of 50,000): 1.0 would leave no non-members. Two targets (two permutations) per fraction,
as in the paper's notebooks. Attacks: LOSS (Yeom), LiRA online/offline (Carlini, on phi), Curv ZO
NLL/LR, all with their registry defaults; curvature with the run's own settings (same probes).

Targets are cached in the run, under ``<run>/results/dataset_size/`` (rerun = evaluation only;
the run's lock is held meanwhile). Output: JSON (``--out``)
and two PNG plots (AUROC and TPR at 0.1% FPR against the fraction) next to it.

    nice -n 10 python benchmarks/curvature_dataset_size.py --run runs/mnist_curvature \
        --out benchmarks/results/curvature_dataset_size.json
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from privaudit.attacks.registry import run_attack
from privaudit.device import resolve_device
from privaudit.evaluation import metrics
from privaudit.runtime.executor import run_tasks
from privaudit.runtime.plan import arch_spec, progress, queries, recipe
from privaudit.runtime.run import Layout, Run
from privaudit.signals.query import query_logits
from privaudit.runtime.plan import curvature_settings
from privaudit.stages.curvature import curvature_of_group
from privaudit.signals.transforms import derive

FRACTIONS = (0.1, 0.2, 0.4, 0.7, 0.9)
ATTACKS = {"LOSS (Yeom)": ("loss", "loss"), "LiRA online": ("lira_online", "phi"),
           "LiRA offline": ("lira_offline", "phi"), "Curv ZO NLL": ("curv_zo_nll", "curvature"),
           "Curv ZO LR": ("curv_zo_lr", "curvature")}
TARGET_SEED = 7919   # root seed of the target models (shadows use the run's seed)


def target_members(n: int, fraction: float, replicate: int) -> np.ndarray:
    """bool [n]: the first ``round(fraction n)`` indices of permutation ``replicate`` (nested in m)."""
    perm = np.random.default_rng(TARGET_SEED + replicate).permutation(n)
    member = np.zeros(n, dtype=bool)
    member[perm[:int(round(fraction * n))]] = True
    return member


def target_file(fraction: float, replicate: int) -> str:
    return Layout.study("dataset_size", f"target_f{fraction:.2f}_r{replicate}.npz")


def target_task(run_dir: str, fraction: float, replicate: int, on_progress) -> str:
    """Train one target on its members (on the run's ``training.device``), store its logits
    ``[n, A, C]`` and curvature ``[n, A]`` (the caller holds the run's lock); returns the
    artifact's name in the run."""
    from privaudit.training.trainer import steps_per_epoch, train_group

    run = Run(run_dir)
    rel = target_file(fraction, replicate)
    if run.has(rel):
        on_progress(1)
        return rel
    cfg = run.config()
    x, y = (torch.from_numpy(np.array(a)) for a in run.pool())
    n_classes = int(run.pool_info()["n_classes"])
    member = target_members(len(y), fraction, replicate)
    t = time.perf_counter()
    group = train_group(x, y, member[None], [0], spec=arch_spec(cfg), recipe=recipe(cfg), n_classes=n_classes,
                        root_seed=TARGET_SEED + 100 * replicate + int(round(100 * fraction)),
                        steps=steps_per_epoch(member[None], cfg.training.batch_size), backend=cfg.training.backend,
                        device=resolve_device(cfg.training.device))
    t_train = time.perf_counter() - t
    logits = query_logits(group, x, queries(cfg))[0]
    t = time.perf_counter()
    curv = curvature_of_group(cfg, group, x, y)[0]
    t_curv = time.perf_counter() - t
    buffer = io.BytesIO()
    np.savez(buffer, member=member, logits=logits, curvature=curv, seconds=[t_train, t_curv])
    run.save_bytes(rel, buffer.getvalue())
    on_progress(1)
    return rel


def evaluate_target(shadow: dict, target: dict, labels: np.ndarray) -> dict:
    member = target["member"]
    tsig = {"curvature": target["curvature"].astype(np.float64),
            **{s: derive(s, target["logits"][None], labels)[0] for s in ("loss", "phi")}}
    out = {}
    for label, (attack, signal) in ATTACKS.items():
        score = run_attack(attack, tsig[signal], shadow[signal], shadow["keep"], labels)
        out[label] = {"auc": metrics.auc(member, score),
                      "balanced_accuracy": metrics.balanced_accuracy(member, score),
                      "tpr@0.01": metrics.tpr_at_fpr(member, score, 0.01),
                      "tpr@0.001": metrics.tpr_at_fpr(member, score, 0.001),
                      "tpr@0.001_interp": metrics.tpr_at_fpr(member, score, 0.001, mode="interp")}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="finished run with logits and curvature (shadows)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    p.add_argument("--replicates", type=int, default=2, help="targets per fraction")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/curvature_dataset_size.json"))
    a = p.parse_args()
    t0 = time.perf_counter()
    run = Run.open(a.run)
    cfg = run.config()
    epoch = cfg.training.epochs
    curv_rel = Layout.signal("curvature", epoch)
    settings = (run.meta(curv_rel) or {}).get("settings") if run.has(curv_rel) else None
    if settings != curvature_settings(cfg):
        raise SystemExit(f"{run.path(curv_rel)} is missing or was computed with other settings than the run's "
                         f"config: rerun `privaudit run` first")
    labels = run.labels()
    logits = np.asarray(run.load_npy(Layout.signal("logits", epoch)))
    shadow = {"keep": run.keep(), "loss": derive("loss", logits, labels), "phi": derive("phi", logits, labels),
              "curvature": np.asarray(run.signal("curvature", epoch), dtype=np.float64)}
    tasks = [{"run_dir": str(run.root), "fraction": f, "replicate": r}
             for f in a.fractions for r in range(a.replicates)]
    with run.writer(), progress(Console(stderr=True), f"dataset size: train + query {len(tasks)} targets",
                                len(tasks), "targets") as advance:
        files = run_tasks(target_task, tasks, workers=a.workers, advance=advance)
    rows = []
    for task, rel in zip(tasks, files):
        target = dict(np.load(io.BytesIO(run.read_bytes(rel))))
        rows.append({"fraction": task["fraction"], "replicate": task["replicate"],
                     "m": int(target["member"].sum()), "n_non_members": int((~target["member"]).sum()),
                     "seconds_train": float(target["seconds"][0]), "seconds_curvature": float(target["seconds"][1]),
                     "train_acc": float((target["logits"][:, 0].argmax(-1) == labels)[target["member"]].mean()),
                     "test_acc": float((target["logits"][:, 0].argmax(-1) == labels)[~target["member"]].mean()),
                     "attacks": evaluate_target(shadow, target, labels)})
    summary = summarize(rows, a.fractions)
    doc = {"benchmark": "curvature_dataset_size", "run": str(a.run), "n_pool": len(labels),
           "shadow_models": int(shadow["keep"].shape[0]), "shadow_train_size": float(shadow["keep"].sum(1).mean()),
           "curvature": curvature_settings(cfg), "queries": {"logits": len(queries(cfg)),
                                                             "curvature": int(shadow["curvature"].shape[-1])},
           "tpr_convention": "strict (largest threshold with FPR <= alpha); *_interp: interpolated",
           "wall_seconds": round(time.perf_counter() - t0, 1), "summary": summary, "targets": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(doc, indent=2) + "\n")
    plot(summary, a.fractions, a.out.with_suffix(""), cfg.name)
    print(json.dumps({"summary": summary, "wall_seconds": doc["wall_seconds"]}, indent=2))


def summarize(rows: list[dict], fractions: list[float]) -> dict:
    """attack -> metric -> {"mean": [per fraction], "std": [...]} over the replicates."""
    out: dict = {}
    for label in ATTACKS:
        out[label] = {}
        for metric in ("auc", "balanced_accuracy", "tpr@0.01", "tpr@0.001", "tpr@0.001_interp"):
            vals = [[r["attacks"][label][metric] for r in rows if r["fraction"] == f] for f in fractions]
            out[label][metric] = {"mean": [float(np.mean(v)) for v in vals], "std": [float(np.std(v)) for v in vals]}
    return out


def plot(summary: dict, fractions: list[float], stem: Path, name: str) -> None:
    from privaudit.report.plots import line_plot

    for metric, ylabel, tag in (("auc", "AUROC", "auc"), ("tpr@0.001", "TPR at 0.1% FPR (strict)", "tpr")):
        series = {k: (np.array(v[metric]["mean"]), np.array(v[metric]["std"])) for k, v in summary.items()}
        line_plot(fractions, series, Path(f"{stem}_{tag}.png"), xlabel="fraction of the pool used to train the target",
                  ylabel=ylabel, title=f"{name}: MIA vs target training-set size")


if __name__ == "__main__":
    main()
