"""All attacks on one population, compared as in LiRA's Table I (Carlini et al., IEEE S&P 2022), and
how the reference-model attacks improve with the number of reference models (LiRA Fig. 9, RMIA's
low-cost claim, Zarifzadeh et al. ICML 2024).

    python benchmarks/attack_table.py configs/mnist_attacks.yaml --out runs > result.json
    python benchmarks/attack_table.py runs/mnist_attacks --targets 32 --draws 3 --slices > result.json

SOURCE is a run directory, or a YAML config whose run is trained and queried first through the
pipeline stages (resuming whatever exists). Prints JSON on stdout, rich tables on stderr.

1. Table: every registered attack (curvature ones when the run has curvature), leave-one-model-out on
   targets 0..T-1 (each attack fitted on the other M-1 models). Metrics on the ROC pooled over the T
   targets (LiRA ``plot.py``: the scores of all targets go into one ROC, so low FPRs rest on
   T x n_out non-members), with a stratified bootstrap interval; the per-target mean ± std of
   ``protocol.summarize`` is kept in the JSON as well.
2. Reference curve: for k in ``--ks`` (and all available references), ``--draws`` random draws of k
   reference models among the non-target models (in a paired population: whole complementary pairs
   other than the target's pair, so an even k holds exactly k/2 IN and k/2 OUT models per sample).
   Online LiRA (per-example and global variance), offline LiRA, RMIA online and offline. An attack is
   scored on the samples its references can score (online LiRA: >= 1 IN and >= 1 OUT model;
   offline: >= 1 OUT model); the covered fraction is reported. RMIA offline tunes ``a`` on the
   references (``rmia_tune_a``) where it can, and ``--rmia-a`` (the paper's CIFAR-10 value 0.3)
   where tuning is impossible (one reference, or a single complementary pair).
3. ``--slices``: the table's scores broken down per class (and canary kind) with
   ``privaudit.evaluation.slices``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from privaudit.attacks.registry import ATTACKS, get_attack, run_attack
from privaudit.evaluation import metrics
from privaudit.evaluation.protocol import evaluate_attack

from json_output import emit  # benchmarks/json_output.py

console = Console(stderr=True, width=160)
CURVE_ATTACKS = ("lira_online", "lira_online_global", "lira_offline", "lira_offline_global",
                 "rmia_online", "rmia_offline")
FPRS = (1e-3, 1e-4)
SLOW = ("shokri",)   # an MLP fitted per target: scored on --slow-targets targets only


# -- the population ------------------------------------------------------------------------------
def open_run(source: str, out: str | None, sets: list[str]):
    """The :class:`~privaudit.runtime.run.Run` of ``source`` (a run dir, or a config trained and
    queried first) and its config."""
    from privaudit.config import load_config
    from privaudit.runtime.run import Run
    from privaudit.stages.curvature import curvature
    from privaudit.stages.prepare import prepare
    from privaudit.stages.query import query
    from privaudit.stages.train import train

    path = Path(source)
    if path.is_dir():
        run = Run.open(path)
        return run, run.config()
    overrides = {k: _yaml(v) for k, v in (s.split("=", 1) for s in sets)}
    if out:
        overrides["out"] = out
    cfg = load_config(path, overrides)
    run = Run(cfg.run_dir)
    with run.writer():
        prepare(run, cfg)
        train(run, cfg)
        query(run, cfg)
        curvature(run, cfg)   # nothing without a curvature section
    return run, cfg


def _yaml(value: str):
    import yaml
    return yaml.safe_load(value)


def describe(cfg, run, keep: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """What the population is: data, model, training, and the models' train / test accuracy."""
    from privaudit.runtime.run import Layout

    logits = np.asarray(run.load_npy(Layout.signal("logits", cfg.training.epochs), mmap=True))
    correct = logits.mean(axis=2).argmax(-1) == labels[None]
    return {"dataset": cfg.data.name, "pool": int(keep.shape[1]), "models": int(keep.shape[0]),
            "design": cfg.population.design, "model": f"{cfg.model.arch} width {cfg.model.width}",
            "epochs": cfg.training.epochs, "batch_size": cfg.training.batch_size, "queries": int(logits.shape[2]),
            "train_acc": float(correct[keep].mean()), "test_acc": float(correct[~keep].mean())}


# -- table ---------------------------------------------------------------------------------------
def pooled(scores: np.ndarray, keep_t: np.ndarray, n_boot: int, seed: int,
           fprs: tuple[float, ...] = FPRS) -> dict[str, Any]:
    """Metrics of the ROC pooled over targets (LiRA plot.py), with bootstrap 95% intervals; TPR at
    each of ``fprs``."""
    y, s = keep_t.ravel(), scores.ravel()
    out: dict[str, Any] = {"n_pos": int(y.sum()), "n_neg": int((~y).sum())}
    names = ["auc", "balanced_accuracy"] + [f"tpr@{a:g}" for a in fprs]
    values = {"auc": metrics.auc(y, s), "balanced_accuracy": metrics.balanced_accuracy(y, s)}
    values |= {f"tpr@{a:g}": metrics.tpr_at_fpr(y, s, a) for a in fprs}
    for m in names:
        lo, hi = metrics.bootstrap_ci(m, y, s, n_boot=n_boot, seed=seed) if n_boot else (np.nan, np.nan)
        out[m] = {"value": float(values[m]), "lo": float(lo), "hi": float(hi)}
    for a in fprs:
        out[f"n_fp@{a:g}"] = int(np.floor(a * out["n_neg"] + 1e-9))
    return out


def attack_table(signal_of, keep, labels, names: list[str], targets: list[int], n_boot: int, seed: int,
                 slow_targets: int, scores: dict | None = None) -> dict:
    """One row per attack; ``scores`` (if given) collects each attack's ``[T, n]`` scores."""
    rows = {}
    for name in names:
        spec = get_attack(name)
        use = targets[:slow_targets] if name in SLOW else targets
        t0 = time.perf_counter()
        res = evaluate_attack(spec, signal_of(spec.signal), keep, labels, use, fprs=FPRS, n_boot=n_boot,
                              seed=seed, name=name)
        rows[name] = {"signal": spec.signal, "mode": spec.mode, "targets": len(use),
                      "seconds": time.perf_counter() - t0,
                      "pooled": pooled(res.scores, keep[use], n_boot, seed), "per_target": res.summary}
        if scores is not None:
            scores[name] = res.scores
        console.log(f"{name}: {rows[name]['seconds']:.1f} s")
    return rows


def per_class(run, scores: dict, keep, labels, targets: list[int], n_boot: int, seed: int) -> dict[str, Any]:
    """privaudit.evaluation.slices on the table's scores (attacks scored on every target)."""
    from privaudit.evaluation.slices import render_slices, run_slices

    kind = run.optional_pool("kind")
    kind = None if kind is None else kind[:len(labels)]
    full = {k: s for k, s in scores.items() if s.shape[0] == len(targets)}
    doc = run_slices(full, keep[targets], labels, kind=kind, fprs=(1e-2, 1e-3), n_boot=n_boot, seed=seed)
    shown = [k for k in ("loss", "watson", "sablayrolles", "lira_online", "lira_online_global", "rmia_online")
             if k in full]
    for metric in ("auc", "tpr@0.01"):
        for table in render_slices(doc, metric, attacks=shown):
            console.print(table)
    return doc


# -- reference curve -----------------------------------------------------------------------------
def is_paired(keep: np.ndarray) -> bool:
    return keep.shape[0] % 2 == 0 and bool(np.all(keep[0::2] == ~keep[1::2]))


def draw_refs(rng: np.random.Generator, m: int, target: int, k: int, paired: bool) -> np.ndarray:
    """k reference models among the non-target models (whole pairs, other than the target's, when
    the population is paired and k is even)."""
    if paired:
        pairs = np.delete(np.arange(m // 2), target // 2)
        if k % 2 == 0:
            return np.sort(np.concatenate([2 * p + np.arange(2) for p in rng.choice(pairs, k // 2, replace=False)]))
        pool = np.concatenate([2 * pairs, 2 * pairs + 1])
    else:
        pool = np.delete(np.arange(m), target)
    return np.sort(rng.choice(pool, k, replace=False))


def covered(mode: str, ref_keep: np.ndarray) -> np.ndarray:
    """Samples an attack of this mode can score with these references."""
    if mode == "online_lira":
        return ref_keep.any(axis=0) & (~ref_keep).any(axis=0)
    if mode == "offline":
        return (~ref_keep).any(axis=0)
    return np.ones(ref_keep.shape[1], dtype=bool)


def curve_point(name: str, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray, targets: list[int],
                refs: list[np.ndarray], rmia_a: float) -> dict[str, Any] | None:
    """One draw: every target scored with its references; metrics of the pooled ROC."""
    spec = get_attack(name)
    mode = "online_lira" if name.startswith("lira_online") else spec.mode
    ys, ss, cover, a_used = [], [], [], []
    for t, r in zip(targets, refs):
        ok = covered(mode, keep[r])
        params = {"a": offline_a(signal[r], keep[r], rmia_a)} if name == "rmia_offline" else {}
        if not ok.any():
            return None
        s = run_attack(spec, signal[t][ok], signal[r][:, ok], keep[r][:, ok], labels[ok], **params)
        a_used.append(params.get("a", np.nan))
        ys.append(keep[t, ok])
        ss.append(s)
        cover.append(ok.mean())
    y, s = np.concatenate(ys), np.concatenate(ss)
    return {"auc": metrics.auc(y, s), "balanced_accuracy": metrics.balanced_accuracy(y, s),
            **{f"tpr@{a:g}": metrics.tpr_at_fpr(y, s, a) for a in FPRS},
            "n_neg": int((~y).sum()), "coverage": float(np.mean(cover))} | (
               {"a": float(np.mean(a_used))} if name == "rmia_offline" else {})


def offline_a(ref: np.ndarray, ref_keep: np.ndarray, fallback: float) -> float:
    """RMIA's offline ``a`` tuned on the references (rmia_tune_a); ``fallback`` where tuning is
    impossible (one reference, or one complementary pair)."""
    from privaudit.attacks.rmia import rmia_tune_a
    from privaudit.errors import SignalError

    try:
        return rmia_tune_a(ref, ref_keep)[0]
    except SignalError:
        return fallback


def reference_curve(signal_of, keep, labels, targets: list[int], ks: list[int], draws: int, seed: int,
                    rmia_a: float) -> dict[str, Any]:
    m = keep.shape[0]
    paired = is_paired(keep)
    k_max = m - 2 if paired else m - 1
    ks = sorted({k for k in ks if k < k_max} | {k_max})
    out: dict[str, Any] = {"paired": paired, "ks": ks, "draws": draws, "targets": targets, "attacks": {}}
    for name in CURVE_ATTACKS:
        signal = signal_of(get_attack(name).signal)
        rows = {}
        for k in ks:
            n_draws = 1 if k == k_max else draws
            points = []
            for d in range(n_draws):
                rng = np.random.default_rng([seed, k, d])
                refs = [draw_refs(rng, m, t, k, paired) for t in targets]
                p = curve_point(name, signal, keep, labels, targets, refs, rmia_a)
                if p is not None:
                    points.append(p)
            if not points:
                rows[str(k)] = None
                continue
            rows[str(k)] = {key: {"mean": float(np.mean([p[key] for p in points])),
                                  "std": float(np.std([p[key] for p in points]))} for key in points[0]}
            rows[str(k)]["draws"] = len(points)
        out["attacks"][name] = rows
        console.log(f"curve {name}: done")
    return out


# -- rendering -----------------------------------------------------------------------------------
def _pct(stat: dict) -> str:
    text = f"{100 * stat['value']:.2f}"
    return text + (f" [{100 * stat['lo']:.2f}, {100 * stat['hi']:.2f}]" if np.isfinite(stat["lo"]) else "")


def _curve_cell(row: dict | None, metric: str) -> str:
    if row is None:
        return "n/a"
    text = f"{100 * row[metric]['mean']:.2f}"
    return text + (f" ± {100 * row[metric]['std']:.2f}" if row["draws"] > 1 else "")


def print_tables(doc: dict[str, Any]) -> None:
    first = next(iter(doc["table"].values()))["pooled"]
    table = Table(title=f"{doc['population']['dataset']}: {doc['population']['models']} models, "
                        f"{len(doc['targets'])} targets (pooled ROC)",
                  caption=f"95% bootstrap intervals; {first['n_neg']} non-members pooled (all targets): "
                          f"TPR@0.01% rests on {first['n_fp@0.0001']} false positives, "
                          f"TPR@0.1% on {first['n_fp@0.001']}")
    for col in ("attack", "targets", "TPR % @ 0.01% FPR", "TPR % @ 0.1% FPR", "bal. acc %", "AUC %"):
        table.add_column(col)
    for name, row in doc["table"].items():
        p = row["pooled"]
        table.add_row(name, str(row["targets"]), _pct(p["tpr@0.0001"]), _pct(p["tpr@0.001"]),
                      _pct(p["balanced_accuracy"]), _pct(p["auc"]))
    console.print(table)
    curve = doc["reference_curve"]
    for metric in ("tpr@0.001", "auc") if curve else ():
        t = Table(title=f"{'TPR % @ 0.1% FPR' if metric != 'auc' else 'AUC %'} vs number of reference models "
                        f"(mean ± std over draws)")
        t.add_column("attack")
        for k in curve["ks"]:
            t.add_column(str(k))
        for name, rows in curve["attacks"].items():
            t.add_row(name, *[_curve_cell(rows[str(k)], metric) for k in curve["ks"]])
        console.print(t)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="run directory, or YAML config (trained first if needed)")
    ap.add_argument("--out", help="parent folder of the run directory (config source)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    ap.add_argument("--targets", type=int, default=16, help="target models (leave-one-model-out)")
    ap.add_argument("--slow-targets", type=int, default=8, help=f"targets for {', '.join(SLOW)}")
    ap.add_argument("--curve-targets", type=int, default=None, help="targets for the curve (default: --targets)")
    ap.add_argument("--attacks", default="all", help="comma list of attacks for the table, or 'all'")
    ap.add_argument("--ks", default="1,2,4,8,16,32,64", help="reference-model counts")
    ap.add_argument("--draws", type=int, default=3, help="random reference draws per count")
    ap.add_argument("--no-curve", action="store_true", help="the table only (no reference-model curve)")
    ap.add_argument("--rmia-a", type=float, default=0.3, help="RMIA offline a with a single reference")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slices", action="store_true", help="also per-class (and canary-kind) metrics of the table")
    ap.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args(argv)

    from privaudit.runtime.run import Layout

    t0 = time.perf_counter()
    run, cfg = open_run(args.source, args.out, args.sets)
    keep = run.keep()
    labels = run.labels()
    signal_of = lambda name: run.signal(name, cfg.training.epochs)   # cached by the Run
    has_curv = run.has(Layout.signal("curvature", cfg.training.epochs))
    has_noise = run.has(Layout.signal("label_noise_distance", cfg.training.epochs))
    names = [n for n in (ATTACKS if args.attacks == "all" else args.attacks.split(","))   # what this run can score:
             if (has_curv or get_attack(n).signal != "curvature") and not get_attack(n).needs_public   # QMIA:
             and (has_noise or get_attack(n).signal != "label_noise_distance")]                      # qmia_vs_lira.py
    targets = list(range(args.targets))
    doc: dict[str, Any] = {"run": str(run.root), "population": describe(cfg, run, keep, labels),
                           "targets": targets, "tpr_at_fpr": "strict: TPR at the largest threshold with FPR <= alpha",
                           "intervals": f"{args.n_boot} stratified bootstrap resamples of the pooled scores, 95% "
                                        "percentile interval"}
    scores: dict[str, np.ndarray] = {}
    doc["table"] = attack_table(signal_of, keep, labels, names, targets, args.n_boot, args.seed,
                                 args.slow_targets, scores)
    if args.slices:
        doc["slices"] = per_class(run, scores, keep, labels, targets, args.n_boot, args.seed)
    curve_targets = list(range(args.curve_targets or args.targets))
    ks = [] if args.no_curve else [int(k) for k in args.ks.split(",")]
    doc["reference_curve"] = reference_curve(signal_of, keep, labels, curve_targets, ks, args.draws, args.seed,
                                             args.rmia_a) if ks else {}
    doc["seconds"] = time.perf_counter() - t0
    print_tables(doc)
    emit(doc, args.json, indent=1)
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
