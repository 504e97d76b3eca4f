"""How many reference models does LiRA need to beat QMIA? Reference-model attacks (LiRA online and
offline, per-example and global variance; RMIA online and offline; the label-only augmentation
attack) with k = 1, 2, 4, 8, 16, 32 reference models, against the attacks that need none: QMIA
(Bertran et al., NeurIPS 2023; regressor fitted on half of each target's non-members), LOSS, and
the label-only gap and noise-distance attacks (Choquette-Choo et al., ICML 2021). Same population,
same target models, AUC and TPR@1% FPR with the 95% intervals of ``protocol.summarize``.

    nice python benchmarks/qmia_vs_lira.py configs/digits.yaml --set queries.shift=1 \\
        --set name=qmia_vs_lira_digits --out runs > result.json

SOURCE: a run directory, or a YAML config whose run is trained and queried first (resuming).

Protocol, per target model t in 0..T-1 (``--targets``):

* k references: the first k of a seeded random permutation of the other models (nested: the k=4
  set extends the k=2 set). An attack is scored on the samples its k references can score (online
  LiRA: >= 1 IN and >= 1 OUT reference; offline: >= 1 OUT); the others get a NaN score, which the
  protocol leaves out of the target's ROC, and the covered fraction is reported. RMIA offline
  tunes ``a`` on the references when k >= 2, else uses 0.3 (the paper's CIFAR-10 value).
* QMIA, three rows. ``qmia``: the library default (network regressor, 5-fold cross-fitting)
  under the population protocol: each target's non-members split in half
  (``protocol.public_split``); the public half fits the regressors and is left out of the ROC
  (NaN), so the row is evaluated on the same members and a random half of the same non-members.
  ``qmia_crossfit``: the same attack given *all* the target's non-members as known non-members
  (the auditor owns them): each sample is scored by the regressor fitted on the non-members of the
  other 4 folds, nothing is left out, every sample is evaluated as for the other attacks.
  ``qmia_boosting_half``: the previous default (gradient boosting, one regressor on the public
  half, ``regressor=boosting, folds=0``), for comparison.
* label_noise: the noise distance is computed for the T target models only (its attack reads no
  reference model), with the library defaults (16 draws, 12 bisection steps on [0, 32] input stds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privaudit.attacks.registry import ATTACKS, run_attack
from privaudit.errors import SignalError
from privaudit.evaluation.protocol import score_targets, summarize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attack_table import open_run  # noqa: E402  (benchmarks/attack_table.py: trains and queries a config)
from json_output import emit  # noqa: E402  (benchmarks/json_output.py)

KS = (1, 2, 4, 8, 16, 32)
REFERENCE_ATTACKS = ("lira_online", "lira_online_global", "lira_offline", "lira_offline_global", "rmia_online",
                     "rmia_offline", "label_augmentation")
FREE_ATTACKS = ("qmia", "loss", "gap", "label_noise")
#: extra QMIA rows: (row name, parameters, all non-members known to the attacker)
QMIA_ROWS = (("qmia_crossfit", {}, True), ("qmia_boosting_half", {"regressor": "boosting", "folds": 0}, False))
FPR = 0.01


def target_distances(run, cfg, targets: list[int]) -> np.ndarray:
    """``float32 [M, n, 1]`` label-only noise distances of the target models (the other rows are
    zeros: the attack reads no reference model)."""
    from privaudit.runtime import plan
    from privaudit.models.group import ModuleList
    from privaudit.signals import label_noise as ln

    x, y = run.pool()
    out = np.zeros((cfg.population.n_models, len(y), 1), dtype=np.float32)
    for ids in plan.groups(cfg):
        wanted = [m for m in ids if m in targets]
        if wanted:
            models = list(plan.load_group(run, cfg, ids).models())
            group = ModuleList([models[m - ids[0]] for m in wanted])
            out[wanted] = ln.distances_of(group, x, y, ln.settings(cfg.seed))
    return out


def coverage(mode: str, keep_ref: np.ndarray) -> np.ndarray:
    """Samples k references can score in ``mode``."""
    n_in = keep_ref.sum(axis=0)
    n_out = keep_ref.shape[0] - n_in
    return {"online": (n_in >= 1) & (n_out >= 1), "offline": n_out >= 1}.get(mode, np.ones(keep_ref.shape[1], bool))


def score_with_k(name: str, signal: np.ndarray, keep: np.ndarray, labels: np.ndarray, t: int, refs: np.ndarray):
    """Target t's scores ``[n]`` (NaN where not scored) with the references ``refs``."""
    spec = ATTACKS[name]
    ok = coverage(spec.mode, keep[refs])
    params = {"a": 0.3} if name == "rmia_offline" and len(refs) < 2 else {}
    out = np.full(keep.shape[1], np.nan)
    if ok.sum() < 2:
        return out
    try:
        out[ok] = run_attack(spec, signal[t][ok], signal[refs][:, ok], keep[refs][:, ok], labels[ok], **params)
    except SignalError:
        return np.full(keep.shape[1], np.nan)
    return out


def cell(scores: np.ndarray, keep_t: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """AUC and TPR@1% (mean over targets, 95% interval) and the covered fraction of samples."""
    covered = float((~np.isnan(scores)).mean())
    if (~np.isnan(scores)).sum(axis=1).min() < 20:
        return {"covered": covered}
    _, summary = summarize(scores, keep_t, fprs=(FPR,), n_boot=n_boot, seed=seed)
    pick = lambda m: {k: summary[m][k] for k in ("mean", "lo", "hi") if k in summary[m]}
    return {"auc": pick("auc"), f"tpr@{FPR:g}": pick(f"tpr@{FPR:g}"), "covered": covered}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("--out", default=None)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--targets", type=int, default=8)
    p.add_argument("--ks", default=",".join(map(str, KS)))
    p.add_argument("--only-free", action="store_true", help="skip the reference-model attacks")
    p.add_argument("--no-label-noise", action="store_true",
                   help="skip label_noise (its distances cost 209 forward passes per sample and target)")
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run, cfg = open_run(args.source, args.out, args.sets)
    epoch, keep, labels = cfg.training.epochs, run.keep(), run.labels()
    targets = list(range(args.targets))
    keep_t = keep[targets]
    x, _ = run.pool()
    timing: dict[str, float] = {}
    rows: dict[str, Any] = {}
    distance = None
    if not args.no_label_noise:
        t = time.perf_counter()
        distance = target_distances(run, cfg, targets)
        timing["label_noise_distance (targets only)"] = time.perf_counter() - t
    for name in FREE_ATTACKS:
        if name == "label_noise" and distance is None:
            continue
        spec = ATTACKS[name]
        signal = distance if spec.signal == "label_noise_distance" else run.signal(spec.signal, epoch)
        t = time.perf_counter()
        scores = score_targets(spec, signal, keep, labels, targets, context={"features": x, "public_seed": cfg.seed})
        timing[name] = time.perf_counter() - t
        rows[name] = {"0": cell(scores, keep_t, args.bootstrap, args.seed)}
        print(f"{name}: {rows[name]['0']}", file=sys.stderr)
    for row, params, all_out in QMIA_ROWS:
        spec, signal = ATTACKS["qmia"], run.signal("hinge", epoch)
        t = time.perf_counter()
        if all_out:
            scores = np.stack([run_attack(spec, signal[tt], None, None, labels, features=x, public=~keep[tt], **params)
                               for tt in targets])
        else:
            context = {"features": x, "public_seed": cfg.seed}
            scores = score_targets(spec, signal, keep, labels, targets, context=context, **params)
        timing[row] = time.perf_counter() - t
        rows[row] = {"0": cell(scores, keep_t, args.bootstrap, args.seed)}
        print(f"{row}: {rows[row]['0']}", file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    orders = {tt: rng.permutation(np.delete(np.arange(len(keep)), tt)) for tt in targets}
    for name in () if args.only_free else REFERENCE_ATTACKS:
        signal = run.signal(ATTACKS[name].signal, epoch)
        rows[name] = {}
        t = time.perf_counter()
        for k in map(int, args.ks.split(",")):
            if k > len(keep) - 1:
                continue
            scores = np.stack([score_with_k(name, signal, keep, labels, tt, orders[tt][:k]) for tt in targets])
            rows[name][str(k)] = cell(scores, keep_t, args.bootstrap, args.seed)
            print(f"{name} k={k}: {rows[name][str(k)]}", file=sys.stderr)
        timing[name] = time.perf_counter() - t
    emit({"source": str(run.root), "dataset": cfg.data.name, "n": int(keep.shape[1]), "n_models": int(len(keep)),
          "model": cfg.model.model_dump(mode="json"), "epochs": epoch, "queries": cfg.queries.model_dump(),
          "targets": targets, "fpr": FPR, "bootstrap": args.bootstrap, "rows": rows,
          "seconds": {k: round(v, 2) for k, v in timing.items()}, "total_seconds": round(time.perf_counter() - t0, 1),
          "command": " ".join(sys.argv)}, args.json)


if __name__ == "__main__":
    main()
